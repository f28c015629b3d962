import numpy as np
import pytest

from sgdlab.errors import ConfigError
from sgdlab.engine.gradcheck import compare_gradients
from sgdlab.nn.activations import activation_names
from sgdlab.nn.network import MultiLayerNet, TwoLayerNet, network_from_architecture


def small_batch(rng, n=4, n_in=6, n_classes=3):
    return rng.random((n, n_in)), rng.integers(0, n_classes, n)


def test_book_shapes_and_zero_biases():
    net = TwoLayerNet(rng=0)
    assert {k: v.shape for k, v in net.params.items()} == {"W1": (784, 50), "b1": (50,), "W2": (50, 10), "b2": (10,)}
    assert net.num_params == 784 * 50 + 50 + 50 * 10 + 10  # 39760, the weights and biases of both layers
    assert not net.params["b1"].any() and not net.params["b2"].any()
    assert np.std(net.params["W1"]) == pytest.approx(0.01, rel=0.02)


def test_same_seed_same_weights_different_seed_different_weights():
    a, b, c = TwoLayerNet(rng=7), TwoLayerNet(rng=7), TwoLayerNet(rng=8)
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W1"], c.params["W1"])


def test_predict_gives_probabilities_and_loss_matches_them():
    rng = np.random.default_rng(0)
    net = TwoLayerNet(6, 5, 3, weight_init_std=1.0, rng=rng)
    x, t = small_batch(rng)
    y = net.predict(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0)
    assert net.loss(x, t) == pytest.approx(-np.mean(np.log(y[np.arange(4), t])), rel=1e-13)


def test_accuracy_with_labels_and_one_hot_and_chunks(monkeypatch):
    rng = np.random.default_rng(1)
    net = TwoLayerNet(6, 5, 3, weight_init_std=1.0, rng=rng)
    x, _ = small_batch(rng, n=25)
    predicted = net.predict(x).argmax(axis=1)
    t = predicted.copy()
    t[:5] = (t[:5] + 1) % 3  # five wrong answers
    assert net.accuracy(x, t) == pytest.approx(20 / 25)
    assert net.accuracy(x, np.eye(3)[t]) == pytest.approx(20 / 25)


@pytest.mark.parametrize("activation", activation_names())
@pytest.mark.parametrize("one_hot", [False, True])
def test_backprop_matches_numerical_gradient_for_every_parameter(activation, one_hot):
    rng = np.random.default_rng(2)
    net = TwoLayerNet(6, 5, 3, weight_init_std=1.0, activation=activation, rng=rng)
    x, t = small_batch(rng, n=8)
    if one_hot:
        t = np.eye(3)[t]
    checks = compare_gradients(net.numerical_gradient(x, t), net.gradient(x, t))
    assert [c.name for c in checks] == ["W1", "b1", "W2", "b2"]
    for check in checks:
        assert check.max_abs_diff < 1e-8, check
        assert check.max_rel_error < 1e-6, check


def test_deeper_net_backprop_matches_numerical_gradient():
    rng = np.random.default_rng(3)
    net = MultiLayerNet(5, [4, 4], 3, activation="sigmoid", weight_init_std=1.0, rng=rng)
    x, t = small_batch(rng, n=6, n_in=5)
    checks = compare_gradients(net.numerical_gradient(x, t), net.gradient(x, t))
    assert [c.name for c in checks] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(c.max_abs_diff < 1e-8 and c.max_rel_error < 1e-6 for c in checks), checks


def test_gradient_check_catches_a_wrong_backward_pass(monkeypatch):
    rng = np.random.default_rng(4)
    net = TwoLayerNet(6, 5, 3, weight_init_std=1.0, rng=rng)
    x, t = small_batch(rng)
    monkeypatch.setattr("sgdlab.nn.activations.sigmoid.SigmoidActivation.backward", lambda self, dout, out: dout * out)
    checks = {c.name: c for c in compare_gradients(net.numerical_gradient(x, t), net.gradient(x, t))}
    assert not checks["W1"].passed and not checks["b1"].passed
    assert checks["W2"].passed and checks["b2"].passed  # the layers above the bug are unaffected


def test_numerical_gradient_leaves_params_untouched():
    rng = np.random.default_rng(5)
    net = TwoLayerNet(6, 5, 3, rng=rng)
    before = {k: v.copy() for k, v in net.params.items()}
    net.numerical_gradient(*small_batch(rng))
    for key, value in net.params.items():
        np.testing.assert_array_equal(value, before[key])


def test_loss_and_gradient_returns_the_same_loss_as_loss():
    rng = np.random.default_rng(6)
    net = TwoLayerNet(6, 5, 3, weight_init_std=1.0, rng=rng)
    x, t = small_batch(rng)
    loss, grads = net.loss_and_gradient(x, t)
    assert loss == net.loss(x, t)
    assert set(grads) == set(net.params)


def test_assigning_a_param_updates_what_the_layers_compute_with():
    rng = np.random.default_rng(7)
    net = TwoLayerNet(6, 5, 3, rng=rng)
    x, _ = small_batch(rng)
    net.params["W2"] = np.zeros((5, 3))
    net.params["b2"] = np.array([0.0, 5.0, 0.0])
    assert (net.predict(x).argmax(axis=1) == 1).all()
    with pytest.raises(ValueError, match=r"shape \(5, 3\).*\(3, 5\)"):
        net.params["W2"] = np.zeros((3, 5))


