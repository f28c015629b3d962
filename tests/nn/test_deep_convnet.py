"""Chapter 8's DeepConvNet, held to an independent transcription of the book's (`book_chapter8.py`): its layers
and parameters, its initial weights, its loss and gradients on the same weights and dropout masks, and its
gradient to numerical differentiation on a narrower version of it."""

import copy
import math

import numpy as np
import pytest

import sgdlab
from sgdlab.engine.backprop import BackpropStep
from sgdlab.engine.gradcheck import compare_gradients
from sgdlab.errors import ConfigError
from sgdlab.nn.init import init_std
from sgdlab.nn.network import (NETWORK_CLASSES, ConvNet, DeepConvNet, network_from_architecture,
                               planned_parameter_count)
from sgdlab.runs.model_file import load_model, save_model
from tests.nn.book_chapter8 import BookDeepConvNet, BookDropout

BOOK_SHAPES = {"W1": (16, 1, 3, 3), "b1": (16,), "W2": (16, 16, 3, 3), "b2": (16,), "W3": (32, 16, 3, 3),
               "b3": (32,), "W4": (32, 32, 3, 3), "b4": (32,), "W5": (64, 32, 3, 3), "b5": (64,),
               "W6": (64, 64, 3, 3), "b6": (64,), "W7": (1024, 50), "b7": (50,), "W8": (50, 10), "b8": (10,)}
BOOK_LAYERS = ["Convolution", "Relu", "Convolution", "Relu", "Pooling"] * 3 + [
    "Affine", "Relu", "Dropout", "Affine", "Dropout"]


def book_draws(seed):
    """The book's np.random.randn and np.random.rand, drawing from the generator sgdlab draws from."""
    generator = np.random.default_rng(seed)
    return (lambda *shape: generator.standard_normal(shape)), (lambda *shape: generator.random(shape))


def draw_the_same_masks(book, net):
    """Make the book's dropout layers draw, from now on, the masks `net`'s will draw next (from a copy of the one
    generator its dropout layers share)."""
    generator = copy.deepcopy(net.dropout_layers[0].rng)
    assert all(layer.rng is net.dropout_layers[0].rng for layer in net.dropout_layers)
    for layer in book.layers:
        if isinstance(layer, BookDropout):
            layer.rand = lambda *shape: generator.random(shape)


def mnist_like(seed, n):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28)), rng.integers(0, 10, n)


def test_deep_convnet_has_the_books_layers_parameters_and_count():
    net = DeepConvNet(rng=0)
    assert [type(layer).__name__ for layer in net.layers] == BOOK_LAYERS
    assert {key: value.shape for key, value in net.params.items()} == BOOK_SHAPES
    assert net.num_params == 123_552 == planned_parameter_count(net.architecture())
    assert [(layer.stride, layer.pad) for layer in net.layers if layer.kind == "convolution"] == \
        [(1, 1), (1, 1), (1, 1), (1, 2), (1, 1), (1, 1)]
    assert [(layer.pool_h, layer.pool_w, layer.stride) for layer in net.layers if layer.kind == "pooling"] == \
        [(2, 2, 2)] * 3
    assert [layer.dropout_ratio for layer in net.dropout_layers] == [0.5, 0.5]
    assert net.input_shape == (1, 28, 28) and net.output_size == 10 and net.dtype == np.float64
    assert not any(net.params[f"b{k}"].any() for k in range(1, 9))


def test_deep_convnet_draws_the_books_he_weights_exactly():
    """The same standard normal draws, in the same order, times the book's hand-listed sqrt(2 / fan-in) per layer:
    the same weights to the last bit."""
    randn, _ = book_draws(11)
    book = BookDeepConvNet(randn=randn)
    net = DeepConvNet(rng=11)
    for key, expected in book.params.items():
        np.testing.assert_array_equal(net.params[key], expected, err_msg=key)
    # "he" computes each layer's fan-in (C * FH * FW, or the affine layer's inputs) as the book lists them
    fan_ins = [math.prod(net.params[f"W{k}"].shape[1:]) if k <= 6 else net.params[f"W{k}"].shape[0]
               for k in range(1, 9)]
    assert fan_ins == [9, 144, 144, 288, 288, 576, 1024, 50]
    assert [init_std("he", n) for n in fan_ins] == list(book.weight_init_scales)


