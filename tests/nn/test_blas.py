"""The matrix products that add into their output (`nn/blas.py`)."""

import sys
import threading

import numpy as np
import pytest

from sgdlab.nn import blas


def _layouts(matrix):
    """The matrix as a row-major array, as a column-major one, and as a row-major (column-major) view inside a
    wider (taller) array."""
    wider = np.full((matrix.shape[0], matrix.shape[1] + 3), np.nan, matrix.dtype)
    wider[:, 1:-2] = matrix
    taller = np.asfortranarray(np.full((matrix.shape[0] + 3, matrix.shape[1]), np.nan, matrix.dtype))
    taller[1:-2] = matrix
    return {"row-major": matrix.copy(), "column-major": np.asfortranarray(matrix), "strided rows": wider[:, 1:-2],
            "strided columns": taller[1:-2]}


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


def _views_blas_would_read_past():
    """Views whose values BLAS, which reads forward from the first by a leading dimension, would miss or overrun."""
    backwards = np.arange(12.0).reshape(4, 3)[::-1]
    repeated = np.broadcast_to(np.arange(3.0), (4, 3))
    overlapping = np.lib.stride_tricks.as_strided(np.arange(20.0), (4, 3), (8, 8))  # windows, one value apart
    backwards_columns = np.asfortranarray(np.arange(12.0).reshape(4, 3))[:, ::-1]
    return {"rows read backwards": backwards, "a row repeated": repeated, "overlapping rows": overlapping,
            "columns read backwards": backwards_columns}


@pytest.mark.parametrize("name", list(_views_blas_would_read_past()))
def test_views_blas_would_read_or_write_past_are_refused_as_either_operand_or_the_output(name):
    view = _views_blas_would_read_past()[name]
    with pytest.raises(ValueError, match="unit steps"):
        blas.gemm(view, np.ones((3, 2)), np.zeros((4, 2)), accumulate=False)
    with pytest.raises(ValueError, match="unit steps"):
        blas.gemm(np.ones((2, 4)), view, np.zeros((2, 3)), accumulate=False)
    guard = np.full(40, 7.0)
    out = np.lib.stride_tricks.as_strided(guard[20:], view.shape, view.strides) if name != "rows read backwards" \
        else guard[:12].reshape(4, 3)[::-1]
    with pytest.raises(ValueError):
        blas.gemm(np.ones((4, 5)), np.ones((5, 3)), out, accumulate=False)
    assert (guard == 7).all()  # nothing written


def test_an_output_read_only_or_sharing_memory_with_an_operand_is_refused():
    a = np.ones((3, 3))
    read_only = np.zeros((3, 3))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable and apart"):
        blas.gemm(a, a.copy(), read_only, accumulate=False)
    with pytest.raises(ValueError, match="writeable and apart"):
        blas.gemm(a, np.ones((3, 3)), a, accumulate=True)
    assert (read_only == 0).all() and (a == 1).all()


def test_only_float32_and_float64_are_multiplied():
    with pytest.raises(ValueError, match="float32 or float64"):
        blas.gemm(np.ones((2, 2), np.float16), np.ones((2, 2), np.float16), np.zeros((2, 2), np.float16), False)


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
