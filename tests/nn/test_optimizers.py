import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdlab.errors import ConfigError
from sgdlab.nn.optimizers import OPTIMIZERS, SGD


def test_one_sgd_step_by_hand():
    params = {"W1": np.array([[1.0, -2.0]]), "b1": np.array([0.5])}
    grads = {"W1": np.array([[0.5, 1.0]]), "b1": np.array([-1.0])}
    SGD(lr=0.1).update(params, grads)
    np.testing.assert_allclose(params["W1"], [[0.95, -2.1]], rtol=1e-15)
    np.testing.assert_allclose(params["b1"], [0.6], rtol=1e-15)


def test_update_is_in_place():
    W = np.ones(3)
    SGD(lr=1.0).update({"W": W}, {"W": np.ones(3)})
    np.testing.assert_array_equal(W, 0.0)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan")])
def test_non_positive_learning_rate_is_refused(lr):
    with pytest.raises(ConfigError, match="learning rate must be a positive number"):
        SGD(lr=lr)


def test_update_leaves_the_gradients_alone_and_repeats_exactly():
    W = np.array([1.0, 2.0])
    grads = {"W": np.array([0.5, -0.5])}
    optimizer = SGD(lr=0.1)
    optimizer.update({"W": W}, grads)
    optimizer.update({"W": W}, grads)
    np.testing.assert_array_equal(grads["W"], [0.5, -0.5])
    np.testing.assert_allclose(W, [0.9, 2.1], rtol=1e-15)


def test_an_optimizer_needs_a_name_of_its_own():
    from sgdlab.nn.optimizers import OPTIMIZERS, Optimizer

    with pytest.raises(TypeError, match="needs a name of its own"):
        class Unnamed(SGD):  # inherits "sgd": would replace SGD in the registry
            pass
    with pytest.raises(TypeError, match="needs a name of its own"):
        class Duplicate(Optimizer):
            name = "sgd"
    assert list(OPTIMIZERS) == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]


# --- every optimizer against an independent transcription of the book's rule --------------------------
# Plain Python floats, one parameter element at a time, written from the formulas in chapter 6.1.

def sgd_rule(w, g, lr):
    for grad in g:
        w -= lr * grad
    return w


def momentum_rule(w, g, lr, momentum=0.9):
    v = 0.0
    for grad in g:
        v = momentum * v - lr * grad
        w = w + v
    return w


def nesterov_rule(w, g, lr, momentum=0.9):
    v = 0.0
    for grad in g:
        v = momentum * v - lr * grad
        w = w + momentum * momentum * v - (1 + momentum) * lr * grad
    return w


def adagrad_rule(w, g, lr):
    h = 0.0
    for grad in g:
        h = h + grad * grad
        w = w - lr * grad / (math.sqrt(h) + 1e-7)
    return w


def rmsprop_rule(w, g, lr, decay_rate=0.99):
    h = 0.0
    for grad in g:
        h = decay_rate * h + (1 - decay_rate) * grad * grad
        w = w - lr * grad / (math.sqrt(h) + 1e-7)
    return w


def adam_rule(w, g, lr, beta1=0.9, beta2=0.999):
    m = v = 0.0
    for t, grad in enumerate(g, start=1):
        m = m + (1 - beta1) * (grad - m)
        v = v + (1 - beta2) * (grad * grad - v)
        w = w - lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (math.sqrt(v) + 1e-7)
    return w


RULES = {"sgd": sgd_rule, "momentum": momentum_rule, "nesterov": nesterov_rule, "adagrad": adagrad_rule,
         "rmsprop": rmsprop_rule, "adam": adam_rule}
EXTRA = {"momentum": {"momentum": 0.5}, "nesterov": {"momentum": 0.7}, "rmsprop": {"decay_rate": 0.9},
         "adam": {"beta1": 0.8, "beta2": 0.99}}


def test_every_optimizer_has_a_transcription():
    assert set(RULES) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize("extra", [False, True])
