"""The gradient check: backpropagation against numerical differentiation, parameter by parameter.

Backprop is fast but easy to get subtly wrong; the numerical gradient is slow
but follows directly from the definition of a derivative. When the two agree
to many digits, the backward pass is right. For that verdict to mean
something, the numerical side must be a derivative to many digits for every
correct network, so the judge is not the book's central difference itself:

- Truncation. The central difference (L(w+h) - L(w-h)) / 2h errs by
  h^2 L''' / 6 + O(h^4). Richardson extrapolation, (4 D(h/2) - D(h)) / 3,
  cancels the h^2 term, leaving O(h^4).
- Scale. Batch norm divides a feature by its spread over the batch, so the
  loss curves on the scale of that spread: with small weights (the book's
  0.01) h = 1e-4 is no longer small beside it. The step of a layer followed
  by batch norm is therefore h times the smallest spread of its features
  (sqrt(var + eps)), which makes the check the same at every weight scale
  (the loss depends on such a layer's weights only through their ratio to
  that spread; a feature equal in every sample, such as a convolution's
  output over a corner every image leaves blank, moves alike in all and
  is not counted). gamma and beta act on the normalised features: their step
  starts at h. A batch norm after a parameter can still curve the loss on a
  smaller scale (its features hardly spread over a batch of two, say): where
  the differences at a step and half of it disagree by more than
  TRUNCATION of the gradient, the step shrinks and that parameter is
  differentiated again.
- Kinks. Where a nudge moves a relu input across 0 between w - h and w + h,
  or changes which input of a max-pooling window is its maximum, the
  difference quotient spans a jump of the slope and is no derivative at
  all. The fast numerical gradient finds exactly those entries (each linear
  piece's reach, each window's winner); they are differentiated again with
  steps ten and a hundred times smaller, and those whose nudges still
  cross are counted apart, not compared. A parameter none of whose
  entries could be compared (a bias at exactly 0 where blank windows sit
  on relu's kink) is not verified, which is not a pass.

For each parameter the check reports, over the entries compared,
- `max_abs_diff`: max |numerical - backprop|;
- `max_rel_error`: that difference relative to the parameter's largest
  gradient entry, max |numerical - backprop| / max(|numerical|, |backprop|).
  It is scale-free like an elementwise ratio, but not dominated by entries
  near zero, where both gradients are rounding noise;
- `kinks`: how many entries were not compared because their nudge crosses a kink.

A parameter passes when its largest difference is within MAX_ABS_DIFF and
within MAX_REL_ERROR of its largest gradient entry, give or take the
numerical gradient's rounding floor: the paths that recompute a loss
subtract it from the unperturbed one, losing about eps |L| each, which the
division by the step magnifies (`noise`, ROUNDING |L| / step). A gradient
no larger than that floor is zero but for rounding, in both methods.

A correct backward pass then agrees to about ten digits whatever the
network, and a wrong one (a missing factor, a transposed matrix, a dropped
term) misses by orders of magnitude.
"""

from dataclasses import dataclass

import numpy as np

from ..nn.functions import as_labels
from ..nn.layers import BATCH_NORM_EPS, batch_normalize, frozen_training
from .backprop import BackpropStep
from .perturbation import central_differences, step_owner

STEP = 1e-4  # the book's h, for layers not followed by batch norm
MAX_ABS_DIFF = 1e-7
MAX_REL_ERROR = 1e-6
ROUNDING = 1e-13  # a loss difference's rounding, relative to the loss: ~450 eps, tens of times what is lost
TRUNCATION = 1e-5  # the largest error of the central difference at h/2, relative to the gradient, extrapolated
STEP_ROUNDS = 4  # passes with smaller steps, at most
MIN_SHRINK = 1e-3  # a step shrinks at most this much in one round
KINK_SHRINK = 0.1  # the entries across a kink are differentiated again with steps this much smaller,
KINK_ROUNDS = 2  # at most this many times (h = 1e-4 down to 1e-6, where rounding still leaves ten digits)


@dataclass(frozen=True)
class ParamCheck:
    name: str
    shape: tuple
    max_abs_diff: float
    max_rel_error: float
    scale: float  # the largest gradient entry compared, of either method
    noise: float = 0.0  # the numerical gradient's rounding floor
    kinks: int = 0  # entries not compared: their nudge crosses a kink
    sampled: int | None = None  # entries differentiated, where a sample of them was (`gradient_check`'s `entries`)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def differentiated(self):
        """The entries differentiated: all, or the sample."""
        return self.size if self.sampled is None else self.sampled

    @property
    def is_zero(self):
        """A gradient that is zero in exact arithmetic, such as a bias's just before batch norm (which
        subtracts it again): both methods give rounding noise, whose relative error means nothing."""
        return self.scale <= self.noise

    @property
    def checked(self):
        """Whether any entry was compared: where every nudge crosses a kink (a bias at exactly 0 before a relu
        that blank pixels leave at 0), nothing is, and the parameter is not verified, which is no pass."""
        return self.kinks < self.differentiated

    @property
    def passed(self):
        return self.checked and self.max_abs_diff <= min(MAX_ABS_DIFF, MAX_REL_ERROR * self.scale + self.noise)


