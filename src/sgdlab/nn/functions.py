"""Activations, softmax, losses and the numerical derivative, as the book introduces them.

`sigmoid` and `relu` are defined with the rest of their activation in
`sgdlab.nn.activations` and are importable from here under the book's names.

Each function works on NumPy arrays of any float dtype and stays finite on
extreme inputs (no overflow warnings, no NaN from exp(1000)).
"""

import numpy as np

from ..errors import ConfigError
from .activations.relu import relu, relu_grad
from .activations.sigmoid import sigmoid, sigmoid_grad

__all__ = ["as_batch", "as_labels", "cross_entropy_error", "log_softmax", "numerical_diff", "relu", "relu_grad", "sigmoid",
           "sigmoid_grad", "softmax", "softmax_cross_entropy", "step_function"]

DIFF_METHODS = ("central", "forward")


def step_function(x):
    """1 where x > 0, else 0: the perceptron's activation, kept for comparison."""
    return (np.asarray(x) > 0).astype(np.int64)


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


def as_labels(t):
    """Class indices from label targets (N,) or one-hot rows (N, classes)."""
    t = np.asarray(t)
    return t.argmax(axis=1) if t.ndim == 2 else t


def as_batch(y, t):
    """`y` as a 2-D batch and `t` as class indices, accepting label or one-hot targets.

    As in the book, targets with as many entries as `y` are taken as one-hot.
    """
    y = np.asarray(y)
    t = np.asarray(t)
    if y.ndim == 1:
        y = y.reshape(1, -1)
    if t.size == y.size:
        labels = as_labels(t.reshape(y.shape))
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
    y, labels = as_batch(y, t)
    return -np.sum(np.log(y[np.arange(y.shape[0]), labels] + 1e-7)) / y.shape[0]


def softmax_cross_entropy(scores, t):
    """Mean cross-entropy of softmax(scores), computed through log-softmax.

    This is the loss sgdlab trains on: exact (no delta), finite for any finite
    scores, and its derivative is exactly (softmax(scores) - onehot(t)) / N.
    """
    scores, labels = as_batch(scores, t)
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


def softmax_cross_entropy_in_place(scores, labels, row_max, row_sum, row_starts):
    """`softmax_cross_entropy(scores, labels)` fused with its gradient, on buffers allocated once.

    Returns the mean loss and leaves d loss / d scores = (softmax - onehot) / N
    in `scores`: the training step's form of the loss. `row_max` and `row_sum`
    are (N, 1) buffers of the scores' dtype; `row_starts` is arange(N) * classes.
    (The ufuncs' own reduce methods: np.max, np.sum and np.mean cost several
    times more on arrays this small.)
    """
    batch_size = len(scores)
    np.maximum.reduce(scores, axis=1, keepdims=True, out=row_max)
    scores -= row_max
    true_class = row_starts + labels  # flat positions of each sample's true-class score
    flat = scores.reshape(-1)
    picked = flat.take(true_class)
    np.exp(scores, out=scores)
    np.add.reduce(scores, axis=1, keepdims=True, out=row_sum)
    loss = float(np.add.reduce(np.log(row_sum[:, 0]) - picked)) / batch_size
    scores /= row_sum
    flat[true_class] -= 1
    scores *= 1 / batch_size
    return loss