@pytest.mark.parametrize("seed", [0, 1])
def test_deep_convnets_initial_weights_spread_as_he_says(seed):
    """Each layer's weights have mean 0 and standard deviation sqrt(2 / fan-in), within what their number of
    samples allows (four standard errors)."""
    net = DeepConvNet(rng=seed)
    for k in range(1, 9):
        W = net.params[f"W{k}"]
        fan_in = math.prod(W.shape[1:]) if W.ndim == 4 else W.shape[0]
        scale, n = math.sqrt(2 / fan_in), W.size
        assert abs(W.std() / scale - 1) < 4 / math.sqrt(2 * n), (k, W.std(), scale)
        assert abs(W.mean()) < 4 * scale / math.sqrt(n), (k, W.mean())


def book_with_the_weights_of(net):
    book = BookDeepConvNet(randn=book_draws(0)[0])
    book.load_params({key: value.astype(np.float64) for key, value in net.params.items()})
    return book


def books_loss_without_its_delta(book, t):
    """The book's cross-entropy of its last softmax without the 1e-7 it adds inside the log (sgdlab's loss is the
    exact one, through log-softmax: they differ by about 1e-7 over the probabilities)."""
    return -np.mean(np.log(book.last_layer.y[np.arange(len(t)), t]))


def test_deep_convnet_computes_the_books_scores_and_loss_with_the_same_masks():
    net = DeepConvNet(rng=2)
    x, t = mnist_like(3, 5)
    book = book_with_the_weights_of(net)
    # test time: no masks, every unit kept and scaled by 0.5, the class scores too
    np.testing.assert_allclose(net.scores(x), book.predict(x), rtol=1e-12, atol=1e-15)
    assert net.accuracy(x, t) == np.mean(book.predict(x).argmax(axis=1) == t)
    # training: the same masks
    draw_the_same_masks(book, net)
    book.loss(x, t)
    assert net.loss(x, t, train_flg=True) == pytest.approx(books_loss_without_its_delta(book, t), rel=1e-13)
    for layer, book_layer in zip(net.dropout_layers, [layer for layer in book.layers if isinstance(layer, BookDropout)]):
        np.testing.assert_array_equal(layer.mask, book_layer.mask)
    output_mask = net.dropout_layers[1].mask
    assert output_mask.shape == (5, 10) and 0 < output_mask.mean() < 1  # some class scores zeroed, not all


def test_the_output_dropout_halves_the_test_time_scores_and_keeps_their_order():
    net = DeepConvNet(rng=4)
    x, _ = mnist_like(5, 6)
    assert net.layers[-1].kind == "dropout" and net.layers[-2].kind == "affine"
    unscaled = x
    for layer in net.layers[:-1]:
        unscaled = layer.forward(unscaled, False) if layer.uses_train_flg else layer.forward(unscaled)
    np.testing.assert_array_equal(net.scores(x), 0.5 * unscaled)
    np.testing.assert_array_equal(net.scores(x).argmax(axis=1), unscaled.argmax(axis=1))


@pytest.mark.parametrize("path", ["readable", "training step"])
def test_deep_convnet_computes_the_books_gradients_with_the_same_masks(path):
    net = DeepConvNet(rng=6)
    x, t = mnist_like(7, 4)
    book = book_with_the_weights_of(net)
    draw_the_same_masks(book, net)
    expected = book.gradient(x, t)
    expected_loss = books_loss_without_its_delta(book, t)
    loss, grads = net.loss_and_gradient(x, t) if path == "readable" else BackpropStep(net, len(x))(x, t)
    assert loss == pytest.approx(expected_loss, rel=1e-13)
    assert list(grads) == list(BOOK_SHAPES)
    for key in grads:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-10, atol=1e-14, err_msg=key)


NARROW = [{"filter_num": n} for n in (2, 2, 3, 3, 4, 4)]  # the book's sizes, pads and strides, fewer filters


def narrow_deep_convnet(**options):
    return DeepConvNet((1, 12, 12), *NARROW, hidden_size=5, output_size=4, **options)


def restart_masks(net, seed):
    """One fresh generator for the net's dropout layers, as they share one: the next pass draws known masks."""
    generator = np.random.default_rng(seed)
    for layer in net.dropout_layers:
        layer.rng = generator


