"""The gradient check: backpropagation against numerical differentiation, parameter by parameter.

Backprop is fast but easy to get subtly wrong; the numerical gradient is slow
but follows directly from the definition of a derivative. When the two agree
to many digits, the backward pass is right.

For each parameter the check reports
- `max_abs_diff`: max |numerical - backprop| over the parameter's elements;
- `max_rel_error`: max over elements of |numerical - backprop| / (|numerical| + |backprop|),
  where elements whose gradients are both below `REL_ERROR_FLOOR` count as zero
  error (their relative error is pure rounding noise).

With float64 and h = 1e-4, central differences are exact to about 1e-9 on
these networks, so a correct backward pass stays far below the thresholds,
while a wrong one (a missing factor, a transposed matrix) exceeds them by
orders of magnitude.
"""

from dataclasses import dataclass

import numpy as np

MAX_ABS_DIFF = 1e-7
MAX_REL_ERROR = 1e-4
REL_ERROR_FLOOR = 1e-9


@dataclass(frozen=True)
class ParamCheck:
    name: str
    shape: tuple
    max_abs_diff: float
    max_rel_error: float

    @property
    def passed(self):
        return self.max_abs_diff <= MAX_ABS_DIFF and self.max_rel_error <= MAX_REL_ERROR


def relative_error(numerical, backprop):
    """Elementwise |a - b| / (|a| + |b|), 0 where both are below REL_ERROR_FLOOR."""
    scale = np.abs(numerical) + np.abs(backprop)
    significant = scale > REL_ERROR_FLOOR
    error = np.zeros_like(scale)
    error[significant] = np.abs(numerical - backprop)[significant] / scale[significant]
    return error


def compare_gradients(numerical_grads, backprop_grads):
    """One `ParamCheck` per parameter of two gradient dicts with the same keys."""
    checks = []
    for name, numerical in numerical_grads.items():
        backprop = backprop_grads[name]
        checks.append(ParamCheck(
            name=name,
            shape=tuple(numerical.shape),
            max_abs_diff=float(np.max(np.abs(numerical - backprop))),
            max_rel_error=float(np.max(relative_error(numerical, backprop))),
        ))
    return checks


def gradient_check(network, x, t):
    """Compare `network`'s numerical and backprop gradients on the batch (x, t)."""
    return compare_gradients(network.numerical_gradient(x, t), network.gradient(x, t))
