"""The gradient check passes every correct convolutional net and fails every broken backward pass of one."""

import itertools

import numpy as np
import pytest

from sgdlab.engine.gradcheck import gradient_check
from sgdlab.nn import layers
from sgdlab.nn.activations import activation_names
from sgdlab.nn.im2col import add_windows
from sgdlab.nn.network import ConvNet

IMAGE, CLASSES = (1, 8, 8), 4
GRID = {  # every correct configuration: each combination of these passes
    "activation": activation_names(),
    "convolution": ((3, 1, 0), (3, 1, 1), (4, 2, 1), (2, 2, 0)),  # filter size, stride, pad
    "pooling": (None, (2, 2, 0), (3, 1, 1), (2, 1, 0)),  # window, stride, pad
    "batch_norm": (False, True),
    "dropout_ratio": (0.0, 0.3),
    "weight_decay_lambda": (0.0, 0.1),
    "weight_init_std": (0.01, 0.1, "he"),
    "batch": (1, 3, 7, 20),
    "seed": (0, 1, 2),
}
QUICK_SAMPLE = 12  # configurations drawn from the grid for the quick loop, by a fixed seed
SLOW_SAMPLE = 400


def mnist_like_images(rng, n, shape=IMAGE):
    """Pixels quantised to k/255, most of them 0, as MNIST's are."""
    return rng.integers(0, 256, (n, *shape)) * (rng.random((n, *shape)) < 0.3) / 255.0, rng.integers(0, CLASSES, n)


def network_of(configuration):
    """conv (3 filters) - [batch norm] - activation - [pooling] - [dropout] - affine 5 - [batch norm] -
    activation - [dropout] - affine, and a batch, for one point of the grid."""
    rng = np.random.default_rng(configuration["seed"])
    size, stride, pad = configuration["convolution"]
    activation = {"type": configuration["activation"]}
    norm = [{"type": "batch_norm"}] if configuration["batch_norm"] else []
    drop = [{"type": "dropout", "ratio": configuration["dropout_ratio"]}] if configuration["dropout_ratio"] else []
    pooling = []
    if configuration["pooling"] is not None:
        window, pool_stride, pool_pad = configuration["pooling"]
        pooling = [{"type": "pooling", "pool_size": window, "stride": pool_stride, "pad": pool_pad}]
    specs = [{"type": "convolution", "filter_num": 3, "filter_size": size, "stride": stride, "pad": pad}, *norm,
             activation, *pooling, *drop, {"type": "affine", "output_size": 5}, *norm, activation, *drop]
    network = ConvNet(IMAGE, specs, CLASSES, weight_init_std=configuration["weight_init_std"],
                      weight_decay_lambda=configuration["weight_decay_lambda"], rng=rng)
    return network, *mnist_like_images(rng, configuration["batch"])


def sample_of_the_grid(size, seed):
    """`size` distinct points of the grid, drawn by `seed`: the same ones every run."""
    points = list(itertools.product(*GRID.values()))
    chosen = np.random.default_rng(seed).choice(len(points), size, replace=False)
    return [dict(zip(GRID, points[i])) for i in sorted(chosen)]


def label(configuration):
    return "-".join(str(value) for value in configuration.values()).replace(" ", "")


def failures(network, x, t):
    """The parameters compared and found to differ. A parameter none of whose entries could be compared is not
    verified, which is no pass, and happens to a correct net only where its nudges sit on a kink: a bias
    still at exactly 0 before relu, whose windows over blank pixels give relu's input exactly 0."""
    checks = gradient_check(network, x, t)
    for check in checks:
        if not check.checked:
            assert check.name.startswith("b") and not network.params[check.name].any(), check
    return [(check.name, check.max_abs_diff, check.max_rel_error) for check in checks
            if check.checked and not check.passed]


@pytest.mark.parametrize("configuration", sample_of_the_grid(QUICK_SAMPLE, seed=24), ids=label)
def test_every_correct_conv_net_passes(configuration):
    assert failures(*network_of(configuration)) == []


@pytest.mark.slow
@pytest.mark.parametrize("configuration", sample_of_the_grid(SLOW_SAMPLE, seed=25), ids=label)
def test_every_correct_conv_net_passes_on_a_larger_sample(configuration):
    assert failures(*network_of(configuration)) == []


