"""The matrix products that add into their output (`nn/blas.py`)."""

import sys
import threading

import numpy as np
import pytest

from sgdlab.nn import blas


def _layouts(matrix):
    """The matrix as a row-major array, as a column-major one, and as a row-major view inside a wider array."""
    wider = np.full((matrix.shape[0], matrix.shape[1] + 3), np.nan, matrix.dtype)
    wider[:, 1:-2] = matrix
    return {"row-major": matrix.copy(), "column-major": np.asfortranarray(matrix), "strided rows": wider[:, 1:-2]}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 4, 6), (6, 1, 2), (5, 3, 1), (40, 33, 17)])
def test_products_equal_numpys_in_every_layout_with_and_without_adding(dtype, accumulate, shape):
    m, k, n = shape
    rng = np.random.default_rng(m * k * n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    start = rng.standard_normal((m, n)).astype(dtype)
    expected = a.astype(np.float64) @ b.astype(np.float64) + (start if accumulate else 0)
    for a_name, a_view in _layouts(a).items():
        for b_name, b_view in _layouts(b).items():
            for out_name, out in {"whole": start.copy(), "strided rows": _layouts(start)["strided rows"]}.items():
                returned = blas.gemm(a_view, b_view, out, accumulate)
                assert returned is out
                np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5,
                                           err_msg=f"a {a_name}, b {b_name}, out {out_name}")


def test_an_output_slice_is_written_and_nothing_around_it():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3))
    rows = np.zeros((10, 3))
    blas.gemm(a, b, rows[2:8], accumulate=True)
    np.testing.assert_allclose(rows[2:8], a @ b)
    assert not rows[:2].any() and not rows[8:].any()


def test_an_empty_inner_dimension_gives_zeros_or_leaves_the_sum():
    out = np.ones((2, 3))
    blas.gemm(np.empty((2, 0)), np.empty((0, 3)), out, accumulate=True)
    assert (out == 1).all()
    blas.gemm(np.empty((2, 0)), np.empty((0, 3)), out, accumulate=False)
    assert (out == 0).all()


@pytest.mark.parametrize("a, b, out, problem", [
    (np.ones((2, 3)), np.ones((4, 2)), np.ones((2, 2)), "cannot multiply"),
    (np.ones((2, 3)), np.ones((3, 2)), np.ones((3, 2)), "cannot multiply"),
    (np.ones((2, 3)), np.ones((3, 2), np.float32), np.ones((2, 2)), "cannot multiply"),
    (np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 2)).T, "unit steps along its rows"),
    (np.ones((4, 6))[::2, ::2], np.ones((3, 2)), np.ones((2, 2)), "unit steps along rows or columns"),
])
def test_what_blas_cannot_take_is_refused_before_it_is_called(a, b, out, problem):
    with pytest.raises(ValueError, match=problem):
        blas.gemm(a, b, out, accumulate=False)


def test_other_python_threads_run_while_a_product_is_computed():
    """With no forced switches between threads (a long switch interval), the main thread can run while the
    product's thread computes only if the product lets go of Python's lock; holding it, it would be seen
    only finished."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3000, 500)).astype(np.float32), rng.standard_normal((500, 500)).astype(np.float32)
    out = np.empty((3000, 500), np.float32)
    blas.load(np.float32)
    started, finished = threading.Event(), threading.Event()

    def products():
        started.set()
        for _ in range(20):
            blas.gemm(a, b, out, accumulate=True)
        finished.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(30)
    try:
        worker = threading.Thread(target=products)
        worker.start()
        started.wait()
        seen_running = not finished.is_set()
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen_running
