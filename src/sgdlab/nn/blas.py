"""Matrix products that add into their output, with Python's lock released.

A convolution's shifted products (`layers/convolution.py`) add nine
products into one output, which NumPy's `matmul` cannot do (it only
overwrites). BLAS's gemm can (C = alpha A B + beta C), but SciPy's Python
wrappers of it keep the GIL while they run, so the two halves of a batch
that a training step computes on two threads would take turns. This calls
the same routine through SciPy's Cython BLAS table (`scipy.linalg.cython_blas`,
SciPy's stable interface to whichever BLAS it was built with), by ctypes,
which lets other threads run during the call.
"""

import ctypes

import numpy as np

_ROUTINES = {}  # dtype -> _Routine, made on first use
_Sizes = ctypes.c_int * 6  # m, n, k and the three leading dimensions, for one call
_INT = ctypes.sizeof(ctypes.c_int)


class _Routine:
    """gemm for one dtype, and its constant factors 1 and 0 (BLAS takes every argument by address)."""

    def __init__(self, function, scalar):
        self.function = function
        self.constants = (scalar * 2)(1, 0)  # read only, by any thread
        self.one = ctypes.addressof(self.constants)
        self.zero = self.one + ctypes.sizeof(scalar)


_GEMMS = {np.dtype(np.float32): ("sgemm", ctypes.c_float), np.dtype(np.float64): ("dgemm", ctypes.c_double)}
_LARGEST = 2**31 - 1  # BLAS's sizes are C ints


def load(dtype):
    """Load the BLAS library and routine for `dtype` now: a BLAS thread limit set afterwards then covers it."""
    dtype = np.dtype(dtype)
    if dtype not in _ROUTINES:
        if dtype not in _GEMMS:
            raise ValueError(f"BLAS multiplies float32 or float64 matrices, not {dtype}")
        from scipy.linalg import cython_blas  # (loads SciPy's BLAS library)

        name, scalar = _GEMMS[dtype]
        capsule = cython_blas.__pyx_capi__[name]
        get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
        get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
            ("PyCapsule_GetPointer", ctypes.pythonapi))
        # Every argument is a pointer (Fortran's convention); given as plain addresses, they cost ctypes least.
        function = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(get_pointer(capsule, get_name(capsule)))
        _ROUTINES[dtype] = _Routine(function, scalar)
    return _ROUTINES[dtype]


def _apart(stride, count, extent, itemsize):
    """Whether `count` runs of `extent` values, `stride` bytes apart, lie one after another without overlapping
    (what BLAS's leading dimension can say)."""
    return count <= 1 or (stride % itemsize == 0 and stride >= extent * itemsize)


def _as_column_major(matrix):
    """How BLAS, which reads columns, sees a 2-D view with unit steps along its rows or its columns:
    (transposed?, leading dimension). Anything else (rows read backwards, repeated or overlapping) is refused:
    BLAS would read or write past it."""
    rows, columns = matrix.shape
    size, (row_stride, column_stride) = matrix.itemsize, matrix.strides
    if (columns == 1 or column_stride == size) and _apart(row_stride, rows, columns, size):
        return b"N", max(row_stride // size if rows > 1 else columns, columns, 1)  # BLAS sees the transpose
    if (rows == 1 or row_stride == size) and _apart(column_stride, columns, rows, size):
        return b"T", max(column_stride // size if columns > 1 else rows, rows, 1)
    raise ValueError(f"a matrix product needs unit steps along rows or columns and rows apart, got a {matrix.shape} "
                     f"view with strides {matrix.strides}")


def gemm(a, b, out, accumulate):
    """out = a @ b, or out += a @ b when `accumulate`; 2-D float32 or float64 views, each with unit steps
    along its rows or its columns, `out` along its rows, writeable and apart from `a` and `b`."""
    (m, k), (k_b, n) = a.shape, b.shape
    if k != k_b or out.shape != (m, n) or not a.dtype == b.dtype == out.dtype:
        raise ValueError(f"cannot multiply {a.shape} {a.dtype} by {b.shape} {b.dtype} into {out.shape} {out.dtype}")
    if min(m, n) == 0:
        return out
    if not out.flags.writeable or np.may_share_memory(out, a) or np.may_share_memory(out, b):
        raise ValueError("a matrix product's output must be writeable and apart from the matrices multiplied")
    trans, ld_out = _as_column_major(out)
    if trans != b"N":
        raise ValueError(f"a matrix product's output needs unit steps along its rows, got strides {out.strides}")
    if k == 0:
        if not accumulate:
            out.fill(0)
        return out
    routine = load(out.dtype)
    # Row-major out (m, n) is column-major out.T (n, m) = b.T a.T: BLAS is given b first.
    trans_b, ld_b = _as_column_major(b)
    trans_a, ld_a = _as_column_major(a)
    if max(m, n, k, ld_a, ld_b, ld_out) > _LARGEST:
        raise ValueError(f"a matrix product of {a.shape} by {b.shape} is too large for BLAS's sizes")
    sizes = _Sizes(n, m, k, ld_b, ld_a, ld_out)
    at = ctypes.addressof(sizes)
    routine.function(trans_b, trans_a, at, at + _INT, at + 2 * _INT, routine.one, b.ctypes.data, at + 3 * _INT,
                     a.ctypes.data, at + 4 * _INT, routine.one if accumulate else routine.zero, out.ctypes.data,
                     at + 5 * _INT)
    return out
