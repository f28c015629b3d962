"""The fast numerical gradient of convolutional nets against the textbook per-element central difference."""

import numpy as np
import pytest

from sgdlab import SimpleConvNet, load_mnist
from sgdlab.engine import conv_perturbation
from sgdlab.engine.conv_perturbation import DenseHead, ReferencePass
from sgdlab.engine.perturbation import central_differences, numerical_gradient_fast
from sgdlab.nn.layers import ActivationLayer, frozen_training
from sgdlab.nn.network import ConvNet

AGREEMENT = 1e-9  # absolute, every element of every parameter
CLASSES = 4


def conv(filters=3, size=3, stride=1, pad=1):
    return {"type": "convolution", "filter_num": filters, "filter_size": size, "stride": stride, "pad": pad}


def pool(size=2, stride=2, pad=0):
    return {"type": "pooling", "pool_size": size, "stride": stride, "pad": pad}


def affine(width=5):
    return {"type": "affine", "output_size": width}


RELU, TANH, SIGMOID = {"type": "relu"}, {"type": "tanh"}, {"type": "sigmoid"}
BATCH_NORM, DROPOUT = {"type": "batch_norm"}, {"type": "dropout", "ratio": 0.3}

NETS = {  # input (1, 8, 8), 3 filters of 3x3, as the layouts a ConvNet takes
    "conv-relu-pool-affine-relu": [conv(), RELU, pool(), affine(), RELU],
    "strided, padded, overlapping pooling": [conv(size=4, stride=2, pad=1), RELU, pool(3, 1, 1), affine(), SIGMOID,
                                             affine(), RELU],
    "batch norm, tanh, dropout": [conv(), BATCH_NORM, TANH, pool(), DROPOUT, affine(), BATCH_NORM, TANH, DROPOUT],
    "no pooling": [conv(size=4, stride=2, pad=0), TANH, affine()],
    "pooling before the activation": [conv(), pool(), RELU, affine(), RELU],
    "two convolutions (each nudge carries every channel through the second)": [conv(), RELU, conv(4), RELU, pool()],
    "a head unlike a dense net's (recomputed nudge by nudge)": [conv(), RELU, pool(), affine(), RELU, affine(),
                                                                  TANH],
    "batch norm in the head only before its first activation": [conv(), RELU, pool(), affine(), BATCH_NORM, RELU,
                                                                 affine(), RELU],
    "only the output layer after the trunk": [conv(), RELU, pool(), DROPOUT],
}


def deep_layers(widths=(3, 3, 4, 4, 4, 4), hidden=6, ratio=0.5):
    """Chapter 8's DeepConvNet's hidden layers at reduced width: three blocks of two 3x3 convolutions (padded by
    1, the fourth by 2) with relu, each block ending in 2x2 max pooling, then affine - relu - dropout."""
    layers = []
    for k, width in enumerate(widths):
        layers += [conv(width, 3, 1, 2 if k == 3 else 1), RELU, *([pool()] if k % 2 else [])]
    return [*layers, affine(hidden), RELU, {"type": "dropout", "ratio": ratio}]


class DeepConvNetLayout(ConvNet):
    """A ConvNet of `layers` with the book's DeepConvNet ending: the output affine layer, then dropout."""

    def __init__(self, input_dim, layers, output_size, ratio=0.5, rng=None, weight_init_std="he"):
        input_shape, specs = ConvNet.specification(input_dim, layers, output_size)
        self._assemble(input_shape, [*specs, {"type": "dropout", "ratio": ratio}], weight_init_std, 0.0, rng,
                       np.float64)


def deep_net(seed, input_dim=(1, 12, 12), batch=6):
    """A reduced DeepConvNet, its biases moved off 0, and a batch of MNIST-like images."""
    rng = np.random.default_rng(seed)
    network = DeepConvNetLayout(input_dim, deep_layers(), CLASSES, rng=rng)
    for key, value in network.params.items():
        if key.startswith("b"):
            network.params[key] = value + 0.1 * rng.standard_normal(value.shape)
    x = rng.integers(0, 256, (batch, *input_dim)) * (rng.random((batch, *input_dim)) < 0.5) / 255.0
    return network, x, rng.integers(0, CLASSES, batch)


