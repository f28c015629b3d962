"""Every activation's one definition, each of its forms against independent references.

The tests run for every module in sgdlab.nn.activations, so an activation
added there is held to all of them without a line added here.
"""

import math

import numpy as np
import pytest

from sgdlab.errors import ConfigError
from sgdlab.nn.activations import activation_names, get_activation
from sgdlab.nn.functions import numerical_diff

NAMES = activation_names()

# Independent transcriptions of each formula, element by element in plain Python.
REFERENCES = {
    "sigmoid": lambda z: 1 / (1 + math.exp(-z)) if z > -700 else 0.0,
    "relu": lambda z: max(z, 0.0),
    "tanh": lambda z: math.tanh(z),
}
GRID = np.array([-30.0, -3.0, -1.0, -0.25, -1e-3, 0.0, 1e-3, 0.25, 1.0, 3.0, 30.0])
AWAY_FROM_KINKS = GRID[GRID != 0.0]  # relu has no derivative at 0


def test_the_books_activations_and_tanh_are_there():
    assert NAMES == ("relu", "sigmoid", "tanh")
    assert set(REFERENCES) == set(NAMES)  # a new activation needs its reference here


@pytest.mark.parametrize("name", NAMES)
def test_name_is_the_module_name(name):
    assert get_activation(name).name == name
    assert repr(get_activation(name)) == f"get_activation({name!r})"


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="activation must be one of relu, sigmoid, tanh, got 'softplus'"):
        get_activation("softplus")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_the_reference_and_the_in_place_form_matches_forward(name, dtype):
    activation = get_activation(name)
    z = np.concatenate([GRID, [-1e4, 1e4]]).astype(dtype)
    expected = np.array([REFERENCES[name](float(v)) for v in z])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow on extreme inputs, either form
        out = activation.forward(z)
        in_place = z.copy()
        activation.forward_in_place(in_place)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=1e-30)
    np.testing.assert_allclose(in_place, out, rtol=tolerance, atol=1e-30)


@pytest.mark.parametrize("name", NAMES)
def test_backward_is_the_numerical_derivative(name):
    activation = get_activation(name)
    z = AWAY_FROM_KINKS
    dout = np.linspace(-2.0, 2.0, len(z))
    numerical = np.array([numerical_diff(lambda v: REFERENCES[name](v), float(v), h=1e-5) for v in z])
    np.testing.assert_allclose(activation.backward(dout, activation.forward(z)), dout * numerical, rtol=1e-8,
                               atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_backward_into_a_buffer_gives_the_same_numbers_and_leaves_its_inputs_alone(name):
    activation = get_activation(name)
    out = activation.forward(GRID)
    dout = np.linspace(-2.0, 2.0, len(GRID))
    out_before, dout_before = out.copy(), dout.copy()
    dx = np.full_like(dout, np.nan)
    activation.backward_into(dout, out, dx)
    np.testing.assert_array_equal(dx, activation.backward(dout, out))
    np.testing.assert_array_equal(out, out_before)
    np.testing.assert_array_equal(dout, dout_before)


@pytest.mark.parametrize("name", NAMES)
def test_change_is_the_exact_difference_of_outputs(name):
    activation = get_activation(name)
    z = np.repeat(GRID[None, :], 5, axis=0)  # rows: samples, columns: units
    e = np.array([-0.5, -1e-3, 1e-3, 0.5, 2.0])  # one shift per row
    state = activation.change_state(z, activation.forward(z))
    expected = np.array([[REFERENCES[name](zz + ee) - REFERENCES[name](zz) for zz in row] for row, ee in zip(z, e)])
    np.testing.assert_allclose(activation.change(state, e), expected, rtol=1e-12, atol=1e-15)


# Each curved activation's derivative in closed form from z, independent of its output.
DERIVATIVES = {
    "sigmoid": lambda z: np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))) ** 2,
    "tanh": lambda z: 1 / np.cosh(z) ** 2,
}


# relu's change is e or 0 on either side of its kink, max(z + e, 0) - max(z, 0), rounded only as z + e is.
@pytest.mark.parametrize("name", [name for name in NAMES if name != "relu"])
def test_change_keeps_its_digits_where_the_plain_difference_cancels(name):
    activation = get_activation(name)
    z = AWAY_FROM_KINKS[None, :]
    e = np.array([1e-9])
    moved = activation.change(activation.change_state(z, activation.forward(z)), e)[0]
    exact = e[0] * DERIVATIVES[name](z[0])  # f(z + e) - f(z) = e f'(z) + O(e^2), and e^2 f'' is below 1e-18
    # The plain difference f(z + e) - f(z) of two outputs near 1 would be off by about 1e-16: a million times more.
    assert np.all(np.abs(moved - exact) <= 1e-8 * np.abs(exact) + 8 * np.finfo(float).eps * e[0]), moved - exact


def test_every_curved_activation_has_its_closed_form_derivative():
    assert set(DERIVATIVES) == set(NAMES) - {"relu"}