@settings(max_examples=25, deadline=None)
@given(lr=st.floats(1e-4, 0.5), seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 30))
def test_updates_follow_the_books_rule_step_after_step(name, extra, lr, seed, steps):
    kwargs = EXTRA.get(name, {}) if extra else {}
    rng = np.random.default_rng(seed)
    params = {"W1": rng.standard_normal((3, 2)), "b1": rng.standard_normal(2)}
    start = {key: value.copy() for key, value in params.items()}
    gradients = [{key: rng.standard_normal(value.shape) for key, value in params.items()} for _ in range(steps)]
    optimizer = OPTIMIZERS[name](lr, **kwargs)
    for grads in gradients:
        optimizer.update(params, grads)
    for key in params:
        for index in np.ndindex(params[key].shape):
            expected = RULES[name](float(start[key][index]), [float(g[key][index]) for g in gradients], lr, **kwargs)
            assert params[key][index] == pytest.approx(expected, rel=1e-12, abs=1e-14), (name, key, index)


@pytest.mark.parametrize("name, slots", [("sgd", set()), ("momentum", {"v"}), ("nesterov", {"v"}),
                                         ("adagrad", {"h"}), ("rmsprop", {"h"}), ("adam", {"m", "v", "iter"})])
def test_state_is_made_on_the_first_update_as_plain_arrays(name, slots):
    optimizer = OPTIMIZERS[name](0.01)
    assert optimizer.state() == {}
    params = {"W1": np.ones((2, 2), np.float32), "b1": np.zeros(2, np.float32)}
    optimizer.update(params, {"W1": np.full((2, 2), 0.5, np.float32), "b1": np.ones(2, np.float32)})
    state = optimizer.state()
    assert {key.split("/")[0] for key in state} == slots
    for key, array in state.items():
        assert isinstance(array, np.ndarray)
        if key != "iter":
            assert array.dtype == np.float32 and array.shape == params[key.split("/")[1]].shape
    if name == "adam":
        assert int(state["iter"]) == 1
    if name == "momentum":  # after one step from rest, the velocity is -lr * g
        np.testing.assert_allclose(state["v/W1"], -0.01 * 0.5, rtol=1e-6)
        np.testing.assert_allclose(state["v/b1"], -0.01, rtol=1e-6)
    if name == "adagrad":  # the squares of the one gradient seen
        np.testing.assert_allclose(state["h/W1"], 0.25, rtol=1e-6)


def test_adam_keeps_float32_parameters_in_float32():
    params = {"W": np.ones(3, np.float32)}
    OPTIMIZERS["adam"]().update(params, {"W": np.full(3, 0.5, np.float32)})
    assert params["W"].dtype == np.float32


@pytest.mark.parametrize("name, kwargs, message", [
    ("momentum", {"momentum": 1.0}, r"momentum must be a number in \[0, 1\), got 1.0"),
    ("nesterov", {"momentum": -0.1}, r"momentum must be a number in \[0, 1\)"),
    ("rmsprop", {"decay_rate": 1.5}, r"decay_rate must be a number in \[0, 1\)"),
    ("adam", {"beta2": 1.0}, r"beta2 must be a number in \[0, 1\)"),
])
def test_bad_hyperparameters_are_refused(name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        OPTIMIZERS[name](0.01, **kwargs)


def test_every_optimizer_is_importable_from_sgdlab():
    import sgdlab

    assert {name: getattr(sgdlab, cls.__name__) for name, cls in OPTIMIZERS.items()} == OPTIMIZERS


def test_the_books_defaults_and_reprs():
    assert [OPTIMIZERS[name].default_lr for name in RULES] == [0.01, 0.01, 0.01, 0.01, 0.01, 0.001]
    assert repr(OPTIMIZERS["momentum"]()) == "Momentum(lr=0.01, momentum=0.9)"
    assert repr(OPTIMIZERS["adam"]()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999)"