def test_architecture_round_trip():
    net = TwoLayerNet(6, 5, 3, activation="relu", rng=0)
    rebuilt = network_from_architecture(net.architecture())
    assert type(rebuilt) is TwoLayerNet and rebuilt.sizes == (6, 5, 3) and rebuilt.activation == "relu"
    deep = network_from_architecture(MultiLayerNet(5, [4, 4], 3).architecture())
    assert type(deep) is MultiLayerNet and deep.sizes == (5, 4, 4, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden_size": 0}, "positive integers"),
    ({"activation": "softplus"}, "activation must be one of relu, sigmoid, tanh, got 'softplus'"),
    ({"weight_init_std": 0.0}, "weight_init_std must be a positive number or one of xavier"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TwoLayerNet(**kwargs)


def test_repr_names_the_layers():
    net = TwoLayerNet(rng=0)
    assert repr(net) == ("TwoLayerNet([Affine(784 -> 50), Sigmoid(), Affine(50 -> 10), SoftmaxWithLoss()], "
                         f"params={sum(p.size for p in net.params.values())})")
    assert repr(TwoLayerNet(4, 3, 2, activation="tanh")) == (
        "TwoLayerNet([Affine(4 -> 3), Tanh(), Affine(3 -> 2), SoftmaxWithLoss()], params=23)")


def test_copy_is_independent_with_the_same_weights_and_architecture():
    net = MultiLayerNet(6, [5, 4], 3, "relu", rng=0, dtype=np.float32)
    clone = net.copy()
    assert clone.architecture() == net.architecture()
    for key in net.params:
        np.testing.assert_array_equal(clone.params[key], net.params[key])
    net.params["W1"] += 1
    assert not np.array_equal(clone.params["W1"], net.params["W1"])


def test_integer_pixels_are_refused_with_the_fix():
    net = TwoLayerNet(6, 5, 3, rng=0)
    pixels = np.full((2, 6), 200, dtype=np.uint8)
    with pytest.raises(ConfigError, match="takes float pixels in 0..1, got uint8.*divide uint8 pixels by 255"):
        net.accuracy(pixels, np.array([0, 1]))
    with pytest.raises(ConfigError, match="float pixels"):
        net.predict(pixels)


# --- weight decay (chapter 6.4.1) ---------------------------------------------------------------------

def test_weight_decay_adds_half_lambda_times_the_squared_weights_to_the_loss():
    rng = np.random.default_rng(8)
    plain = MultiLayerNet(6, [5, 4], 3, "relu", weight_init_std=0.5, rng=1)
    decayed = MultiLayerNet(6, [5, 4], 3, "relu", weight_init_std=0.5, rng=1, weight_decay_lambda=0.3)
    x, t = small_batch(rng)
    squares = sum(float((w ** 2).sum()) for key, w in plain.params.items() if key.startswith("W"))  # no biases
    assert decayed.loss(x, t) == pytest.approx(plain.loss(x, t) + 0.5 * 0.3 * squares, rel=1e-14)
    plain_grads, decayed_grads = plain.gradient(x, t), decayed.gradient(x, t)
    for key in plain.params:
        extra = 0.3 * plain.params[key] if key.startswith("W") else 0.0
        np.testing.assert_allclose(decayed_grads[key], plain_grads[key] + extra, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("activation", activation_names())
def test_weight_decay_backprop_matches_numerical_gradient(activation):
    rng = np.random.default_rng(9)
    net = MultiLayerNet(6, [5, 4], 3, activation, weight_init_std=0.5, rng=2, weight_decay_lambda=0.1)
    x, t = small_batch(rng)
    for check in compare_gradients(net.numerical_gradient(x, t), net.gradient(x, t)):
        assert check.max_abs_diff < 1e-8 and check.max_rel_error < 1e-6, check


def test_weight_decay_is_in_the_architecture_only_when_there_is_one():
    assert "weight_decay_lambda" not in TwoLayerNet(4, 3, 2).architecture()  # files as earlier versions wrote them
    decayed = MultiLayerNet(4, [3], 2, weight_decay_lambda=0.2)
    assert network_from_architecture(decayed.architecture()).weight_decay_lambda == 0.2


def test_a_network_too_large_to_build_is_refused_before_any_allocation():
    # (10**6 + 1) * 10**8 + (10**8 + 1) * 10 weights and biases
    with pytest.raises(ConfigError, match=r"make 100,001,100,000,010 parameters, more than the 1,073,741,824"):
        MultiLayerNet(10**6, [10**8], 10)


def test_weight_decay_must_not_be_negative():
    with pytest.raises(ConfigError, match="weight_decay_lambda must be a non-negative number, got -0.1"):
        MultiLayerNet(4, [3], 2, weight_decay_lambda=-0.1)


def test_weights_are_copied_into_a_network_by_one_definition():
    from sgdlab.nn.network import MultiLayerNet

    source = MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=1)
    source.batch_norm_layers[0].running_mean[:] = 0.5
    target = MultiLayerNet(4, [3], 2, use_batchnorm=True, rng=2, dtype="float64")
    target.load_weights(source.weights())
    for key, value in source.weights().items():
        np.testing.assert_array_equal(target.weights()[key], value)
        assert target.weights()[key].dtype == np.float64
    assert set(source.weights()) == {"W1", "b1", "W2", "b2", "gamma1", "beta1", "running_mean1", "running_var1"}
    with pytest.raises(ValueError, match="'W9' is none of this network's weights"):
        target.load_weights({"W9": np.zeros(3)})
    with pytest.raises(ValueError, match=r"W1 has shape \(4, 3\), not \(3, 4\)"):
        target.load_weights({"W1": np.zeros((3, 4))})