def gradient_scale(numerical, backprop):
    """The largest entry of either gradient."""
    return max(float(np.max(np.abs(numerical), initial=0.0)), float(np.max(np.abs(backprop), initial=0.0)))


def relative_error(numerical, backprop):
    """max |a - b| / max(|a|, |b|) over all elements (0 when both gradients are all zero)."""
    scale = gradient_scale(numerical, backprop)
    difference = float(np.max(np.abs(numerical - backprop), initial=0.0))
    return difference / scale if scale > 0 else difference


def compare_gradients(numerical_grads, backprop_grads, kinks=None, noise=None, only=None):
    """One `ParamCheck` per parameter of two gradient dicts with the same keys, leaving out the entries that
    `kinks` (booleans per parameter, or None) marks and those not differentiated (NaN outside the sample
    `only`, if given: a NaN in it, a diverged net's, is compared and fails); `noise` maps parameters to their
    rounding floor."""
    checks = []
    for name, numerical in numerical_grads.items():
        backprop = np.asarray(backprop_grads[name])
        outside = np.zeros(numerical.size, bool)
        if only is not None and name in only:
            outside[:] = True
            outside[only[name]] = False
        differentiated = ~(outside.reshape(numerical.shape) & np.isnan(numerical))
        compared = differentiated if kinks is None else differentiated & ~kinks[name]
        sampled = None if differentiated.all() else int(np.count_nonzero(differentiated))
        numerical, backprop_compared = numerical[compared], backprop[compared]
        checks.append(ParamCheck(
            name=name,
            shape=tuple(backprop.shape),
            max_abs_diff=float(np.max(np.abs(numerical - backprop_compared), initial=0.0)),
            max_rel_error=relative_error(numerical, backprop_compared),
            scale=gradient_scale(numerical, backprop_compared),
            noise=0.0 if noise is None else noise[name],
            kinks=int(np.count_nonzero(differentiated) - np.count_nonzero(compared)),
            sampled=sampled,
        ))
    return checks


def starting_steps(network, x, t, h=STEP):
    """Each parameter's first step: `h`, times the smallest spread of its features for the W and b of a layer
    (affine or convolution) followed by batch norm (see the module's docstring)."""
    steps = {key: h for key in network.params}
    with frozen_training(network.layers):  # the book's forward pass, in float64, nothing moved
        features = network.as_input(np.asarray(x, np.float64))
        for before, layer, keys in zip([None, *network.layers], network.layers, [(), *network.layer_keys]):
            if layer.kind == "batch_norm" and "W" in getattr(before, "parameter_names", ()):
                _, _, _, _, var = batch_normalize(features.reshape(len(features), -1))
                # a feature equal in every sample (a corner the images leave blank) moves alike in all: not counted
                varying = var[var > 0]
                smallest = float(np.min(varying)) if varying.size else 0.0
                for key in keys:
                    steps[key] = h * float(np.sqrt(smallest + BATCH_NORM_EPS))
            features = layer.forward(features, True) if layer.uses_train_flg else layer.forward(features)
    return steps


def sampled_entries(network, entries, seed=0):
    """{parameter: `entries` of its flat entries, drawn at random by `seed`, sorted} for each parameter with
    more: the sample a gradient check differentiates of them (cs231n's grad_check_sparse), so that a net
    whose every nudge is slow is checked in minutes."""
    rng = np.random.default_rng(seed)
    return {key: np.sort(rng.choice(param.size, entries, replace=False))
            for key, param in network.params.items() if param.size > entries}