def small_net(layers, seed, weight_decay=0.0, input_dim=(1, 8, 8)):
    """A conv net with biases, gammas and betas away from their starting values (every term counts), and a
    batch of MNIST-like images: pixels k/255, half of them 0."""
    rng = np.random.default_rng(seed)
    network = ConvNet(input_dim, layers, CLASSES, weight_init_std=0.5, weight_decay_lambda=weight_decay, rng=rng)
    for key, value in network.params.items():
        if key.startswith(("b", "gamma", "beta")):
            network.params[key] = value + 0.3 * rng.standard_normal(value.shape)
    n = 6
    x = rng.integers(0, 256, (n, *input_dim)) * (rng.random((n, *input_dim)) < 0.5) / 255.0
    return network, x, rng.integers(0, CLASSES, n)


def assert_agrees_with_textbook(network, x, t, **options):
    """Both methods on the same network, in training mode with the same dropout masks, on every parameter."""
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    with frozen_training(network.layers):
        expected_loss = network.loss(x, t, train_flg=True)
    statistics = {key: value.copy() for key, value in network.running_statistics.items()}
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    textbook = network.numerical_gradient(x, t)
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    loss, fast = numerical_gradient_fast(network, x, t, **options)
    assert loss == pytest.approx(expected_loss, rel=1e-14)
    assert list(fast) == list(textbook) == list(network.params)
    for key in textbook:
        assert fast[key].shape == textbook[key].shape
        np.testing.assert_allclose(fast[key], textbook[key], rtol=0, atol=AGREEMENT, err_msg=key)
        if key.startswith("W"):  # a gradient that is there (a bias's before batch norm is zero: it subtracts it)
            assert np.any(textbook[key] != 0), key
    for key, value in network.running_statistics.items():  # neither method moved them
        np.testing.assert_array_equal(value, statistics[key])


@pytest.mark.parametrize("layers", NETS.values(), ids=NETS)
@pytest.mark.parametrize("seed, weight_decay", [(0, 0.0), (1, 0.1)])
def test_agrees_with_textbook_on_every_parameter(layers, seed, weight_decay):
    assert_agrees_with_textbook(*small_net(layers, seed, weight_decay))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_reduced_deep_convnet_agrees_with_textbook_on_every_parameter(seed):
    """Six padded convolutions (each later one carrying one channel's change, then every channel), three
    poolings, and the book's unusual head (dropout after the output layer: recomputed nudge by nudge)."""
    network, x, t = deep_net(seed)
    assert [layer.pad for layer in network.layers if layer.kind == "convolution"] == [1, 1, 1, 2, 1, 1]
    assert_agrees_with_textbook(network, x, t)


def test_the_dense_heads_go_to_the_dense_machinery_and_the_others_are_recomputed():
    def head(name):
        network, x, t = small_net(NETS[name], 0)
        return DenseHead.of(network, ReferencePass(network, x, t, False))

    assert head("conv-relu-pool-affine-relu").names == {"W1": "W2", "b1": "b2", "W2": "W3", "b2": "b3"}
    assert set(head("batch norm, tanh, dropout").names.values()) == {"W2", "b2", "gamma2", "beta2", "W3", "b3"}
    assert head("a head unlike a dense net's (recomputed nudge by nudge)") is None
    assert head("batch norm in the head only before its first activation") is None


@pytest.mark.parametrize("workers", [1, 2])
def test_chunks_of_a_few_nudges_give_the_same_gradient(workers, monkeypatch):
    network, x, t = small_net(NETS["batch norm, tanh, dropout"], 2)
    state = network.dropout_layers[0].rng.bit_generator.state
    _, whole = numerical_gradient_fast(network, x, t, workers=workers)
    monkeypatch.setattr(conv_perturbation, "CHUNK_VALUES", 1)  # one nudge a chunk
    network.dropout_layers[0].rng.bit_generator.state = state  # the same masks (the layers share a generator)
    _, chunked = numerical_gradient_fast(network, x, t, workers=workers)
    for key in whole:
        np.testing.assert_allclose(chunked[key], whole[key], rtol=0, atol=1e-13, err_msg=key)