@pytest.mark.parametrize("name", NAMES)
def test_slope_bound_bounds_every_change(name):
    activation = get_activation(name)
    z = np.repeat(np.linspace(-6, 6, 121)[None, :], 4, axis=0)
    e = np.array([-1.0, -1e-2, 1e-2, 1.0])
    moved = activation.change(activation.change_state(z, activation.forward(z)), e)
    assert np.all(np.abs(moved) <= activation.slope_bound * np.abs(e)[:, None] * (1 + 1e-12))


@pytest.mark.parametrize("name", NAMES)
def test_linear_pieces_are_exact_within_their_reach_and_absent_where_curved(name):
    activation = get_activation(name)
    z = np.linspace(-3, 3, 61)[None, :].repeat(3, axis=0)
    pieces = activation.linear_pieces(z)
    if name != "relu":
        assert pieces is None
        return
    slope, reach = pieces
    e = np.array([-0.99, 0.5, 0.99])[:, None] * reach  # every nudge inside its unit's reach
    moved = activation.forward(z + e) - activation.forward(z)
    np.testing.assert_allclose(moved, slope * e, rtol=1e-12, atol=1e-15)
    assert reach[0, 30] == 0.0  # z = 0: the kink itself, no reach


# --- an activation defined by the book's two members only --------------------------------------------------

SOFTPLUS = '''
import numpy as np

from sgdlab.nn.activations._definition import Activation


class Softplus(Activation):
    def forward(self, z):
        return np.logaddexp(0.0, z)  # log(1 + e^z)

    def backward(self, dout, out):
        return dout * -np.expm1(-out)  # softplus' = sigmoid(z) = 1 - exp(-softplus(z))


ACTIVATION = Softplus()
'''


@pytest.fixture
def softplus(tmp_path, monkeypatch):
    """A module softplus.py, with forward and backward and nothing else, found where the activations are."""
    import sys

    from sgdlab.nn import activations

    (tmp_path / "softplus.py").write_text(SOFTPLUS)
    monkeypatch.setattr(activations, "__path__", [*activations.__path__, str(tmp_path)])
    activation_names.cache_clear()
    yield get_activation("softplus")
    sys.modules.pop("sgdlab.nn.activations.softplus", None)
    monkeypatch.undo()
    activation_names.cache_clear()


def test_an_activation_needs_only_forward_and_backward(softplus):
    from sgdlab.nn.activations._definition import Activation

    assert "softplus" in activation_names() and softplus.name == "softplus"
    assert Activation.__abstractmethods__ == {"forward", "backward"}
    z = np.linspace(-4, 4, 9)
    buffer = z.copy()
    softplus.forward_in_place(buffer)
    np.testing.assert_array_equal(buffer, np.log1p(np.exp(z)))
    dx = np.empty_like(z)
    softplus.backward_into(np.ones_like(z), buffer, dx)
    np.testing.assert_allclose(dx, 1 / (1 + np.exp(-z)), rtol=1e-12)
    state = softplus.change_state(z[None], softplus.forward(z[None]))
    np.testing.assert_allclose(softplus.change(state, np.array([0.5]))[0],
                               np.log1p(np.exp(z + 0.5)) - np.log1p(np.exp(z)), rtol=1e-12)


@pytest.mark.parametrize("chapter_6", [{}, {"use_batchnorm": True, "use_dropout": True, "weight_decay_lambda": 0.1}],
                         ids=["plain", "chapter-6"])
def test_a_two_member_activation_trains_passes_gradcheck_and_has_the_textbook_numerical_gradient(softplus, chapter_6):
    from sgdlab.engine.backprop import BackpropStep
    from sgdlab.engine.gradcheck import gradient_check
    from sgdlab.engine.perturbation import numerical_gradient_fast
    from sgdlab.nn.layers import frozen_training
    from sgdlab.nn.network import MultiLayerNet
    from sgdlab.nn.optimizers import SGD

    rng = np.random.default_rng(3)
    network = MultiLayerNet(12, [6, 5], 4, "softplus", weight_init_std=0.5, rng=rng, **chapter_6)
    x = rng.random((40, 12))
    t = (x[:, :4].argmax(axis=1))  # a rule the net can learn
    # the same numerical gradient as the textbook's, every nudge through the default change
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    with frozen_training(network.layers):
        textbook = network.numerical_gradient(x[:9], t[:9])
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    _, fast = numerical_gradient_fast(network, x[:9], t[:9])
    for key in textbook:
        np.testing.assert_allclose(fast[key], textbook[key], rtol=0, atol=1e-8, err_msg=key)
    assert all(check.passed for check in gradient_check(network, x[:9], t[:9]))
    # it trains, by the training step's backprop (forward_into, backward_into) and by numerical gradients
    step, optimizer = BackpropStep(network, len(x)), SGD(lr=0.5)
    first, _ = step(x, t)
    for _ in range(100):
        loss, grads = step(x, t)
        optimizer.update(network.params, grads)
    for _ in range(5):
        _, grads = numerical_gradient_fast(network, x, t)
        optimizer.update(network.params, grads)
    assert network.loss(x, t) < 0.6 * first
