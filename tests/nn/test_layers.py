import copy
from functools import partial

import numpy as np
import pytest

from sgdlab.nn.gradient import numerical_gradient
from sgdlab.nn.activations import activation_names
from sgdlab.nn.layers import (Affine, BatchNormalization, Dropout, Relu, Sigmoid, SoftmaxWithLoss, activation_layer)


def test_affine_hand_values():
    W = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = np.array([0.5, -0.5])
    layer = Affine(W, b)
    x = np.array([[1.0, 0.0, -1.0]])
    np.testing.assert_array_equal(layer.forward(x), [[-3.5, -4.5]])
    dout = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(dout), [[5.0, 11.0, 17.0]])
    np.testing.assert_array_equal(layer.dW, [[1.0, 2.0], [0.0, 0.0], [-1.0, -2.0]])
    np.testing.assert_array_equal(layer.db, [1.0, 2.0])


def test_affine_flattens_image_batches_and_restores_their_shape():
    rng = np.random.default_rng(0)
    layer = Affine(rng.standard_normal((12, 3)), np.zeros(3))
    x = rng.standard_normal((2, 1, 3, 4))
    out = layer.forward(x)
    assert out.shape == (2, 3)
    assert layer.backward(np.ones((2, 3))).shape == x.shape


def test_sigmoid_layer_hand_values():
    layer = Sigmoid()
    out = layer.forward(np.array([0.0, 2.0]))
    np.testing.assert_allclose(out, [0.5, 0.8807970779778823])
    np.testing.assert_allclose(layer.backward(np.array([1.0, 2.0])), [0.25, 2 * 0.8807970779778823 * 0.1192029220221177])


def test_relu_layer_passes_gradient_only_where_input_was_positive():
    layer = Relu()
    np.testing.assert_array_equal(layer.forward(np.array([[-1.0, 0.0, 2.0]])), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[5.0, 6.0, 7.0]])), [[0.0, 0.0, 7.0]])


def test_softmax_with_loss_hand_values():
    layer = SoftmaxWithLoss()
    scores = np.array([[0.0, np.log(3.0)]])  # softmax = [0.25, 0.75]
    assert layer.forward(scores, np.array([1])) == pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(layer.backward(), [[0.25, -0.25]])


def test_softmax_with_loss_accepts_one_hot_targets():
    rng = np.random.default_rng(1)
    scores, labels = rng.standard_normal((4, 5)), np.array([0, 3, 4, 1])
    one_hot = np.eye(5)[labels]
    by_label, by_one_hot = SoftmaxWithLoss(), SoftmaxWithLoss()
    assert by_label.forward(scores, labels) == pytest.approx(by_one_hot.forward(scores, one_hot), rel=1e-15)
    np.testing.assert_allclose(by_label.backward(), by_one_hot.backward(), rtol=1e-15)


@pytest.mark.parametrize("make_layer", [Sigmoid, Relu, lambda: Affine(np.ones((3, 2)), np.zeros(2))])
def test_backward_never_mutates_dout(make_layer):
    layer = make_layer()
    x = np.array([[-1.0, 0.5, 2.0]])
    out = layer.forward(x)
    dout = np.ones_like(out) * 3.0
    before = dout.copy()
    layer.backward(dout)
    np.testing.assert_array_equal(dout, before)


@pytest.mark.parametrize("layer_class", [Sigmoid, Relu, *(partial(activation_layer, name) for name in activation_names())])
def test_activation_backward_matches_numerical_gradient(layer_class):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)) + 0.05  # keep clear of Relu's kink at 0
    x[np.abs(x) < 1e-3] = 0.5
    weights = rng.standard_normal((3, 4))
    layer = layer_class()

    def weighted_output(xx):
        return np.sum(weights * layer_class().forward(xx))

    layer.forward(x)
    np.testing.assert_allclose(layer.backward(weights), numerical_gradient(weighted_output, x), atol=1e-8)


def test_affine_backward_matches_numerical_gradient():
    rng = np.random.default_rng(3)
    W, b, x = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((5, 4))
    weights = rng.standard_normal((5, 3))
    layer = Affine(W, b)

    def weighted_output(_):
        return np.sum(weights * (x @ W + b))

    layer.forward(x)
    dx = layer.backward(weights)
    np.testing.assert_allclose(dx, numerical_gradient(weighted_output, x), atol=1e-8)
    np.testing.assert_allclose(layer.dW, numerical_gradient(weighted_output, W), atol=1e-8)
    np.testing.assert_allclose(layer.db, numerical_gradient(weighted_output, b), atol=1e-8)


def test_layers_have_readable_reprs():
    assert repr(Affine(np.zeros((784, 50)), np.zeros(50))) == "Affine(784 -> 50)"
    assert repr(Sigmoid()) == "Sigmoid()"


def batch_norm(rng):
    return BatchNormalization(1 + rng.random(3), rng.standard_normal(3), running_mean=rng.standard_normal(3),
                              running_var=rng.random(3))


@pytest.mark.parametrize("make_layer", [
    lambda rng: Affine(rng.standard_normal((4, 3)), rng.standard_normal(3)),
    *(lambda rng, name=name: activation_layer(name) for name in activation_names()),
    lambda rng: Dropout(0.4),
    batch_norm,
], ids=["Affine", *activation_names(), "Dropout", "BatchNormalization"])
@pytest.mark.parametrize("train", [True, False])
def test_the_training_step_forms_give_the_books_numbers(make_layer, train):
    rng = np.random.default_rng(4)
    layer = make_layer(rng)
    x = rng.standard_normal((5, 4 if isinstance(layer, Affine) else 3))
    dout = rng.standard_normal((5, *layer.output_shape(x.shape[1:])))
    before = copy.deepcopy(layer)
    expected_out = layer.forward(x, train) if layer.uses_train_flg else layer.forward(x)
    expected_grads = ()
    if train:
        expected_dx = layer.backward(dout)
        expected_grads = {Affine: ("dW", "db"), BatchNormalization: ("dgamma", "dbeta")}.get(type(layer), ())
        expected_grads = tuple(getattr(layer, name) for name in expected_grads)
    after, layer = layer, before  # the same layer as it was: the same dropout draws, the same running statistics

    buffer = x.copy()
    work = layer.workspace(len(x), x.shape[1:], x.dtype, train)
    out = layer.forward_into(buffer, buffer if layer.in_place else np.empty_like(expected_out), train, work)
    assert (out is buffer) == layer.in_place
    np.testing.assert_allclose(out, expected_out, rtol=1e-14, atol=1e-15)
    if isinstance(layer, BatchNormalization):
        np.testing.assert_allclose(layer.running_mean, after.running_mean, rtol=1e-14)
        np.testing.assert_allclose(layer.running_var, after.running_var, rtol=1e-14)
    if not train:
        return
    dx, grads = np.empty_like(x), tuple(np.empty_like(p) for p in layer.parameters)
    assert layer.backward_into(x, out, dout, dx, grads, work) is dx
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-14)
    assert len(grads) == len(expected_grads)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, rtol=1e-13)
