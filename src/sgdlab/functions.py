"""Activations, softmax, losses and the numerical derivative, as the book introduces them.

Each function works on NumPy arrays of any float dtype and stays finite on
extreme inputs (no overflow warnings, no NaN from exp(1000)).
"""

import numpy as np

from .errors import ConfigError

DIFF_METHODS = ("central", "forward")


def step_function(x):
    """1 where x > 0, else 0: the perceptron's activation, kept for comparison."""
    return (np.asarray(x) > 0).astype(np.int64)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(x):
    """d sigmoid / dx = sigmoid(x) * (1 - sigmoid(x))."""
    s = sigmoid(x)
    return s * (1 - s)


def relu(x):
    """max(0, x)."""
    return np.maximum(x, 0)


def relu_grad(x):
    """1 where x > 0, else 0 (the subgradient 0 is taken at x == 0)."""
    return (np.asarray(x) > 0).astype(np.result_type(x, np.float32))


def softmax(x):
    """Softmax over the last axis of a 1-D vector or a batch of rows.

    The row maximum is subtracted first: mathematically a no-op, numerically
    what keeps exp() from overflowing.
    """
    x = np.asarray(x)
    shifted = x - np.max(x, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=-1, keepdims=True)


def log_softmax(x):
    """log(softmax(x)) without ever taking the log of an underflowed 0."""
    x = np.asarray(x)
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _as_batch(y, t):
    """`y` as a 2-D batch and `t` as class indices, accepting label or one-hot targets.

    As in the book, targets with as many entries as `y` are taken as one-hot.
    """
    y = np.asarray(y)
    t = np.asarray(t)
    if y.ndim == 1:
        y = y.reshape(1, -1)
    if t.size == y.size:
        labels = t.reshape(y.shape).argmax(axis=1)
    else:
        labels = t.reshape(-1).astype(np.intp, copy=False)
    if labels.shape[0] != y.shape[0]:
        raise ValueError(
            f"targets do not match the batch: {y.shape[0]} rows of scores but targets of shape {t.shape}; "
            "pass one label or one one-hot row per sample"
        )
    return y, labels


def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities `y` against label or one-hot targets `t`.

    As in the book, a tiny delta (1e-7) is added inside the log so that a
    probability of exactly 0 gives a large finite loss instead of infinity.
    """
    y, labels = _as_batch(y, t)
    return -np.sum(np.log(y[np.arange(y.shape[0]), labels] + 1e-7)) / y.shape[0]


def softmax_cross_entropy(scores, t):
    """Mean cross-entropy of softmax(scores), computed through log-softmax.

    This is the loss sgdlab trains on: exact (no delta), finite for any finite
    scores, and its derivative is exactly (softmax(scores) - onehot(t)) / N.
    """
    scores, labels = _as_batch(scores, t)
    log_probs = log_softmax(scores)
    return -np.mean(log_probs[np.arange(scores.shape[0]), labels])


def numerical_diff(f, x, h=1e-4, method="central"):
    """Derivative of the scalar function `f` at `x` by finite differences.

    "central" is (f(x+h) - f(x-h)) / 2h, with error O(h^2); "forward" is
    (f(x+h) - f(x)) / h, with error O(h): shown for teaching, worse in practice.
    """
    if method == "central":
        return (f(x + h) - f(x - h)) / (2 * h)
    if method == "forward":
        return (f(x + h) - f(x)) / h
    raise ConfigError(f"unknown difference method {method!r}: use one of {', '.join(DIFF_METHODS)}")