def test_a_training_step_moves_the_running_statistics_by_the_batch_once():
    network, x, t = small_net([conv(), BATCH_NORM, RELU, pool(), affine(), BATCH_NORM, RELU], 3)
    reference = network.copy()
    numerical_gradient_fast(network, x, t, follow_statistics=True)
    reference.loss(x, t, train_flg=True)
    for key, value in reference.running_statistics.items():
        np.testing.assert_allclose(network.running_statistics[key], value, rtol=1e-12, err_msg=key)
        assert np.any(value != 0)


# --- kinks ---------------------------------------------------------------------------------------------

def textbook_kinks(network, x, t, h=1e-4):
    """For every entry of every parameter: whether nudging it by +h or -h, and running the book's layers,
    moves some relu input across its kink (off the linear piece of its reach) or changes the winner of some
    max-pooling window. The definition, one forward pass per nudge."""

    def pieces():
        found, a = [], network.as_input(x)
        with frozen_training(network.layers):
            for layer in network.layers:
                if isinstance(layer, ActivationLayer) and layer.activation.linear_pieces(a) is not None:
                    found.append(("relu", a))
                a = layer.forward(a, True) if layer.uses_train_flg else layer.forward(a)
                if layer.kind == "pooling":
                    found.append(("pool", layer.arg_max.copy()))
        return found

    reference = pieces()
    kinks = {}
    for key, param in network.params.items():
        kinked = np.zeros(param.size, bool)
        flat = param.reshape(-1)
        for index in range(param.size):
            original = flat[index]
            for e in (h, -h):
                flat[index] = original + e
                for (kind, before), (_, after) in zip(reference, pieces()):
                    if kind == "pool":
                        kinked[index] |= np.any(after != before)
                    else:
                        kinked[index] |= np.any(np.abs(after - before) > np.abs(before))
            flat[index] = original
        kinks[key] = kinked.reshape(param.shape)
    return kinks


@pytest.mark.parametrize("name", ["conv-relu-pool-affine-relu", "pooling before the activation",
                                  "two convolutions (each nudge carries every channel through the second)",
                                  "a head unlike a dense net's (recomputed nudge by nudge)"])
def test_kinks_are_the_nudges_that_cross_a_relu_or_change_a_pooling_winner(name):
    network, x, t = small_net(NETS[name], 4)
    h = 0.01  # large enough for some nudges of these few units to cross
    _, _, kinks = central_differences(network, x, t, h, find_kinks=True)
    expected = textbook_kinks(network, x, t, h)
    assert any(kinks[key].any() for key in kinks)
    for key in network.params:
        np.testing.assert_array_equal(kinks[key], expected[key], err_msg=key)


def test_a_nudge_that_changes_a_pooling_winner_is_a_kink_even_with_a_smooth_activation():
    """Sample 0 is one pixel, at (2, 2): the first pooling window's four outputs see it through the filter's
    entries (2, 2), (2, 1), (1, 2) and (1, 1). Two of them 1e-6 apart: a nudge of either by h changes the
    window's winner."""
    network, x, t = small_net([conv(1, pad=0), TANH, pool(), affine()], 5)
    x[0] = 0.0
    x[0, 0, 2, 2] = 0.5
    W = network.params["W1"]
    W[0, 0, 2, 1], W[0, 0, 2, 2] = 0.8, 0.8 + 1e-6
    W[0, 0, 1, 2], W[0, 0, 1, 1] = -1.0, -1.0
    _, _, kinks = central_differences(network, x, t, find_kinks=True)
    expected = textbook_kinks(network, x, t)
    for key in network.params:
        np.testing.assert_array_equal(kinks[key], expected[key], err_msg=key)
    assert kinks["W1"][0, 0, 2, 1] and kinks["W1"][0, 0, 2, 2]
    assert not kinks["W2"].any() and not kinks["b2"].any()  # nothing piecewise after the trunk


def test_a_curved_net_without_pooling_has_no_kinks():
    network, x, t = small_net(NETS["no pooling"], 6)
    assert central_differences(network, x, t, find_kinks=True)[2] is None


