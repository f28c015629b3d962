import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sgdlab.errors import ConfigError
from sgdlab.nn.functions import (
    cross_entropy_error,
    log_softmax,
    numerical_diff,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_cross_entropy,
    step_function,
)

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)


def test_sigmoid_hand_values():
    np.testing.assert_allclose(sigmoid(np.array([-1.0, 0.0, 2.0])), [0.2689414213699951, 0.5, 0.8807970779778823],
                               rtol=1e-15)


def test_sigmoid_extreme_inputs_stay_finite_without_warnings():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(np.array([-1000.0, -745.0, 745.0, 1000.0]))
    np.testing.assert_array_equal(y, [0.0, sigmoid(-745.0), 1.0, 1.0])
    assert 0 < sigmoid(-700.0) < 1e-300


@given(arrays(np.float64, st.integers(1, 20), elements=finite_floats))
def test_sigmoid_is_symmetric_and_bounded(x):
    y = sigmoid(x)
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(y + sigmoid(-x), 1.0, atol=1e-15)


def test_the_books_derivative_functions_are_the_numerical_derivatives():
    x = np.array([-3.0, -0.5, -1e-3, 1e-3, 0.5, 3.0])  # relu has no derivative at 0
    central = [numerical_diff(sigmoid, v) for v in x]
    np.testing.assert_allclose(sigmoid_grad(x), central, rtol=1e-8)
    np.testing.assert_allclose(relu_grad(x), [numerical_diff(relu, v, h=1e-4 / 2) for v in x], rtol=1e-9)
    np.testing.assert_array_equal(relu_grad(np.array([0.0])), [0.0])  # the subgradient taken at the kink
    assert relu_grad(np.array([1.0], np.float32)).dtype == np.float32


def test_relu_and_step():
    x = np.array([-2.0, 0.0, 3.5])
    np.testing.assert_array_equal(relu(x), [0.0, 0.0, 3.5])
    np.testing.assert_array_equal(step_function(x), [0, 0, 1])


def test_softmax_book_example():
    # The book's example input: a = [0.3, 2.9, 4.0]
    np.testing.assert_allclose(softmax(np.array([0.3, 2.9, 4.0])), [0.01821127, 0.24519181, 0.73659691], atol=1e-8)


def test_softmax_extreme_inputs():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = softmax(np.array([1010.0, 1000.0, 990.0]))
    np.testing.assert_allclose(y, softmax(np.array([20.0, 10.0, 0.0])), rtol=1e-14)
    np.testing.assert_allclose(softmax(np.array([-1e308, 0.0])), [0.0, 1.0])


def test_softmax_batch_is_rowwise():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]])
    y = softmax(x)
    np.testing.assert_allclose(y[0], softmax(x[0]), rtol=1e-15)
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-15)


@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 12)), elements=finite_floats))
def test_softmax_rows_are_distributions(x):
    y = softmax(x)
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)


def test_cross_entropy_book_values_with_labels_and_one_hot():
    t = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    y_good = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    y_bad = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])
    assert cross_entropy_error(y_good, t) == pytest.approx(0.510825457099338, rel=1e-12)
    assert cross_entropy_error(y_bad, t) == pytest.approx(2.302584092994546, rel=1e-12)
    batch = np.stack([y_good, y_bad])
    expected = (0.510825457099338 + 2.302584092994546) / 2
    assert cross_entropy_error(batch, np.stack([t, t])) == pytest.approx(expected, rel=1e-12)
    assert cross_entropy_error(batch, np.array([2, 2])) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_of_zero_probability_is_finite():
    assert np.isfinite(cross_entropy_error(np.array([1.0, 0.0]), np.array([1])))


def test_targets_that_do_not_match_the_batch_are_refused():
    with pytest.raises(ValueError, match="targets do not match the batch"):
        cross_entropy_error(np.full((3, 4), 0.25), np.array([0, 1]))


def test_softmax_cross_entropy_matches_definition_and_survives_extremes():
    scores = np.array([[0.3, 2.9, 4.0], [1.0, -1.0, 0.5]])
    t = np.array([2, 0])
    expected = -np.mean(np.log(softmax(scores)[[0, 1], t]))
    assert softmax_cross_entropy(scores, t) == pytest.approx(expected, rel=1e-14)
    # log(softmax) would be log(0) = -inf here; log_softmax stays exact
    assert softmax_cross_entropy(np.array([[0.0, 2000.0]]), np.array([0])) == pytest.approx(2000.0)
    np.testing.assert_allclose(log_softmax(np.array([0.0, 2000.0])), [-2000.0, 0.0])


def test_numerical_diff_central_and_forward():
    def f(x):
        return 0.01 * x**2 + 0.1 * x  # the book's function_1: f'(x) = 0.02x + 0.1

    assert numerical_diff(f, 5.0) == pytest.approx(0.2, abs=1e-10)
    assert numerical_diff(f, 10.0) == pytest.approx(0.3, abs=1e-10)
    # forward difference is off by f''(x) * h / 2 = 0.02 * 1e-4 / 2 = 1e-6
    assert numerical_diff(f, 5.0, method="forward") == pytest.approx(0.2 + 1e-6, abs=1e-9)


def test_central_difference_beats_forward_difference():
    exact = np.cos(1.0)
    central = abs(numerical_diff(np.sin, 1.0) - exact)
    forward = abs(numerical_diff(np.sin, 1.0, method="forward") - exact)
    assert central < forward / 100


def test_numerical_diff_rejects_unknown_method():
    with pytest.raises(ConfigError, match="central, forward"):
        numerical_diff(np.sin, 1.0, method="backward")