def extrapolated_gradient(network, x, t, same_masks=lambda: None, only=None):
    """(grads, kinks, noise): Richardson's extrapolation of the central differences at each parameter's
    step and half of it, the entries whose nudge by either crosses a kink (None for a curved activation),
    and each parameter's rounding floor. `same_masks()` is called before each pass, so that every one sees
    the same dropout masks. `only`: the entries to differentiate of a convolutional net's parameters
    (`sampled_entries`), the others NaN.

    A parameter whose two differences disagree by more than TRUNCATION of its
    gradient (the loss curves on a smaller scale than its step: a batch norm
    after it normalising features that hardly spread) is differentiated
    again with the step that brings that below TRUNCATION, so that what is
    left after the extrapolation, about its square, is far below MAX_REL_ERROR.
    """
    same_masks()
    steps = starting_steps(network, x, t)
    for _ in range(STEP_ROUNDS):
        same_masks()
        loss, coarse, coarse_kinks = central_differences(network, x, t, steps=steps, find_kinks=True, only=only)
        same_masks()
        _, fine, fine_kinks = central_differences(network, x, t, steps={key: step / 2 for key, step in steps.items()},
                                                  find_kinks=True, only=only)
        kinks = None if coarse_kinks is None else {key: coarse_kinks[key] | fine_kinks[key] for key in coarse_kinks}
        noise = {key: ROUNDING * max(1.0, abs(loss)) / (step / 2) for key, step in steps.items()}
        shrink = {}
        for key in steps:
            compared = ~np.isnan(fine[key]) if kinks is None else ~np.isnan(fine[key]) & ~kinks[key]  # the sample
            truncation = float(np.max(np.abs(coarse[key] - fine[key])[compared], initial=0.0)) / 3  # fine's error
            allowed = TRUNCATION * float(np.max(np.abs(fine[key][compared]), initial=0.0)) + noise[key]
            if truncation > allowed:  # the error falls as the step squared
                factor = max(MIN_SHRINK, 0.5 * float(np.sqrt(allowed / truncation)))
                shrink[step_owner(key)] = min(factor, shrink.get(step_owner(key), 1.0))
        if not shrink:
            break
        for key in steps:
            steps[key] *= shrink.get(step_owner(key), 1.0)
    grads = {key: (4 * fine[key] - coarse[key]) / 3 for key in fine}
    if kinks is not None:
        _closer_to_the_kinks(network, x, t, same_masks, steps, grads, kinks, noise)
    return grads, kinks, noise


def _closer_to_the_kinks(network, x, t, same_masks, steps, grads, kinks, noise):
    """Differentiate the entries whose nudge crosses a kink again with steps KINK_SHRINK and KINK_SHRINK^2 as
    large: an entry whose nudges then stay on their linear pieces is a derivative there after all, and is
    compared (the parameter's rounding floor growing with the smaller step). Entries sitting on a kink (a
    bias at exactly 0 where blank windows leave relu's input at exactly 0) stay apart at any step. A
    convolutional net's nudges are of those entries alone (`only`); a dense net's, of all."""
    for _ in range(KINK_ROUNDS):
        retried = [key for key in steps if kinks[key].any()]
        if not retried:
            return
        for key in steps:
            steps[key] *= KINK_SHRINK
        across = {key: np.flatnonzero(kinks[key]) for key in steps}  # none, for a parameter without such entries
        same_masks()
        loss, coarse, coarse_kinks = central_differences(network, x, t, steps=steps, find_kinks=True, only=across)
        same_masks()
        _, fine, fine_kinks = central_differences(network, x, t, steps={key: step / 2 for key, step in steps.items()},
                                                  find_kinks=True, only=across)
        for key in retried:
            resolved = kinks[key] & ~(coarse_kinks[key] | fine_kinks[key])
            if resolved.any():
                grads[key][resolved] = ((4 * fine[key] - coarse[key]) / 3)[resolved]
                kinks[key] &= ~resolved
                noise[key] = max(noise[key], ROUNDING * max(1.0, abs(loss)) / (steps[key] / 2))


def gradient_check(network, x, t, entries=None, seed=0):
    """Compare `network`'s numerical gradient on the batch (x, t) with both of its backprops.

    sgdlab backpropagates two ways: through the book's layers (`network.gradient`)
    and through the training loop's `BackpropStep`. Each parameter's check
    reports the larger difference of the two. All of them see the same
    dropout masks: the dropout generators start each from the same state.
    With `entries`, a convolutional net's convolutions differentiate a random
    sample of that many entries of each parameter (`seed` draws it), each
    check saying how many (`sampled`); its dense layers are differentiated whole.
    """
    generators = {id(layer.rng): layer.rng for layer in network.dropout_layers}.values()
    states = [(generator, generator.bit_generator.state) for generator in generators]

    def same_masks():
        for generator, state in states:
            generator.bit_generator.state = state

    only = None if entries is None else sampled_entries(network, entries, seed)
    numerical, kinks, noise = extrapolated_gradient(network, x, t, same_masks, only)
    same_masks()
    _, by_step = BackpropStep(network, len(x))(x.astype(network.dtype, copy=False), as_labels(t))
    same_masks()
    by_layers = network.gradient(x, t)
    return [ParamCheck(layers.name, layers.shape, max(layers.max_abs_diff, step.max_abs_diff),
                       max(layers.max_rel_error, step.max_rel_error), max(layers.scale, step.scale), layers.noise,
                       layers.kinks, layers.sampled)
            for layers, step in zip(compare_gradients(numerical, by_layers, kinks, noise, only),
                                    compare_gradients(numerical, by_step, kinks, noise, only))]