# --- SimpleConvNet on real MNIST ------------------------------------------------------------------------

def textbook_entries(network, x, t, entries, h=1e-4):
    """The textbook central difference of the loss for the (key, flat index) `entries` only."""
    values = []
    with frozen_training(network.layers):
        for key, index in entries:
            flat = network.params[key].reshape(-1)
            original = flat[index]
            flat[index] = original + h
            plus = network.loss(x, t, train_flg=True)
            flat[index] = original - h
            minus = network.loss(x, t, train_flg=True)
            flat[index] = original
            values.append((plus - minus) / (2 * h))
    return np.array(values)


def sample_of_parameters(network, size, seed):
    """`size` (key, flat index) pairs, each parameter's share at least a few entries (all of a small one)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for key, param in network.params.items():
        count = min(param.size, max(8, size * param.size // network.num_params))
        chosen += [(key, int(i)) for i in rng.choice(param.size, count, replace=False)]
    return chosen


def simple_convnet_agrees_on_a_sample(mnist_dir, batch, size, trained_steps):
    (x, t), _ = load_mnist(data_dir=mnist_dir, flatten=False)
    x, t = x[:batch].astype(np.float64), t[:batch]
    network = SimpleConvNet(rng=0)
    for _ in range(trained_steps):  # weights as after some training: relu units on both sides of their kinks
        for key, grad in network.gradient(x, t).items():
            network.params[key] -= 0.1 * grad
    _, fast = numerical_gradient_fast(network, x, t)
    entries = sample_of_parameters(network, size, seed=batch)
    textbook = textbook_entries(network, x, t, entries)
    found = np.array([fast[key].reshape(-1)[index] for key, index in entries])
    np.testing.assert_allclose(found, textbook, rtol=0, atol=AGREEMENT)
    assert np.count_nonzero(textbook) > len(entries) // 2


def test_simple_convnet_agrees_with_textbook_on_real_images(mnist_dir):
    simple_convnet_agrees_on_a_sample(mnist_dir, batch=10, size=30, trained_steps=3)


@pytest.mark.slow
def test_simple_convnet_agrees_with_textbook_on_a_large_sample_of_a_batch_of_100(mnist_dir):
    simple_convnet_agrees_on_a_sample(mnist_dir, batch=100, size=1000, trained_steps=20)


def test_simple_convnet_kinks_are_found_on_real_images(mnist_dir):
    (x, t), _ = load_mnist(data_dir=mnist_dir, flatten=False)
    network = SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 2, "filter_size": 3}, hidden_size=6,
                            rng=0)
    x = x[:4, :, 9:19, 9:19].astype(np.float64)
    _, _, kinks = central_differences(network, x, t[:4], find_kinks=True)
    expected = textbook_kinks(network, x, t[:4])
    for key in network.params:
        np.testing.assert_array_equal(kinks[key], expected[key], err_msg=key)



# --- a layer kind added by its definition alone ----------------------------------------------------------

def test_a_new_layer_kind_is_differentiated_by_its_own_carry_and_one_without_is_refused_by_name():
    """A kind that doubles its input, defined here, declaring its carry: the fast numerical gradient takes it
    with no edit of its own, equal to the textbook; the same kind without a carry is a ConfigError naming it."""
    from sgdlab.errors import ConfigError
    from sgdlab.nn.layers import LAYER_KINDS, Layer

    class Doubling(Layer):
        kind = "doubling"
        channelwise = True

        def forward(self, x):
            return 2.0 * x

        def backward(self, dout):
            return 2.0 * dout

        def carry(self, moved, x, out, state, channel):
            return 2.0 * moved, None

        def __repr__(self):
            return "Doubling()"

    try:
        network, x, t = small_net([conv(), {"type": "doubling"}, RELU, pool(), affine(), RELU], 7)
        assert_agrees_with_textbook(network, x, t)
        del Doubling.carry
        with pytest.raises(ConfigError, match=r"^Doubling\(\) declares no carry"):
            numerical_gradient_fast(network, x, t)
    finally:
        LAYER_KINDS.pop("doubling")