def test_the_nudges_that_change_a_pooling_winner_are_counted_not_compared():
    """Sample 0 is one pixel: the first pooling window's outputs see it through the filter's entries (2, 2),
    (2, 1), (1, 2) and (1, 1), two of them 1e-9 apart, so a nudge of either changes the winner, even at the
    smaller steps entries across a kink are differentiated again with."""
    rng = np.random.default_rng(3)
    network = ConvNet(IMAGE, [{"type": "convolution", "filter_num": 1, "filter_size": 3}, {"type": "tanh"},
                              {"type": "pooling", "pool_size": 2}], CLASSES, weight_init_std=0.5, rng=rng)
    x, t = mnist_like_images(rng, 3)
    x[0] = 0.0
    x[0, 0, 2, 2] = 0.5
    W = network.params["W1"]
    W[0, 0, 2, 1], W[0, 0, 2, 2] = 0.8, 0.8 + 1e-9
    W[0, 0, 1, 2], W[0, 0, 1, 1] = -1.0, -1.0
    checks = {check.name: check for check in gradient_check(network, x, t)}
    assert all(check.passed for check in checks.values())
    assert checks["W1"].kinks == 2 and checks["b1"].kinks == 0 and checks["W2"].kinks == 0


# --- broken backward passes ---------------------------------------------------------------------------

def shifted_winners(arg_max, pool_size):
    """Each window's winner moved to the next offset in the window: a wrong pooling index."""
    return ((arg_max.astype(np.intp) + 1) % pool_size).astype(arg_max.dtype)


def book_pooling_backward_with_a_shifted_winner(backward):
    def broken(self, dout):
        arg_max = self.arg_max
        self.arg_max = shifted_winners(arg_max, self.pool_h * self.pool_w)
        try:
            return backward(self, dout)
        finally:
            self.arg_max = arg_max
    return broken


def pooling_backward_into_with_a_shifted_winner(backward_into):
    def broken(self, x, out, dout, dx, grads, work):
        arg_max = work["arg_max"]
        kept = arg_max.copy()
        arg_max[...] = shifted_winners(kept, self.pool_h * self.pool_w)
        try:
            return backward_into(self, x, out, dout, dx, grads, work)
        finally:
            arg_max[...] = kept
    return broken


def col2im_cropped_one_off(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The book's col2im, its padding cropped one pixel off: [pad + 1, H + pad + 1) for [pad, H + pad)."""
    N, C, H, W = input_shape
    out_h, out_w = (H + 2 * pad - filter_h) // stride + 1, (W + 2 * pad - filter_w) // stride + 1
    blocks = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + 1, W + 2 * pad + 1), dtype=col.dtype)
    add_windows(img, blocks, stride)
    return img[:, :, pad + 1:H + pad + 1, pad + 1:W + pad + 1]


def book_convolution_backward_with_a_flipped_filter(backward):
    """The book's backward, d x computed with each filter turned by 180 degrees (a convolution's adjoint
    written as the textbook's true convolution)."""
    def broken(self, dout):
        col_W = self.col_W
        self.col_W = self.W[:, :, ::-1, ::-1].reshape(len(self.W), -1).T
        try:
            return backward(self, dout)
        finally:
            self.col_W = col_W
    return broken


def convolution_backward_into_with_a_flipped_filter(backward_into):
    def broken(self, *arguments):
        W = self.W
        self.W = np.ascontiguousarray(W[:, :, ::-1, ::-1])
        try:
            return backward_into(self, *arguments)
        finally:
            self.W = W
    return broken


def convolution_backward_into_cropped_one_off(backward_into):
    """The training step's backward, d x cropped from its padded gradient one pixel off: [pad + 1, H + pad + 1)
    for [pad, H + pad) (the last row and column, beyond the padded buffer, left 0)."""
    def broken(self, x, out, dout, dx, grads, work):
        result = backward_into(self, x, out, dout, dx, grads, work)
        if dx is not None and self.pad:
            padded = work["dpadded"][:len(dx)]
            H, W = dx.shape[2:]
            dx[...] = 0
            dx[:, :, :H - 1, :W - 1] = padded[:, :, self.pad + 1:self.pad + H, self.pad + 1:self.pad + W]
        return result
    return broken


BROKEN = {
    "the book's pooling, the winner's index shifted":
        lambda m: m.setattr(layers.Pooling, "backward", book_pooling_backward_with_a_shifted_winner(
            layers.Pooling.backward)),
    "the training step's pooling, the winner's index shifted":
        lambda m: m.setattr(layers.Pooling, "backward_into", pooling_backward_into_with_a_shifted_winner(
            layers.Pooling.backward_into)),
    "the book's col2im, its padding cropped one off": lambda m: m.setattr(layers.convolution, "col2im", col2im_cropped_one_off),
    "the training step's convolution, its padding cropped one off":
        lambda m: m.setattr(layers.Convolution, "backward_into", convolution_backward_into_cropped_one_off(
            layers.Convolution.backward_into)),
    "the book's convolution, d x by the flipped filter":
        lambda m: m.setattr(layers.Convolution, "backward", book_convolution_backward_with_a_flipped_filter(
            layers.Convolution.backward)),
    "the training step's convolution, d x by the flipped filter":
        lambda m: m.setattr(layers.Convolution, "backward_into", convolution_backward_into_with_a_flipped_filter(
            layers.Convolution.backward_into)),
}


