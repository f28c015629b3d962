import inspect
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdlab.errors import ConfigError
from sgdlab.nn import optimizers
from sgdlab.nn.optimizers import COUNT, OPTIMIZERS, SGD, Optimizer
from sgdlab.ranges import UNIT_INTERVAL


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
    registered = dict(OPTIMIZERS)
    with pytest.raises(TypeError, match="needs a name of its own"):
        class Unnamed(SGD):  # inherits "sgd": would replace SGD in the registry
            pass
    with pytest.raises(TypeError, match="needs a name of its own"):
        class Duplicate(Optimizer):
            name = "sgd"
    assert OPTIMIZERS == registered


def test_an_optimizer_declares_the_range_of_each_keyword_and_its_book_defaults():
    registered = dict(OPTIMIZERS)
    with pytest.raises(TypeError, match=r"range of each hyperparameter.*declares \[\]; its __init__ takes \['rho'\]"):
        class Undeclared(Optimizer):
            name = "undeclared"

            def __init__(self, lr=0.01, rho=0.9):
                super().__init__(lr, rho=rho)
    with pytest.raises(TypeError, match="lr=<the book's default>"):
        class NoDefaultRate(Optimizer):
            name = "no-default-rate"

            def __init__(self, lr):
                super().__init__(lr)
    assert OPTIMIZERS == registered
    for optimizer in OPTIMIZERS.values():  # the defaults are the signature's, the ranges the declaration's
        keywords = inspect.signature(optimizer).parameters
        assert optimizer.default_lr == keywords["lr"].default
        assert list(keywords) == ["lr", *optimizer.hyperparameters]


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


def nesterov_rule(w, g, lr, momentum=0.9):  # the order of the book's repository since January 2021
    v = 0.0
    for grad in g:
        w = w + momentum * momentum * v - (1 + momentum) * lr * grad
        v = momentum * v - lr * grad
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


def other_settings(optimizer):
    """Each hyperparameter of `optimizer` at 0.8 times the book's default: settings other than the defaults."""
    keywords = inspect.signature(optimizer).parameters
    return {name: 0.8 * keywords[name].default for name in optimizer.hyperparameters}


def test_every_optimizer_has_a_transcription():
    assert set(RULES) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("extra", [False, True])
@settings(max_examples=25, deadline=None)
@given(lr=st.floats(1e-4, 0.5), seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 30))
def test_updates_follow_the_books_rule_step_after_step(name, extra, lr, seed, steps):
    kwargs = other_settings(OPTIMIZERS[name]) if extra else {}
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


# --- the in-place rules against each formula written with fresh arrays ------------------------------
# Each rule's update is in-place operations on its slots and scratch arrays; written plainly, with a fresh
# array per operation, the formula must give the very same bits, in float32 as in float64, step after step.

def readable_step(name, params, grads, slots, t, lr, beta1=0.9, beta2=0.999, momentum=0.9, decay_rate=0.99):
    for key in params:
        w, g = params[key], grads[key]
        if name == "sgd":
            params[key] = w - lr * g
        elif name == "momentum":
            slots["v"][key] = momentum * slots["v"][key] - lr * g
            params[key] = w + slots["v"][key]
        elif name == "nesterov":
            params[key] = w + momentum * momentum * slots["v"][key] - (1 + momentum) * lr * g
            slots["v"][key] = momentum * slots["v"][key] - lr * g
        elif name == "adagrad":
            slots["h"][key] = slots["h"][key] + g * g
            params[key] = w - lr * g / (np.sqrt(slots["h"][key]) + 1e-7)
        elif name == "rmsprop":
            slots["h"][key] = decay_rate * slots["h"][key] + (1 - decay_rate) * g * g
            params[key] = w - lr * g / (np.sqrt(slots["h"][key]) + 1e-7)
        else:
            lr_t = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
            slots["m"][key] = slots["m"][key] + (1 - beta1) * (g - slots["m"][key])
            slots["v"][key] = slots["v"][key] + (1 - beta2) * (g ** 2 - slots["v"][key])
            params[key] = w - lr_t * slots["m"][key] / (np.sqrt(slots["v"][key]) + 1e-7)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("piece", [None, 999])
