import numpy as np
import pytest

from sgdlab.engine.backprop import BackpropStep
from sgdlab.nn.activations import activation_names
from sgdlab.nn.network import MultiLayerNet, TwoLayerNet


def batch(n=8, n_in=12, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in)), rng.integers(0, n_classes, n)


@pytest.mark.parametrize("sizes, activation", [
    ((12, 6, 4), "sigmoid"),
    ((12, 6, 4), "relu"),
    ((12, 6, 4), "tanh"),
    ((12, 7, 5, 4), "sigmoid"),
    ((12, 7, 5, 4), "tanh"),
    ((12, 7, 5, 3, 4), "relu"),
    ((12, 4), "sigmoid"),  # no hidden layer: softmax regression
])
@pytest.mark.parametrize("weight_decay", [0.0, 0.2])
@pytest.mark.parametrize("chapter_6", [{}, {"use_dropout": True, "dropout_ratio": 0.3}, {"use_batchnorm": True},
                                       {"use_dropout": True, "use_batchnorm": True}], ids=["plain", "dropout",
                                                                                           "batchnorm", "both"])
def test_same_loss_and_gradients_as_the_layers(sizes, activation, weight_decay, chapter_6, restart_dropout_masks):
    x, t = batch()
    network = MultiLayerNet(sizes[0], list(sizes[1:-1]), sizes[-1], activation, weight_init_std=0.5, rng=1,
                            weight_decay_lambda=weight_decay, **chapter_6)
    reference = network.copy()
    restart_dropout_masks(reference, seed=5)
    expected_loss, expected = reference.loss_and_gradient(x, t)
    restart_dropout_masks(network, seed=5)
    loss, grads = BackpropStep(network, len(x))(x, t)
    assert loss == pytest.approx(expected_loss, rel=1e-13)
    assert set(grads) == set(expected)
    for key in expected:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-10, atol=1e-15)
    for key, value in reference.running_statistics.items():  # both moved them the same way
        np.testing.assert_allclose(network.running_statistics[key], value, rtol=1e-13)


@pytest.mark.parametrize("activation", activation_names())
def test_gradients_match_numerical_differentiation(activation):
    x, t = batch(seed=2)
    network = MultiLayerNet(12, [6, 5], 4, activation, weight_init_std=0.5, rng=3)
    _, grads = BackpropStep(network, len(x))(x, t)
    numerical = network.numerical_gradient(x, t)
    for key in numerical:
        scale = np.max(np.abs(numerical[key]))
        assert np.max(np.abs(grads[key] - numerical[key])) <= 1e-7 * max(scale, 1e-3), key


def test_leaves_its_input_untouched_and_repeats_exactly():
    x, t = batch()
    x_before = x.copy()
    step = BackpropStep(TwoLayerNet(12, 6, 4, rng=0), len(x))
    first_loss, grads = step(x, t)
    first = {key: grad.copy() for key, grad in grads.items()}
    second_loss, again = step(x, t)
    np.testing.assert_array_equal(x, x_before)
    assert first_loss == second_loss
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])


def test_sees_weights_updated_in_place():
    x, t = batch()
    network = TwoLayerNet(12, 6, 4, rng=0)
    step = BackpropStep(network, len(x))
    before, _ = step(x, t)
    network.params["W2"] *= 2  # the step computes with the network's own arrays
    after, _ = step(x, t)
    assert after == pytest.approx(network.loss(x, t), rel=1e-12)
    assert after != before


def test_float32_agrees_with_float64_to_float32_precision():
    x, t = batch(n=100, n_in=784, n_classes=10)
    net64 = TwoLayerNet(784, 50, 10, rng=0)
    net32 = TwoLayerNet(784, 50, 10, rng=0, dtype=np.float32)
    loss64, grads64 = BackpropStep(net64, 100)(x, t)
    loss32, grads32 = BackpropStep(net32, 100)(x.astype(np.float32), t)
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    for key in grads64:
        assert grads32[key].dtype == np.float32
        np.testing.assert_allclose(grads32[key], grads64[key], rtol=1e-3, atol=1e-6 * np.abs(grads64[key]).max())


def test_sigmoid_saturates_without_overflow():
    network = TwoLayerNet(2, 3, 2, rng=0)
    network.params["W1"][...] = 1e4  # pre-activations of +-1e6: sigmoid is exactly 0 or 1
    x = np.array([[100.0, 0.0], [-100.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is exact enough
        loss, grads = BackpropStep(network, 2)(x, np.array([0, 1]))
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


def test_gradient_check_catches_a_broken_training_backprop(monkeypatch):
    from sgdlab.engine.gradcheck import gradient_check

    x, t = batch(seed=4)
    network = TwoLayerNet(12, 6, 4, weight_init_std=0.5, rng=5)
    assert all(check.passed for check in gradient_check(network, x, t))
    monkeypatch.setattr("sgdlab.nn.activations.sigmoid.SigmoidActivation.backward_into", lambda self, dout, out, dx: None)
    failed = {check.name for check in gradient_check(network, x, t) if not check.passed}
    assert failed == {"W1", "b1"}  # the output layer's gradients do not pass through the activation
