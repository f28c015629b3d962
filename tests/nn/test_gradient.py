import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sgdlab.nn.gradient import gradient_descent, numerical_gradient


def function_2(x):
    return np.sum(x**2)


def test_book_examples():
    np.testing.assert_allclose(numerical_gradient(function_2, np.array([3.0, 4.0])), [6.0, 8.0], atol=1e-9)
    np.testing.assert_allclose(numerical_gradient(function_2, np.array([0.0, 2.0])), [0.0, 4.0], atol=1e-9)
    np.testing.assert_allclose(numerical_gradient(function_2, np.array([3.0, 0.0])), [6.0, 0.0], atol=1e-9)


def test_any_shape():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 10
    np.testing.assert_allclose(numerical_gradient(lambda a: np.sum(np.sin(a)), x), np.cos(x), atol=1e-8)


@given(arrays(np.float64, st.integers(1, 6), elements=st.floats(-1e3, 1e3, allow_nan=False)))
def test_restores_x_exactly(x):
    before = x.copy()
    numerical_gradient(lambda a: np.sum(a**3), x)
    np.testing.assert_array_equal(x, before)


def test_restores_x_when_f_raises():
    x = np.array([1.0, 2.0])

    def explode(a):
        if a[0] != 1.0:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError):
        numerical_gradient(explode, x)
    np.testing.assert_array_equal(x, [1.0, 2.0])


def test_refuses_integer_arrays_with_a_clear_message():
    with pytest.raises(TypeError, match="float NumPy array.*astype"):
        numerical_gradient(function_2, np.array([3, 4]))


def test_refuses_non_arrays():
    with pytest.raises(TypeError, match="got list"):
        numerical_gradient(function_2, [3.0, 4.0])


def test_gradient_descent_finds_the_minimum_and_leaves_the_start_alone():
    start = np.array([-3.0, 4.0])
    np.testing.assert_allclose(gradient_descent(function_2, start, lr=0.1, step_num=100), [0.0, 0.0], atol=1e-8)
    np.testing.assert_array_equal(start, [-3.0, 4.0])
