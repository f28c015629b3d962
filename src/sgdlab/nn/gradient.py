"""Numerical gradients: the chapter's way of finding which direction lowers the loss.

`numerical_gradient` is the textbook method, one element at a time. It is
slow (two evaluations of `f` per element) but needs nothing from `f` except
that it can be called, which makes it the reference every faster gradient in
sgdlab is tested against.
"""

import numpy as np


def numerical_gradient(f, x, h=1e-4):
    """Central-difference gradient of the scalar function `f` at the float array `x`.

    `f` is called as `f(x)` while one element of `x` is nudged by +h and by
    -h, so `x` must be the very array `f` reads (the book's
    `lambda W: net.loss(x, t)` idiom). Every element is restored exactly
    afterwards, even if `f` raises.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"numerical_gradient needs a float NumPy array, got {kind}: "
            "an integer array cannot hold x + h; convert it first, e.g. x.astype(np.float64)"
        )
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)  # a view: writing to it nudges x itself
    if not np.shares_memory(flat_x, x):
        raise ValueError("numerical_gradient needs a contiguous array: pass np.ascontiguousarray(x)")
    flat_grad = grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        try:
            flat_x[i] = original + h
            f_plus = f(x)
            flat_x[i] = original - h
            f_minus = f(x)
        finally:
            flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def gradient_descent(f, init_x, lr=0.01, step_num=100):
    """Follow the numerical gradient downhill from `init_x` for `step_num` steps.

    Returns the final point; `init_x` itself is not modified.
    """
    x = np.array(init_x, dtype=np.float64)
    for _ in range(step_num):
        x -= lr * numerical_gradient(f, x)
    return x