def test_a_narrow_deep_convnets_gradient_is_the_numerical_gradient():
    """Backpropagation through every layer of the net, the output dropout's mask included, against central
    differences of the loss (the masks drawn on the first nudge and kept), with the same masks."""
    net = narrow_deep_convnet(rng=8)
    assert [net.params[f"W{k}"].shape[0] for k in range(1, 7)] == [2, 2, 3, 3, 4, 4]
    assert net.params["W7"].shape == (4 * 2 * 2, 5)  # 12 -> 6 -> 8 (padded by 2) -> 4 -> 2 after each pooling
    rng = np.random.default_rng(9)
    x, t = rng.random((4, 144)), rng.integers(0, 4, 4)
    for k in range(1, 9):  # biases off zero: where a relu leaves a window blank, a zero bias sits on the next one's kink
        net.params[f"b{k}"] = rng.normal(0, 0.1, net.params[f"b{k}"].shape)
    restart_masks(net, 0)
    numerical = net.numerical_gradient(x, t)
    masks = [layer.mask.copy() for layer in net.dropout_layers]
    restart_masks(net, 0)
    backprop = net.gradient(x, t)
    for layer, mask in zip(net.dropout_layers, masks):
        np.testing.assert_array_equal(layer.mask, mask)
    assert 0 < masks[1].mean() < 1  # the output dropout zeroed some scores: their gradients are zero
    for check in compare_gradients(numerical, backprop):
        assert check.max_abs_diff < 1e-8 and check.max_rel_error < 1e-5, check


def test_deep_convnet_takes_the_books_conv_params_each_completed_by_the_books_for_its_place():
    net = DeepConvNet(conv_param_4={"filter_num": 8}, hidden_size=20, rng=0)
    assert net.conv_params[3] == {"filter_num": 8, "filter_size": 3, "pad": 2, "stride": 1}
    assert net.params["W4"].shape == (8, 32, 3, 3) and net.params["W5"].shape == (64, 8, 3, 3)
    assert net.params["W7"].shape == (1024, 20)
    with pytest.raises(ConfigError, match="conv_param_2 holds filter_num, filter_size, pad, stride, got "
                                          r"\{'filters': 3\}"):
        DeepConvNet(conv_param_2={"filters": 3})
    with pytest.raises(ConfigError, match="hidden_size"):
        DeepConvNet(hidden_size=0)


@pytest.mark.parametrize("make", [lambda: DeepConvNet(rng=3, dtype=np.float32),
                                  lambda: narrow_deep_convnet(rng=3, weight_decay_lambda=0.1),
                                  lambda: ConvNet((1, 12, 12), [{"type": "convolution", "filter_num": 3,
                                                                 "filter_size": 3}, {"type": "tanh"}], 4,
                                                  output_layers=[{"type": "dropout", "ratio": 0.2},
                                                                 {"type": "sigmoid"}], rng=3)])
def test_a_deep_convnet_and_a_convnets_output_layers_survive_the_model_file(make, tmp_path):
    net = make()
    assert planned_parameter_count(net.architecture()) == net.num_params
    save_model(tmp_path / "model.npz", net)
    loaded, _ = load_model(tmp_path / "model.npz")
    assert type(loaded) is type(net) and loaded.architecture() == net.architecture()
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in net.layers]
    x = np.random.default_rng(4).random((3, math.prod(net.input_shape))).astype(net.dtype)
    np.testing.assert_array_equal(loaded.scores(x), net.scores(x))
    assert network_from_architecture(net.architecture()).architecture() == net.architecture()


def test_a_convnet_without_output_layers_records_none():
    architecture = ConvNet((1, 12, 12), [{"type": "convolution", "filter_num": 3, "filter_size": 3}], 4).architecture()
    assert "output_layers" not in architecture


@pytest.mark.parametrize("output_layer, problem", [
    ({"type": "affine", "output_size": 4}, "an output layer keeps the 4 scores as they are"),
    ({"type": "batch_norm"}, "an output layer keeps the 4 scores as they are"),
    ({"type": "pooling", "pool_size": 2}, "an output layer keeps the 4 scores as they are"),
    ({"type": "softmax"}, "a layer's type must be one of"),
    ("dropout", "a layer is specified by a dict")])
def test_an_output_layer_that_would_change_the_scores_shape_or_add_parameters_is_refused(output_layer, problem):
    with pytest.raises(ConfigError, match=problem):
        ConvNet((1, 12, 12), [{"type": "convolution", "filter_num": 3, "filter_size": 3}], 4,
                output_layers=[output_layer])
    with pytest.raises(ConfigError, match="output_layers is a list"):
        ConvNet((1, 12, 12), [], 4, output_layers={"type": "dropout"})


def test_deep_convnet_is_sgdlabs_own():
    assert sgdlab.DeepConvNet is DeepConvNet and "DeepConvNet" in sgdlab.__all__
    assert NETWORK_CLASSES["DeepConvNet"] is DeepConvNet
