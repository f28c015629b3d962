"""How each weight matrix is spread at an evaluation: a few percentiles of its values, as TensorBoard's
distributions dashboard draws a tensor over time (bands between them, the median in the middle).

The book's 6.2 shows what the initial weights' scale does to the activations; these show the weights
themselves as training moves them. The percentiles are TensorBoard's: the minimum, the maximum, and those a
normal distribution puts at 0.5, 1 and 1.5 standard deviations either side of its median, so that Gaussian
initial weights (the book's `weight_init_std * np.random.randn`) show bands at +-0.5, 1 and 1.5 std.
"""

PERCENTILES = (0.0, 6.68, 15.87, 30.85, 50.0, 69.15, 84.13, 93.32, 100.0)


def weight_percentiles(network):
    """{name: its `PERCENTILES` as floats} for each of the network's weight arrays (every affine layer's and
    convolution's W: those weight decay covers, `W1, W2, ...`; not the biases, nor batch norm's gamma and beta),
    None for one holding a value that is not finite (a diverged network's)."""
    import numpy as np  # here: history.py reads `PERCENTILES`, and the command line's help loads no NumPy

    found = {}
    for key in network.decayed_keys:
        weights = np.asarray(network.params[key]).ravel()
        finite = bool(np.isfinite(weights).all())
        found[key] = [float(value) for value in np.percentile(weights, PERCENTILES)] if finite else None
    return found