def test_each_in_place_rule_makes_its_formulas_numbers_bit_for_bit(name, dtype, extra, piece, monkeypatch):
    if piece:  # pieces that cut every parameter at odd places
        monkeypatch.setattr(optimizers, "PIECE", piece)
    kwargs = other_settings(OPTIMIZERS[name]) if extra else {}
    rng = np.random.default_rng(11)
    # a parameter larger than a piece; small ones that share a piece; gradients of very different scales
    shapes = {"W1": (30, 1, 5, 5), "b1": (30,), "W2": (170, 211), "b2": (211,), "W3": (25, 10), "b3": (10,)}
    assert shapes["W2"][0] * shapes["W2"][1] > optimizers.PIECE
    params = {key: rng.standard_normal(shape).astype(dtype) for key, shape in shapes.items()}
    start = {key: value.copy() for key, value in params.items()}
    expected = {key: value.copy() for key, value in params.items()}
    slots = {slot: {key: np.zeros_like(value) for key, value in params.items()} for slot in SLOTS[name]}
    optimizer = OPTIMIZERS[name](0.003, **kwargs)
    for t in range(1, 101):
        grads = {key: (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 2)).astype(dtype)
                 for key, shape in shapes.items()}
        optimizer.update(params, grads)
        readable_step(name, expected, grads, slots, t, 0.003, **kwargs)
    for key in params:
        assert params[key].dtype == dtype
        np.testing.assert_array_equal(params[key], expected[key], err_msg=key)
        for slot in slots:
            np.testing.assert_array_equal(optimizer.slots[slot][key], slots[slot][key], err_msg=f"{slot}/{key}")
        assert not np.array_equal(params[key], start[key]), key  # each parameter moved


def test_a_rule_gets_as_many_scratch_arrays_as_it_asks_for_shared_by_parameters_of_one_shape_and_dtype():
    optimizer = SGD()
    one, = optimizer._scratch(np.ones(3, np.float32))
    two = optimizer._scratch(np.ones(3, np.float32), 2)
    assert len(two) == 2 and two[0] is not two[1] and len(optimizer._scratch(np.ones(3, np.float32))) == 1
    assert optimizer._scratch(np.ones(3, np.float64))[0].dtype == np.float64
    assert optimizer._scratch(np.ones((3, 1), np.float32))[0].shape == (3, 1)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("lr", [0.001, 0.05])
def test_nesterov_is_nesterovs_method_seen_at_its_lookahead_point(momentum, lr):
    # The definition, tracked as W and v: the gradient measured at P = W + momentum * v, then
    # v' = momentum * v - lr * grad(P) and W' = W + v'. The optimizer holds P and measures the gradient there.
    rng = np.random.default_rng(7)
    root = rng.standard_normal((4, 4))
    curvature, target = root @ root.T / 4 + 0.1 * np.eye(4), rng.standard_normal(4)

    def gradient(p):  # of a smooth convex loss that is not quadratic: where it is measured matters
        return curvature @ p - target + np.tanh(p)

    w, v = rng.standard_normal(4), np.zeros(4)
    start, held = w.copy(), {"W": w.copy()}
    optimizer = OPTIMIZERS["nesterov"](lr, momentum)
    for step in range(400):
        lookahead = w + momentum * v
        np.testing.assert_allclose(held["W"], lookahead, rtol=1e-9, atol=1e-12, err_msg=f"step {step}")
        v = momentum * v - lr * gradient(lookahead)
        w = w + v
        optimizer.update(held, {"W": gradient(held["W"])})
    assert np.abs(w - start).max() > 0.1  # it went somewhere


SLOTS = {"sgd": set(), "momentum": {"v"}, "nesterov": {"v"}, "adagrad": {"h"}, "rmsprop": {"h"}, "adam": {"m", "v"}}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_is_the_count_and_the_slots_made_on_the_first_update_as_plain_arrays(name):
    optimizer = OPTIMIZERS[name](0.01)
    assert optimizer.state() == {}
    params = {"W1": np.ones((2, 2), np.float32), "b1": np.zeros(2, np.float32)}
    grads = {"W1": np.full((2, 2), 0.5, np.float32), "b1": np.ones(2, np.float32)}
    optimizer.update(params, grads)
    optimizer.update(params, grads)
    state = optimizer.state()
    assert {key.split("/")[0] for key in state} == {COUNT, *SLOTS[name]}
    assert state[COUNT].shape == () and int(state[COUNT]) == 2
    for key, array in state.items():
        assert isinstance(array, np.ndarray)
        if key != COUNT:
            assert array.dtype == np.float32 and array.shape == params[key.split("/")[1]].shape
    if name == "momentum":  # after two steps from rest, the velocity is -lr * g * (1 + momentum)
        np.testing.assert_allclose(state["v/W1"], -0.01 * 0.5 * 1.9, rtol=1e-6)
        np.testing.assert_allclose(state["v/b1"], -0.01 * 1.9, rtol=1e-6)
    if name == "adagrad":  # the squares of the two gradients seen
        np.testing.assert_allclose(state["h/W1"], 0.5, rtol=1e-6)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("stop", [0, 1, 7])
