"""The gradient check: backpropagation against numerical differentiation, parameter by parameter.

Backprop is fast but easy to get subtly wrong; the numerical gradient is slow
but follows directly from the definition of a derivative. When the two agree
to many digits, the backward pass is right.

For each parameter the check reports
- `max_abs_diff`: max |numerical - backprop| over the parameter's elements;
- `max_rel_error`: that difference relative to the parameter's largest
  gradient entry, max |numerical - backprop| / max(|numerical|, |backprop|).
  It is scale-free like an elementwise ratio, but not dominated by entries
  near zero, where both gradients are rounding noise (about 1e-12 here).

With float64 and h = 1e-4, central differences on these networks are exact
to about 1e-10 absolute (truncation error ~h^2, rounding ~1e-16 / h), so a
correct backward pass stays orders of magnitude below the thresholds, and a
wrong one (a missing factor, a transposed matrix) lands far above them.
"""

from dataclasses import dataclass

import numpy as np

from ..nn.functions import as_labels
from .backprop import BackpropStep
from .perturbation import numerical_gradient_fast

MAX_ABS_DIFF = 1e-7
MAX_REL_ERROR = 1e-6
ROUNDING_NOISE = 1e-10  # a gradient no larger than this is zero but for rounding, in both methods


@dataclass(frozen=True)
class ParamCheck:
    name: str
    shape: tuple
    max_abs_diff: float
    max_rel_error: float
    scale: float  # the largest gradient entry, of either method

    @property
    def is_zero(self):
        """A gradient that is zero in exact arithmetic, such as a bias's just before batch norm (which
        subtracts it again): both methods give rounding noise, whose relative error means nothing."""
        return self.scale <= ROUNDING_NOISE

    @property
    def passed(self):
        return self.max_abs_diff <= MAX_ABS_DIFF and (self.max_rel_error <= MAX_REL_ERROR or self.is_zero)


def gradient_scale(numerical, backprop):
    """The largest entry of either gradient."""
    return max(float(np.max(np.abs(numerical))), float(np.max(np.abs(backprop))))


def relative_error(numerical, backprop):
    """max |a - b| / max(|a|, |b|) over all elements (0 when both gradients are all zero)."""
    scale = gradient_scale(numerical, backprop)
    difference = float(np.max(np.abs(numerical - backprop)))
    return difference / scale if scale > 0 else difference


def compare_gradients(numerical_grads, backprop_grads):
    """One `ParamCheck` per parameter of two gradient dicts with the same keys."""
    checks = []
    for name, numerical in numerical_grads.items():
        backprop = backprop_grads[name]
        checks.append(ParamCheck(
            name=name,
            shape=tuple(numerical.shape),
            max_abs_diff=float(np.max(np.abs(numerical - backprop))),
            max_rel_error=relative_error(numerical, backprop),
            scale=gradient_scale(numerical, backprop),
        ))
    return checks


def gradient_check(network, x, t):
    """Compare `network`'s numerical gradient on the batch (x, t) with both of its backprops.

    sgdlab backpropagates two ways: through the book's layers (`network.gradient`)
    and through the training loop's `BackpropStep`. Each parameter's check
    reports the larger difference of the two. All three see the same dropout
    masks: the dropout generators start each from the same state.
    """
    generators = {id(layer.rng): layer.rng for layer in network.dropout_layers}.values()
    states = [(generator, generator.bit_generator.state) for generator in generators]

    def same_masks():
        for generator, state in states:
            generator.bit_generator.state = state

    _, numerical = numerical_gradient_fast(network, x, t)
    same_masks()
    _, by_step = BackpropStep(network, len(x))(x.astype(network.dtype, copy=False), as_labels(t))
    same_masks()
    by_layers = network.gradient(x, t)
    return [ParamCheck(layers.name, layers.shape, max(layers.max_abs_diff, step.max_abs_diff),
                       max(layers.max_rel_error, step.max_rel_error), max(layers.scale, step.scale))
            for layers, step in zip(compare_gradients(numerical, by_layers), compare_gradients(numerical, by_step))]