@pytest.mark.parametrize("activation", activation_names())
@pytest.mark.parametrize("bug", BROKEN)
def test_every_broken_backward_pass_fails(bug, activation, monkeypatch):
    """Two padded convolutions (d x of the second reaches the first's filters), pooling, batch norm."""
    rng = np.random.default_rng(10)
    convolution = {"type": "convolution", "filter_num": 3, "filter_size": 3, "pad": 1}
    network = ConvNet(IMAGE, [convolution, {"type": activation}, convolution, {"type": "batch_norm"},
                              {"type": activation}, {"type": "pooling", "pool_size": 2},
                              {"type": "affine", "output_size": 5}, {"type": activation}], CLASSES,
                      weight_init_std="he", weight_decay_lambda=0.1, rng=rng)
    x, t = mnist_like_images(rng, 10)
    assert failures(network, x, t) == []
    BROKEN[bug](monkeypatch)
    assert [name for name, _, _ in failures(network, x, t)] != [], bug


def test_a_parameter_whose_every_nudge_crosses_a_kink_is_not_verified(monkeypatch):
    """At SimpleConvNet's start its biases are 0 and blank windows leave the convolution's outputs at exactly
    0, relu's kink: every nudge of b1 crosses it, nothing of b1 is compared, and that is no pass, or a broken
    db would pass unseen. After a few updates b1 is off the kink, checked, and a broken db fails."""
    rng = np.random.default_rng(0)
    network = ConvNet(IMAGE, [{"type": "convolution", "filter_num": 3, "filter_size": 3}, {"type": "relu"},
                              {"type": "pooling", "pool_size": 2}, {"type": "affine", "output_size": 5},
                              {"type": "relu"}], CLASSES, weight_init_std=0.01, rng=rng)
    x, t = mnist_like_images(rng, 3)
    x[:, :, :3, :3] = 0  # a blank corner, as every MNIST digit has
    b1 = {check.name: check for check in gradient_check(network, x, t)}["b1"]
    assert (b1.kinks, b1.checked, b1.passed) == (3, False, False)
    for _ in range(20):
        for key, grad in network.gradient(x, t).items():
            network.params[key] -= 0.1 * np.sign(grad)  # each parameter a step, off every exact 0
    assert failures(network, x, t) == []

    def broken_backward(self, dout):
        result = correct_backward(self, dout)
        self.db = self.db * 3.0 + 1.0
        return result

    def broken_backward_into(self, x, out, dout, dx, grads, work):
        result = correct_backward_into(self, x, out, dout, dx, grads, work)
        grads[1][...] = grads[1] * 3.0 + 1.0
        return result

    correct_backward, correct_backward_into = layers.Convolution.backward, layers.Convolution.backward_into
    monkeypatch.setattr(layers.Convolution, "backward", broken_backward)
    monkeypatch.setattr(layers.Convolution, "backward_into", broken_backward_into)
    assert [name for name, _, _ in failures(network, x, t)] == ["b1"]


# --- chapter 8's deep net, at reduced width ---------------------------------------------------------------

def reduced_deep_convnet(seed, widths=(3, 3, 4, 4, 4, 4), images=4):
    """DeepConvNet's layout (six 3x3 convolutions padded by 1, the fourth by 2, relu, three 2x2 poolings,
    affine - relu - dropout - affine) at `widths` (3, 3, 4, 4, 4, 4) and 6 hidden units, He's initial weights,
    on `images` 12x12 images, after a few updates that move its biases off relu's kink."""
    rng = np.random.default_rng(seed)
    specs = []
    for k, width in enumerate(widths):
        specs += [{"type": "convolution", "filter_num": width, "filter_size": 3, "pad": 2 if k == 3 else 1},
                  {"type": "relu"}, *([{"type": "pooling", "pool_size": 2}] if k % 2 else [])]
    network = ConvNet((1, 12, 12), [*specs, {"type": "affine", "output_size": 6}, {"type": "relu"},
                                    {"type": "dropout", "ratio": 0.5}], CLASSES, weight_init_std="he", rng=rng)
    x, t = mnist_like_images(rng, images, (1, 12, 12))
    for _ in range(10):
        for key, grad in network.gradient(x, t).items():
            network.params[key] -= 0.01 * np.sign(grad)
    return network, x, t