def test_an_optimizer_continued_from_its_state_makes_the_same_updates_bit_for_bit(name, stop):
    rng = np.random.default_rng(3)
    start = {"W1": rng.standard_normal((3, 2)).astype(np.float32), "b1": rng.standard_normal(2).astype(np.float32)}
    gradients = [{key: rng.standard_normal(value.shape).astype(np.float32) for key, value in start.items()}
                 for _ in range(12)]
    whole, params = OPTIMIZERS[name](0.05), {key: value.copy() for key, value in start.items()}
    for grads in gradients:
        whole.update(params, grads)
    first, continued = OPTIMIZERS[name](0.05), {key: value.copy() for key, value in start.items()}
    for grads in gradients[:stop]:
        first.update(continued, grads)
    second = OPTIMIZERS[name](0.05)
    second.load_state({key: array.copy() for key, array in first.state().items()})
    for grads in gradients[stop:]:
        second.update(continued, grads)
    assert second.iter == whole.iter == 12
    for key in params:
        np.testing.assert_array_equal(continued[key], params[key], err_msg=key)


def test_a_rule_that_writes_only_its_step_gets_the_count_and_state_from_the_base_class():
    class CountedDecay(Optimizer):  # a contributor's rule: a slot and the count, no state code of its own
        name = "counted-decay-test"
        hyperparameters = {"decay": UNIT_INTERVAL}

        def __init__(self, lr=0.1, decay=0.5):
            super().__init__(lr, decay=decay)

        def step(self, params, grads):
            total = self._slot("total", params)
            for key in params:
                total[key] += grads[key]
                params[key] -= self.lr * self.decay ** self.iter * total[key]

    try:
        optimizer, params = CountedDecay(), {"W": np.ones(2)}
        for _ in range(3):
            optimizer.update(params, {"W": np.ones(2)})
        state = optimizer.state()
        assert sorted(state) == [COUNT, "total/W"] and int(state[COUNT]) == 3
        np.testing.assert_array_equal(state["total/W"], 3.0)
        again = CountedDecay()
        again.load_state(state)
        assert again.iter == 3 and again.state().keys() == state.keys()
        assert repr(again) == "CountedDecay(lr=0.1, decay=0.5)"
    finally:
        del OPTIMIZERS[CountedDecay.name]


def test_each_hyperparameter_takes_the_values_its_rule_is_defined_for():
    # momentum, decay and Adam's betas are fractions of what is kept: 1 would never forget, above 1 diverges
    declared = {(name, keyword): declared.description for name, optimizer in OPTIMIZERS.items()
                for keyword, declared in optimizer.hyperparameters.items()}
    fraction = "a number in [0, 1)"
    assert declared == {("momentum", "momentum"): fraction, ("nesterov", "momentum"): fraction,
                        ("rmsprop", "decay_rate"): fraction, ("adam", "beta1"): fraction, ("adam", "beta2"): fraction}


@pytest.mark.parametrize("name, keyword", [(name, keyword) for name, optimizer in OPTIMIZERS.items()
                                           for keyword in optimizer.hyperparameters])
@pytest.mark.parametrize("value", [float("nan"), -1.0, 1.0, "0.5"])
def test_every_hyperparameter_is_checked_against_its_declared_range(name, keyword, value):
    declared = OPTIMIZERS[name].hyperparameters[keyword]
    if declared.contains(value):
        assert getattr(OPTIMIZERS[name](**{keyword: value}), keyword) == value
    else:
        with pytest.raises(ConfigError, match=f"^{keyword} must be {re.escape(declared.description)}, got"):
            OPTIMIZERS[name](**{keyword: value})


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
    books = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "rmsprop": 0.01, "adam": 0.001}
    assert {name: OPTIMIZERS[name].default_lr for name in books} == books
    assert repr(OPTIMIZERS["momentum"]()) == "Momentum(lr=0.01, momentum=0.9)"
    assert repr(OPTIMIZERS["adam"]()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999)"
