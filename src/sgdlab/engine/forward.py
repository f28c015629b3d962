"""The network's forward pass on buffers allocated once: whole data sets in chunks, and the training step's first half.

Built from the network's own definitions: its weights (the very arrays the
layers hold) and its hidden activation's in-place form.
"""

import numpy as np


class ForwardPass:
    """The network's scores (the softmax's input) for up to `rows` samples at a time, into reused buffers.

    `scores(x)` returns a buffer that the next call overwrites. Evaluation
    runs whole data sets through it chunk by chunk; `BackpropStep` builds on it.
    """

    def __init__(self, network, rows):
        self.rows = rows
        self.num_layers = len(network.sizes) - 1
        self.weights = [network.params[f"W{i}"] for i in range(1, self.num_layers + 1)]
        self.biases = [network.params[f"b{i}"] for i in range(1, self.num_layers + 1)]
        self.activation = network.hidden_activation
        # outputs[i]: layer i's activated output (for the last layer: its raw scores).
        self.outputs = [np.empty((rows, n), network.dtype) for n in network.sizes[1:]]

    def scores(self, x):
        outputs = self.outputs if len(x) == self.rows else [out[:len(x)] for out in self.outputs]
        inputs = x
        for i, (weight, bias, out) in enumerate(zip(self.weights, self.biases, outputs)):
            np.matmul(inputs, weight, out=out)
            out += bias
            if i < self.num_layers - 1:
                self.activation.forward_in_place(out)
            inputs = out
        return inputs
