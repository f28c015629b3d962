"""Chapter 7's pieces: im2col and col2im, Convolution and Pooling, SimpleConvNet and ConvNet.

Each is held to an independent transcription of the book's code (`book_chapter7.py`) to float64 rounding,
and every backward pass to numerical differentiation by its definition.
"""

import copy
import math

import numpy as np
import pytest

import sgdlab
from sgdlab.engine.gradcheck import compare_gradients
from sgdlab.errors import ConfigError
from sgdlab.nn.im2col import col2im, im2col
from sgdlab.nn.layers import Convolution, Pooling, Relu, Sigmoid
from sgdlab.nn.network import ConvNet, SimpleConvNet, network_from_architecture
from tests.nn.book_chapter7 import (BookConvolution, BookPooling, BookSimpleConvNet, book_col2im,
                                    book_im2col)

# (N, C, H, W), filter (FH, FW), stride, pad: combinations where every window fits
GEOMETRIES = [((2, 1, 5, 5), (3, 3), 1, 0), ((3, 2, 7, 6), (3, 2), 2, 1), ((1, 3, 6, 6), (2, 2), 2, 0),
              ((2, 2, 4, 4), (4, 4), 1, 2), ((2, 1, 5, 7), (1, 3), 2, 1)]


def numerical_derivative(f, x, h=1e-6):
    """d f / d x by central differences, one element at a time: the definition."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        kept = x[index]
        x[index] = kept + h
        plus = f()
        x[index] = kept - h
        minus = f()
        x[index] = kept
        grad[index] = (plus - minus) / (2 * h)
    return grad


def test_im2col_docstring_example():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(im2col(x, 2, 2), [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])
    np.testing.assert_array_equal(col2im(np.ones((4, 4)), (1, 1, 3, 3), 2, 2)[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("shape, window, stride, pad", GEOMETRIES)
def test_im2col_and_col2im_are_the_books(shape, window, stride, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    col = im2col(x, *window, stride, pad)
    np.testing.assert_array_equal(col, book_im2col(x, *window, stride, pad))
    c = rng.standard_normal(col.shape)
    np.testing.assert_allclose(col2im(c, shape, *window, stride, pad), book_col2im(c, shape, *window, stride, pad),
                               rtol=1e-14, atol=1e-14)
    # col2im is im2col's adjoint: <im2col(x), c> == <x, col2im(c)>
    assert np.sum(col * c) == pytest.approx(np.sum(x * col2im(c, shape, *window, stride, pad)), rel=1e-12)


def test_im2col_keeps_the_dtype():
    x = np.ones((1, 1, 4, 4), np.float32)
    assert im2col(x, 2, 2).dtype == np.float32 and col2im(im2col(x, 2, 2), x.shape, 2, 2).dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda: im2col(np.zeros((1, 1, 3, 3)), 4, 4), "a window of 4 is larger than its input of 3"),
    (lambda: im2col(np.zeros((1, 1, 6, 6)), 3, 3, stride=2), "at stride 2 does not fit an input of 6"),
    (lambda: im2col(np.zeros((3, 3)), 2, 2), r"takes \(N, C, H, W\) images"),
    (lambda: col2im(np.zeros((5, 4)), (1, 1, 3, 3), 2, 2), r"col has shape \(5, 4\)"),
    (lambda: im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=0), "im2col's stride must be a positive integer, got 0"),
    (lambda: im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=-1), "im2col's stride must be a positive integer, got -1"),
    (lambda: im2col(np.zeros((1, 1, 4, 4)), 2, 2, pad=-1), "im2col's pad must be a non-negative integer, got -1"),
    (lambda: im2col(np.zeros((1, 1, 4, 4)), 0, 2), "im2col's filter_h must be a positive integer, got 0"),
    (lambda: im2col(np.zeros((1, 1, 4, 4)), 2, 1.5), "im2col's filter_w must be a positive integer, got 1.5"),
    (lambda: col2im(np.zeros((9, 4)), (1, 1, 4, 4), 2, 2, stride=0), "col2im's stride must be a positive integer"),
])
def test_im2col_refuses_what_does_not_fit(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


@pytest.mark.parametrize("shape, window, stride, pad", GEOMETRIES)
def test_convolution_is_the_books_and_its_backward_the_derivative(shape, window, stride, pad):
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((3, shape[1], *window)), rng.standard_normal(3)
    x = rng.standard_normal(shape)
    layer, book = Convolution(W, b, stride, pad), BookConvolution(W.copy(), b.copy(), stride, pad)
    out = layer.forward(x)
    np.testing.assert_allclose(out, book.forward(x), rtol=1e-13, atol=1e-14)
    assert out.shape[1:] == layer.output_shape(shape[1:])
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, book.backward(dout), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.dW, book.dW, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.db, book.db, rtol=1e-13, atol=1e-14)

    def weighted_output():
        return float(np.sum(layer.forward(x) * dout))

    for array, grad in ((x, dx), (W, layer.dW), (b, layer.db)):
        np.testing.assert_allclose(grad, numerical_derivative(weighted_output, array), rtol=1e-6, atol=1e-8)


POOLINGS = [((2, 3, 6, 6), 2, 2, 2), ((2, 2, 5, 5), 3, 3, 1), ((1, 2, 4, 6), 2, 2, 1), ((2, 1, 7, 7), 3, 3, 2)]


@pytest.mark.parametrize("shape, pool_h, pool_w, stride", POOLINGS)
@pytest.mark.parametrize("ties", [False, True])
def test_pooling_is_the_books_and_its_backward_the_derivative(shape, pool_h, pool_w, stride, ties):
    rng = np.random.default_rng(2)
    x = rng.integers(-2, 3, shape).astype(float) if ties else rng.standard_normal(shape)
    layer, book = Pooling(pool_h, pool_w, stride), BookPooling(pool_h, pool_w, stride)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, book.forward(x))
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(layer.backward(dout), book.backward(dout))  # ties: the first maximum wins
    if not ties:  # (away from ties the maximum is differentiable)
        np.testing.assert_allclose(layer.backward(dout),
                                   numerical_derivative(lambda: float(np.sum(layer.forward(x) * dout)), x),
                                   rtol=1e-6, atol=1e-8)


def test_pooling_has_the_books_signature_and_pads_with_minus_infinity():
    assert Pooling(2, 2).stride == 2 and Pooling(2, 2).pad == 0
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # every value negative: a zero pad would win the edge windows
    layer = Pooling(2, 2, stride=2, pad=1)
    out = layer.forward(x)
    assert out.shape == (1, 1, 3, 3) == (1, *layer.output_shape((1, 4, 4)))
    np.testing.assert_array_equal(out[0, 0], [[-1, -2, -4], [-5, -6, -8], [-13, -14, -16]])
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.sum() == 9  # every window's gradient reaches a real pixel


@pytest.mark.parametrize("make, input_shape, message", [
    (lambda: Convolution(np.zeros((2, 1, 5, 5)), np.zeros(2)), (1, 3, 3), r"Convolution\(2 filters 1x5x5.*a window "
                                                                          "of 5 is larger than its input of 3"),
    (lambda: Convolution(np.zeros((2, 1, 3, 3)), np.zeros(2), stride=2), (1, 6, 6), "at stride 2 does not fit an "
                                                                                    "input of 6"),
    (lambda: Convolution(np.zeros((2, 3, 3, 3)), np.zeros(2)), (1, 6, 6), "takes 3-channel images, got 1"),
    (lambda: Pooling(2, 2), (3, 5, 5), r"Pooling\(2x2, stride 2, pad 0\) \(height\): a window of 2 at stride 2 "
                                       "does not fit an input of 5"),
    (lambda: Pooling(2, 2), (784,), r"takes \(channels, height, width\) images"),
])
def test_a_bad_combination_names_the_layer_and_the_sizes(make, input_shape, message):
    with pytest.raises(ConfigError, match=message):
        make().output_shape(input_shape)


@pytest.mark.parametrize("make, message", [
    (lambda: Convolution(np.zeros((2, 3, 3)), np.zeros(2)), r"filters W of shape \(FN, C, FH, FW\) and biases b of "
                                                             r"shape \(FN,\), got W of shape \(2, 3, 3\)"),
    (lambda: Convolution(np.zeros((2, 1, 3, 3)), np.zeros(3)), r"got W of shape \(2, 1, 3, 3\) and b of shape \(3,\)"),
    (lambda: Convolution(np.zeros((2, 1, 3, 3)), np.zeros((2, 1))), r"and b of shape \(2, 1\)"),
    (lambda: Convolution(np.zeros((1, 1, 33, 32)), np.zeros(1)), "a filter of 33x32 has more than the 1024 offsets"),
    (lambda: Pooling(1000, 1000, stride=1026, pad=999), r"Pooling\(1000x1000, stride 1026, pad 999\): a window of "
                                                        "1000x1000 has more than the 1024 offsets"),
])
def test_a_layer_refuses_parameters_it_cannot_use(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
    Convolution(np.zeros((1, 1, 32, 32)), np.zeros(1))  # the largest filter and window
    Pooling(32, 32)


def conv_relu(filters, pad=1):
    return [{"type": "convolution", "filter_num": filters, "filter_size": 3, "pad": pad}, {"type": "relu"}]


POOL = [{"type": "pooling", "pool_size": 2, "stride": 2}]
# The book's chapter-8 DeepConvNet (its layers; its head's dropout left out)
DEEP_CONV_NET = [*conv_relu(16), *conv_relu(16), *POOL, *conv_relu(32), *conv_relu(32, pad=2), *POOL, *conv_relu(64),
                 *conv_relu(64), *POOL, {"type": "affine", "output_size": 50}, {"type": "relu"}]


def work_per_sample(network):
    shape, work = network.input_shape, 0
    for layer in network.layers:
        work += layer.work_per_sample(shape)
        shape = layer.output_shape(shape)
    return work


@pytest.mark.parametrize("layers", [DEEP_CONV_NET, conv_relu(64) * 6, [{"type": "batch_norm"}, *conv_relu(8), *POOL]])
def test_one_samples_buffers_are_the_work_its_layers_declare_within_the_bound(layers):
    from sgdlab.engine.forward import ForwardPass
    from sgdlab.nn.network import MAX_WORK_PER_SAMPLE
    from sgdlab.training.evaluation import CHUNK_BYTES

    network = ConvNet((1, 28, 28), layers, 10, rng=0, dtype=np.float64)
    work = work_per_sample(network)
    assert work <= MAX_WORK_PER_SAMPLE
    # what one more sample costs the test-time forward pass (evaluate's, the page's): at most what its layers declare
    per_row = ForwardPass(network, 3).nbytes - ForwardPass(network, 2).nbytes
    assert 0 < per_row <= work * network.dtype.itemsize
    assert MAX_WORK_PER_SAMPLE * network.dtype.itemsize <= CHUNK_BYTES // 2  # one row always fits an evaluation chunk


def test_the_books_deep_conv_net_fits_the_bound_seven_times_over_and_more_work_is_refused_naming_the_layer():
    from sgdlab.nn.network import MAX_WORK_PER_SAMPLE

    assert 7 * work_per_sample(ConvNet((1, 28, 28), DEEP_CONV_NET, 10, rng=0)) < MAX_WORK_PER_SAMPLE
    with pytest.raises(ConfigError, match=r"layer 2 of 3, Convolution\(1 filters 1000x28x28, stride 1, pad 27\), on "
                                          r"samples of shape \(1000, 28, 28\) giving \(1, 55, 55\), writes "
                                          r"2,378,330,050 values per sample, which brings the network's to "
                                          r"2,379,115,618, more than the 4,194,304"):
        ConvNet((1, 28, 28), [{"type": "convolution", "filter_num": 1000, "filter_size": 1},
                              {"type": "convolution", "filter_num": 1, "filter_size": 28, "pad": 27}], 10)
    # the sum is bounded: five convolutions of 952,400 values each are too many
    with pytest.raises(ConfigError, match=r"layer 9 of 13, Convolution\(100 filters 100x3x3.* writes 952,400 values "
                                          "per sample, which brings the network's to 4,210,340"):
        ConvNet((1, 28, 28), conv_relu(100) * 6, 10)


@pytest.mark.parametrize("first", [{"type": "relu"}, {"type": "tanh"}, {"type": "dropout", "ratio": 0.2}])
def test_a_convnet_cannot_begin_with_a_layer_that_works_in_place_on_the_images(first):
    with pytest.raises(ConfigError, match=r"layer 1 of 3, \w+\(.*\), works in place, and the first layer's input is "
                                          "the images themselves"):
        ConvNet((1, 28, 28), [first, *conv_relu(2)[:1]], 10)
    ConvNet((1, 28, 28), [*conv_relu(2)[:1], first], 10)  # after a layer that reads them, it works


def book_params(net):
    return {key: value.copy() for key, value in net.params.items()}


def test_a_networks_activation_layers_are_the_books_classes():
    """The book's code tells layers apart by class (isinstance(layer, Relu)); a network's are those classes."""
    layers = SimpleConvNet(rng=0).layers
    assert [type(layer) for layer in layers[:2]] == [Convolution, Relu] and isinstance(layers[4], Relu)
    assert isinstance(sgdlab.TwoLayerNet(rng=0).layers[1], Sigmoid)


def test_simple_convnet_has_the_books_parameters_and_numbers():
    net = SimpleConvNet(rng=0)
    assert {key: value.shape for key, value in net.params.items()} == {
        "W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,), "W3": (100, 10), "b3": (10,)}
    assert net.input_shape == (1, 28, 28) and net.output_size == 10
    assert np.std(net.params["W2"]) == pytest.approx(0.01, rel=0.01) and not net.params["b1"].any()
    rng = np.random.default_rng(3)
    x, t = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
    book = BookSimpleConvNet(book_params(net), net.conv_param)
    np.testing.assert_allclose(net.scores(x), book.predict(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(net.scores(x.reshape(6, 784)), net.scores(x), rtol=0, atol=0)  # rows or images
    expected = book.gradient(x, t)
    grads = net.gradient(x.reshape(6, 784), t)
    assert list(grads) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for key in grads:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-12, atol=1e-16)
    assert net.accuracy(x, t, batch_size=4) == np.mean(book.predict(x).argmax(axis=1) == t)  # 6 of 6 counted


def test_simple_convnet_gradient_is_the_numerical_gradient():
    net = SimpleConvNet((1, 10, 10), {"filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}, hidden_size=6,
                        output_size=4, weight_init_std=0.3, rng=4)
    assert net.params["W2"].shape == (3 * 5 * 5, 6)
    rng = np.random.default_rng(5)
    x, t = rng.random((5, 100)), rng.integers(0, 4, 5)
    for check in compare_gradients(net.numerical_gradient(x, t), net.gradient(x, t)):
        assert check.max_abs_diff < 1e-8 and check.max_rel_error < 1e-5, check


SMALL_CONVNET = [
    {"type": "convolution", "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "batch_norm"}, {"type": "relu"},
    {"type": "pooling", "pool_size": 2}, {"type": "convolution", "filter_num": 3, "filter_size": 3, "stride": 2,
                                          "pad": 1},
    {"type": "tanh"}, {"type": "dropout", "ratio": 0.3}, {"type": "affine", "output_size": 6}, {"type": "sigmoid"},
]


def small_convnet(**options):
    return ConvNet((1, 14, 14), SMALL_CONVNET, 5, rng=1, **options)


def test_a_convnet_numbers_its_parameters_as_the_book_does():
    net = small_convnet()
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4", "gamma1", "beta1"]
    assert net.params["W2"].shape == (3, 4, 3, 3) and net.params["W3"].shape == (48, 6)
    assert net.params["gamma1"].shape == (4 * 14 * 14,)  # the book's batch norm: per element of the feature map
    assert list(net.running_statistics) == ["running_mean1", "running_var1"]
    assert net.decayed_keys == ["W1", "W2", "W3", "W4"]


def test_he_and_xavier_scale_by_each_layers_fan_in():
    net = ConvNet((3, 30, 30), [{"type": "convolution", "filter_num": 200, "filter_size": 5}], 10,
                  weight_init_std="he", rng=0)
    assert np.std(net.params["W1"]) == pytest.approx(math.sqrt(2 / (3 * 5 * 5)), rel=0.03)
    assert np.std(net.params["W2"]) == pytest.approx(math.sqrt(2 / (200 * 26 * 26)), rel=0.03)


@pytest.mark.parametrize("weight_decay_lambda", [0.0, 0.1])
def test_a_convnets_gradient_is_the_numerical_gradient(restart_dropout_masks, weight_decay_lambda):
    net = small_convnet(weight_decay_lambda=weight_decay_lambda)
    rng = np.random.default_rng(6)
    x, t = rng.random((6, 1, 14, 14)), rng.integers(0, 5, 6)
    restart_dropout_masks(net)
    numerical = net.numerical_gradient(x, t, h=1e-6)  # (at the book's 1e-4 a nudge of W1 crosses a relu's kink)
    restart_dropout_masks(net)
    for check in compare_gradients(numerical, net.gradient(x, t)):
        if check.name == "b1":  # a bias before batch norm has no effect: both are rounding noise
            assert check.max_abs_diff < 1e-9, check
        else:
            assert check.max_abs_diff < 1e-7 and check.max_rel_error < 1e-5, check


@pytest.mark.parametrize("layers, message", [
    ([{"type": "convolution", "filter_num": 4, "filter_size": 30}], r"layer 1 of 2: Convolution\(4 filters 1x30x30, "
                                                                    r"stride 1, pad 0\) \(height\): a window of 30 is "
                                                                    "larger than its input of 28"),
    ([{"type": "convolution", "filter_num": 4, "filter_size": 5, "stride": 2}], "layer 1 of 2: .*at stride 2 does "
                                                                                "not fit an input of 28"),
    ([{"type": "convolution", "filter_num": 4, "filter_size": 5}, {"type": "pooling", "pool_size": 5}],
     r"layer 2 of 3: Pooling\(5x5, stride 2, pad 0\) \(height\): a window of 5 at stride 2 does not fit an input "
     "of 24"),
    ([{"type": "affine", "output_size": 10}, {"type": "pooling", "pool_size": 2}], r"layer 2 of 3: Pooling.*takes "
                                                                                   r"\(channels, height, width\)"),
    ([{"type": "convolution", "filter_num": 4}], "a convolution layer needs its filter_size"),
    ([{"type": "convolution", "filter_num": 4, "filter_size": 3, "padding": 1}], "takes filter_num, filter_size, "
                                                                                 "stride, pad, not padding"),
    ([{"type": "convolution", "filter_num": -4, "filter_size": 3}], "convolution's filter_num must be a positive "
                                                                     "integer, got -4"),
    ([{"type": "softsign"}], "a layer's type must be one of affine, batch_norm, convolution, dropout, pooling"),
    (["relu"], "a layer is specified by a dict with its 'type'"),
    ([{"type": "relu"}] * 100, "layers is a list of fewer than 100"),
    ([{"type": "convolution", "filter_num": 10 ** 6, "filter_size": 1}], "values per sample"),
])
def test_a_bad_specification_is_one_clear_error(layers, message):
    with pytest.raises(ConfigError, match=message):
        ConvNet((1, 28, 28), layers, 10)


def test_too_many_parameters_are_refused_before_any_is_drawn():
    with pytest.raises(ConfigError, match="layer 2 of 3: these layers make more than the 1,073,741,824 parameters"):
        ConvNet((1, 28, 28), [{"type": "convolution", "filter_num": 20000, "filter_size": 28},
                              {"type": "affine", "output_size": 100_000}], 10)


@pytest.mark.parametrize("make", [lambda: SimpleConvNet(rng=2, dtype=np.float32),
                                  lambda: small_convnet(weight_decay_lambda=0.2)])
def test_the_architecture_rebuilds_the_network(make):
    net = make()
    rebuilt = network_from_architecture(net.architecture())
    assert type(rebuilt) is type(net) and rebuilt.architecture() == net.architecture()
    assert {k: v.shape for k, v in rebuilt.params.items()} == {k: v.shape for k, v in net.params.items()}
    clone = net.copy()
    x = np.random.default_rng(7).random((3, math.prod(net.input_shape))).astype(net.dtype)
    np.testing.assert_array_equal(clone.scores(x), net.scores(x))


def test_the_books_chapter_7_names_are_sgdlabs():
    assert sgdlab.im2col is im2col and sgdlab.col2im is col2im
    assert sgdlab.Convolution is Convolution and sgdlab.Pooling is Pooling
    assert sgdlab.ConvNet is ConvNet and sgdlab.SimpleConvNet is SimpleConvNet
    assert {"im2col", "col2im", "Convolution", "Pooling", "ConvNet", "SimpleConvNet"} <= set(sgdlab.__all__)


def test_frozen_training_keeps_one_dropout_mask_and_the_statistics():
    net = small_convnet()
    x, t = np.random.default_rng(8).random((4, 196)), np.array([0, 1, 2, 3])
    running = copy.deepcopy(dict(net.running_statistics))
    with sgdlab.nn.layers.frozen_training(net.layers):
        first = net.loss(x, t, train_flg=True)
        assert net.loss(x, t, train_flg=True) == first
    for key, value in net.running_statistics.items():
        np.testing.assert_array_equal(value, running[key])


STEP_LAYERS = [
    (lambda rng: Convolution(rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)), (4, 2, 6, 6)),
    (lambda rng: Convolution(rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(2), 2, 1), (3, 3, 7, 6)),
    (lambda rng: Convolution(rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4), 1, 1), (3, 3, 5, 7)),
    (lambda rng: Convolution(rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2), 1, 2), (2, 3, 4, 4)),
    (lambda rng: Convolution(rng.standard_normal((2, 2, 2, 3)), rng.standard_normal(2), 3, 2), (2, 2, 7, 8)),
    # 64 window values or more: the shifted products at stride 1 (pad 1 and 2, a rectangular filter), the columns
    # at stride 2 or where the shifted products would compute over 1.5 times as many positions as outputs
    (lambda rng: Convolution(rng.standard_normal((3, 8, 3, 3)), rng.standard_normal(3), 1, 1), (3, 8, 6, 7)),
    (lambda rng: Convolution(rng.standard_normal((2, 8, 3, 3)), rng.standard_normal(2), 1, 2), (2, 8, 4, 5)),
    (lambda rng: Convolution(rng.standard_normal((3, 11, 3, 2)), rng.standard_normal(3), 1, 1), (2, 11, 5, 6)),
    (lambda rng: Convolution(rng.standard_normal((2, 8, 3, 3)), rng.standard_normal(2), 1, 0), (2, 8, 6, 6)),
    (lambda rng: Convolution(rng.standard_normal((2, 8, 3, 3)), rng.standard_normal(2), 2, 1), (2, 8, 7, 7)),
    (lambda rng: Pooling(2, 2), (4, 3, 6, 6)),
    (lambda rng: Pooling(3, 3, 1), (2, 2, 5, 5)),
    (lambda rng: Pooling(3, 3, 2, 1), (2, 2, 7, 7)),
]


@pytest.mark.parametrize("make, shape", STEP_LAYERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("first", [False, True])
def test_the_training_step_forms_give_the_layers_numbers(make, shape, dtype, first):
    rng = np.random.default_rng(9)
    layer = make(rng)
    if layer.parameters:
        layer.W, layer.b = layer.W.astype(dtype), layer.b.astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    x[:, :, 1, :2] = x[:, :, 0, :2]  # some ties for the pooling's first maximum
    expected_out = layer.forward(x)
    dout = rng.standard_normal(expected_out.shape).astype(dtype)
    expected_dx = layer.backward(dout)
    expected_grads = layer.gradients
    tolerance = {"rtol": 1e-12, "atol": 1e-13} if dtype == np.float64 else {"rtol": 2e-5, "atol": 2e-5}

    work = layer.workspace(len(x) + 2, shape[1:], dtype, True)  # more rows than used: a last, partial chunk
    out = np.empty(expected_out.shape, dtype)
    assert layer.forward_into(x, out, True, work) is out
    np.testing.assert_allclose(out, expected_out, **tolerance)
    dx = None if first else np.empty_like(x)
    grads = tuple(np.empty_like(p) for p in layer.parameters)
    assert layer.backward_into(x, out, dout, dx, grads, work) is dx
    if not first:
        np.testing.assert_allclose(dx, expected_dx, **tolerance)
    for grad, expected in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(grad, expected, **tolerance)
    test_time = np.empty_like(out)
    layer.forward_into(x, test_time, False, layer.workspace(len(x), shape[1:], dtype, False))
    np.testing.assert_allclose(test_time, expected_out, **tolerance)


@pytest.mark.parametrize("filters, stride, pad, shape, form", [
    ((2, 1, 3, 3), 1, 1, (1, 28, 28), "per_sample"), ((3, 8, 3, 3), 1, 1, (8, 6, 7), "shifted"),
    ((2, 8, 3, 3), 1, 2, (8, 4, 5), "shifted"), ((2, 8, 3, 3), 1, 0, (8, 6, 6), "columns"),
    ((2, 8, 3, 3), 2, 1, (8, 7, 7), "columns"), ((2, 8, 3, 3), 1, 3, (8, 6, 6), "columns")])
def test_a_convolution_chooses_its_chunk_form_by_its_window_stride_and_waste(filters, stride, pad, shape, form):
    layer = Convolution(np.ones(filters), np.zeros(filters[0]), stride, pad)
    work = layer.workspace(2, shape, np.float64, True)
    assert form == ("per_sample" if work["per_sample"] else "shifted" if work["shifted"] else "columns")