@pytest.mark.parametrize("bug", [None, "the book's col2im, its padding cropped one off",
                                 "the training step's convolution, its padding cropped one off",
                                 "the training step's convolution, d x by the flipped filter"])
def test_a_reduced_deep_convnet_passes_and_its_broken_paddings_fail(bug, monkeypatch):
    network, x, t = reduced_deep_convnet(3)
    if bug is None:
        assert failures(network, x, t) == []
        return
    BROKEN[bug](monkeypatch)
    failed = [name for name, _, _ in failures(network, x, t)]
    assert failed and set(failed) <= {f"{name}{k}" for name in "Wb" for k in range(1, 6)}, failed  # below a padded one


@pytest.mark.slow  # a net of 3000 parameters; the quick loop compares the shifted products' training step with the
# book's layers (tests/engine/test_conv_backprop.py), which the reduced net's check above verifies
def test_a_reduced_deep_convnet_wide_enough_for_the_shifted_products_passes():
    # from the second convolution on, 8 channels of 3x3 windows (72 values): the training step's shifted products
    network, x, t = reduced_deep_convnet(4, widths=(8, 8, 8, 8, 8, 8), images=8)
    assert failures(network, x, t) == []


def test_a_sampled_check_differentiates_its_entries_as_the_whole_one_and_says_how_many():
    from sgdlab.engine.gradcheck import extrapolated_gradient, sampled_entries

    network, x, t = reduced_deep_convnet(3)
    only = sampled_entries(network, 5, seed=1)
    assert {key: len(entries) for key, entries in only.items()} == {
        key: 5 for key, param in network.params.items() if param.size > 5}
    assert all(len(set(entries)) == 5 for entries in only.values())
    assert all((sampled_entries(network, 5, seed=1)[key] == only[key]).all() for key in only)  # seeded
    states = [(layer.rng, layer.rng.bit_generator.state) for layer in network.dropout_layers]

    def same_masks():  # the dropout's masks of every pass of both
        for generator, state in states:
            generator.bit_generator.state = state

    whole, whole_kinks, _ = extrapolated_gradient(network, x, t, same_masks)
    sampled, sampled_kinks, _ = extrapolated_gradient(network, x, t, same_masks, only)
    # the convolutions' filters and the dense head's weights (affine - relu - dropout - affine, which the fast
    # gradient differentiates whole in a blink, then keeps to its sample as well); their biases, of 3 or 4, whole
    assert set(only) == {f"W{k}" for k in range(1, 9)} | {"b7"}
    for key, grad in whole.items():
        drawn = only.get(key, np.arange(grad.size))
        flat, flat_whole = sampled[key].ravel(), grad.ravel()
        np.testing.assert_allclose(flat[drawn], flat_whole[drawn], rtol=1e-9, atol=1e-12)
        left = np.setdiff1d(np.arange(grad.size), drawn)
        assert np.isnan(flat[left]).all() and not sampled_kinks[key].ravel()[left].any()
        assert (sampled_kinks[key].ravel()[drawn] == whole_kinks[key].ravel()[drawn]).all()
    checks = gradient_check(network, x, t, entries=5, seed=1)
    assert all(check.passed for check in checks)
    assert [(check.name, check.sampled) for check in checks] == [
        (key, 5 if key in only else None) for key in network.params]


@pytest.mark.parametrize("bug", ["the training step's convolution, its padding cropped one off",
                                 "the book's convolution, d x by the flipped filter"])
def test_a_sampled_check_still_fails_a_broken_backward_pass(bug, monkeypatch):
    network, x, t = reduced_deep_convnet(3)
    BROKEN[bug](monkeypatch)
    failed = [check.name for check in gradient_check(network, x, t, entries=8, seed=0)
              if check.checked and not check.passed]
    assert failed and set(failed) <= {f"{name}{k}" for name in "Wb" for k in range(1, 6)}, failed


def test_a_sampled_check_of_a_diverged_net_fails_rather_than_passing_its_nans_as_left_out():
    network, x, t = reduced_deep_convnet(3)
    network.params["W3"][0, 0, 0, 0] = np.nan  # as a diverged run leaves it
    with np.errstate(all="ignore"):
        checks = gradient_check(network, x, t, entries=5, seed=1)
    assert checks and not any(check.passed for check in checks)
    assert all(check.sampled in (5, None) for check in checks)
