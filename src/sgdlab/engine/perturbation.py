"""The textbook numerical gradient, computed without recomputing what a perturbation cannot change.

The chapter's gradient of the batch loss L for a parameter w is the central
difference (L(w+h) - L(w-h)) / 2h, where each L is a full forward pass. This
module computes the same quantity, with the same h, for every parameter of a
`MultiLayerNet`, by evaluating only what nudging w changes (a `ConvNet`'s
go to `sgdlab.engine.conv_perturbation`, which carries each nudge of a
filter through its one channel and hands the dense layers after the
convolutions, its head, back to this module as a dense net):

- Nudging W_k[i, j] (or b_k[j]) by e changes one column j of layer k's output
  z_k, by e * a[:, i] (the layer's input column i; 1 for the bias). Nothing
  before layer k changes, and samples whose input a[n, i] is 0 (most MNIST
  pixels) do not change at all: they are skipped, as their loss terms cancel
  exactly in L(w+h) - L(w-h).
- So every perturbed loss is a sum over the changed samples n of
  d_n = loss_n(perturbed) - loss_n(unperturbed), each computed from cached
  forward-pass values:
  * last layer: only score j moves, and the new log-sum-exp is
    log1p(p_nj * expm1(e)): one expm1 and one log1p per sample;
  * the layer before it: hidden unit j moves by Da (the activation's exact
    change), so every score c moves by Da * W[j, c], and the new normaliser is
    log(sum_c p_nc exp(Da W[j, c])) = log1p(sum_m Da^m / m! * M_m[n, j]) with
    the moments M_m = sum_c p_nc W[j, c]^m. The exponential series is summed
    until its terms fall below float64 rounding (about five terms here), so
    the value is exact to rounding, as a libm exp is;
  * earlier layers of deeper nets whose later activations are piecewise
    linear (relu): while no later unit of a sample is moved across its
    kink, the scores move linearly in Da, by Da V[n, j, c], V the product
    of the layers in between with each unit's slope (and dropout mask):
    the same series with per-sample moments. Entries that could reach a
    kink (|Da| times a later unit's sensitivity to it at least its
    distance from the kink) are recomputed through the layers;
  * otherwise (sigmoid, tanh): the rest of the net is recomputed for the
    changed samples only, many perturbations at a time.
- A nudge that moves a unit of a piecewise-linear activation (relu) off
  its linear piece, across its kink, is found on every path (for the
  gradient check, which must not take such a difference for a derivative).
- The gradient is sum_n (d_n(+h) - d_n(-h)) / (2h N), perturbations evaluated
  in chunks of whole arrays at once, so memory stays bounded; the chunks are
  shared between two threads (NumPy releases the GIL in its array loops).
- Pairs of the same sample with the same input value (two pixels of equal
  brightness) shift the same sample by the same amount: their loss change is
  computed once.
- Dropout multiplies each hidden unit's change by its mask, drawn once for
  all the nudges, as the textbook's are (`frozen_training`).
- Batch normalization couples the samples: nudging W_k[i, j] moves feature j
  of every sample whose a[n, i] is nonzero, and so the batch's mean and
  variance of that feature, and so feature j of every sample. Batch norm is
  per feature, so still only column j of layer k moves: it is renormalised
  for the whole batch, exactly. After the last hidden layer the loss then
  follows by the series above; before it, the next layer's renormalisation
  has a closed form in that column's change (its mean and variance move by
  known amounts), and with that layer's units on their linear pieces the
  scores follow by two matrix products for many nudges at once; the few
  units a nudge moves across their kink are found and corrected exactly. A
  net where neither applies has the rest of the net recomputed for all
  samples. Inputs that are 0 in every
  sample move nothing and are skipped. gamma and beta move feature j after
  the normalisation. Running statistics are never touched.

Everything runs in float64. The difference from the textbook computation is
rounding only: the textbook subtracts two losses near 2.3 (rounding ~1e-16 each,
so ~1e-12 in the gradient), while here the unchanged terms never enter, so this
result is, if anything, the more accurate of the two.
"""

import math
import threading

import numpy as np

from ..nn.functions import as_batch, log_softmax, softmax
from ..nn.layers import BATCH_NORM_EPS, batch_normalize
from ..nn.network import ConvNet, weight_decay_terms
from . import conv_perturbation
from .threads import CallersErrorsPool

CHUNK_ELEMENTS = 1 << 17  # perturbed (sample, unit) values per array in flight: bounds memory
DIRECTION_ELEMENTS = 1 << 23  # per-sample products of the layers after a hidden layer, at most
COUPLED_CHUNK_ELEMENTS = 1 << 20  # the same for batch norm's whole-batch recomputations
SERIES_TOLERANCE = 1e-22  # series terms smaller than this are below float64 rounding of any loss term
MAX_SERIES_TERMS = 40  # beyond this (|Da * W| > ~5, never with a sane h), recompute the scores instead


def numerical_gradient_fast(network, x, t, h=1e-4, use_series=True, workers=2, follow_statistics=False):
    """(loss, grads): the batch loss and the central-difference gradient of every parameter.

    Same quantity as `network.numerical_gradient(x, t, h)` (the textbook
    method, in training mode, each dropout mask drawn once from the layer's
    generator as the textbook draws it), to float64 rounding, for dense
    and convolutional nets alike.
    `use_series=False` recomputes the layers after each hidden layer of a
    net without batch norm instead of summing the exponential series
    (slower; kept to check the series and the linear pieces against). `workers` threads share the work. The running statistics
    of batch norm stay as they are, unless `follow_statistics` (a training
    step) moves them by this batch's once, as a backpropagation step does.
    """
    loss, grads, _ = central_differences(network, x, t, h, use_series=use_series, workers=workers,
                                         follow_statistics=follow_statistics)
    return loss, grads


def central_differences(network, x, t, h=1e-4, steps=None, find_kinks=False, use_series=True, workers=2,
                        follow_statistics=False, only=None):
    """(loss, grads, kinks): `numerical_gradient_fast`'s loss and gradient, with a step per layer if asked,
    and the nudges that straddle a kink.

    `h` is the step of every parameter, but for those that `steps` (if given)
    maps to their own: b_k takes W_k's step and beta_k gamma_k's (each pair
    moves the same feature). With `find_kinks`, `kinks` maps each
    parameter to booleans of its shape: True where nudging the entry by +h or
    -h takes some unit of a piecewise-linear activation (relu) of some sample
    off the linear piece it is on, so that the central difference there spans
    a jump of the slope and is no derivative. Every path below finds them
    exactly, from each piece's reach (`Activation.linear_pieces`); in a
    convolutional net, also where it changes the winner of a max-pooling
    window. `kinks` is None without `find_kinks`, or for a net with nothing
    piecewise linear (a curved activation, no max pooling: it has no kinks).
    `only` (a convolutional net's): the entries of its convolutions' parameters
    to nudge, the others left NaN (see `conv_central_differences`); a dense
    layer is differentiated whole.
    """
    if isinstance(network, ConvNet):
        return conv_perturbation.conv_central_differences(network, x, t, h, steps, find_kinks, use_series, workers,
                                                          follow_statistics, only)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    forward = CachedForward(network, x, t, find_kinks)
    num_layers = len(forward.weights)
    steps = steps or {}
    grads, kinks = {}, None if forward.reaches is None else {}
    with CallersErrorsPool(max_workers=workers) as pool:
        for k in range(num_layers):
            step = steps.get(f"W{k + 1}", h)
            if k < num_layers - 1 and forward.batch_norm:
                layer_grads, layer_kinks = _coupled_layer_gradient(pool, forward, k, step,
                                                                   steps.get(f"gamma{k + 1}", h))
            else:
                if k == num_layers - 1:
                    difference = LastLayerDifference(forward)
                elif use_series:
                    difference = SeriesDifference.or_recomputed(forward, k, step)
                else:
                    difference = RecomputedDifference(forward, k)
                layer_grads, layer_kinks = _layer_gradient(pool, workers, forward.inputs[k],
                                                           forward.weights[k].shape[1], difference, step)
            if network.weight_decay_lambda:
                layer_grads[0] += weight_decay_difference(forward.weights[k], network.weight_decay_lambda, step)
            for name, grad, kinked in zip(("W", "b", "gamma", "beta"), layer_grads, layer_kinks):
                grads[f"{name}{k + 1}"] = grad
                if kinks is not None:
                    kinks[f"{name}{k + 1}"] = np.zeros(grad.shape, bool) if kinked is None else kinked
    if follow_statistics:
        for layer, (mean, var) in zip(network.batch_norm_layers, forward.batch_statistics):
            layer.follow(mean.astype(network.dtype), var.astype(network.dtype))
    grads = {key: grads[key].astype(param.dtype, copy=False) for key, param in network.params.items()}
    if kinks is not None:
        kinks = {key: kinks[key] for key in network.params}
    return forward.loss + network.weight_decay(), grads, kinks


def step_owner(key):
    """The parameter whose step `key` takes in `central_differences`: b_k takes W_k's, beta_k gamma_k's (each
    pair moves the same feature)."""
    name = key.rstrip("0123456789")
    return {"b": "W", "beta": "gamma"}.get(name, name) + key[len(name):]


def _either(*flags):
    """The elementwise or of the boolean arrays among `flags`, None where every one is None (kinks not sought)."""
    present = [flag for flag in flags if flag is not None]
    return np.logical_or.reduce(present) if present else None


def weight_decay_difference(W, decay_lambda, h):
    """The central difference of the weight decay for each weight: nudging one changes only its own term."""
    return (weight_decay_terms(W + h, decay_lambda) - weight_decay_terms(W - h, decay_lambda)) / (2 * h)


def _layer_gradient(pool, workers, inputs, width, difference, h):
    """Central differences for the weights and biases of one layer.

    `difference(rows, e)` gives, for samples `rows` whose output column j
    shifts by +e or -e (one e per row), d(+e) - d(-e) per sample and column,
    shaped (rows, width), and whether either shift left a linear piece (or
    None). Nudging input unit i's weight shifts sample n by h * a[n, i], so
    pairs with the same sample and the same input value give the same
    difference: it is computed once for each distinct pair (for MNIST
    batches, under half of the nonzero pixels). Returns [grad W, grad b] and
    [kinks of W, kinks of b] (or Nones).
    """
    batch_size, fan_in = inputs.shape
    augmented = np.concatenate([inputs, np.ones((batch_size, 1))], axis=1)  # the bias sees an input of 1
    unit, row = np.nonzero(augmented.T)  # the (input, sample) pairs a nudge can reach, grouped by input
    value = augmented[row, unit]
    distinct_rows, distinct_values, pair_group = _distinct_pairs(row, value)

    # Equal parts, as many as the threads can share evenly, none over CHUNK_ELEMENTS values.
    num_parts = -(-len(distinct_rows) * width // CHUNK_ELEMENTS)
    num_parts = -(-num_parts // workers) * workers
    bounds = np.linspace(0, len(distinct_rows), num_parts + 1).astype(int)
    parts = [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
    results = list(pool.map(lambda part: difference(distinct_rows[part], h * distinct_values[part]), parts))
    differences = np.concatenate([found for found, _ in results])
    crossed = None if results[0][1] is None else np.concatenate([crossed for _, crossed in results])

    chunk = max(1, CHUNK_ELEMENTS // width)
    grad = np.zeros((fan_in + 1, width))
    kinked = None if crossed is None else np.zeros((fan_in + 1, width), bool)
    for start in range(0, len(unit), chunk):
        part = slice(start, start + chunk)
        units = unit[part]
        first = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])  # where each input's pairs begin
        grad[units[first]] += np.add.reduceat(differences[pair_group[part]], first, axis=0)
        if kinked is not None:
            kinked[units[first]] |= np.logical_or.reduceat(crossed[pair_group[part]], first, axis=0)
    grad /= 2 * h * batch_size
    return [grad[:fan_in], grad[fan_in]], [None, None] if kinked is None else [kinked[:fan_in], kinked[fan_in]]


def _coupled_layer_gradient(pool, forward, k, h, normalised_h):
    """Central differences for W, b (step h), gamma and beta (step normalised_h) of hidden layer k of a net
    with batch norm.

    Each nudge moves feature j of layer k for the whole batch; the loss
    differences of many nudges are evaluated at once, in parts the threads share.
    """
    inputs = forward.inputs[k]
    batch_size, fan_in = inputs.shape
    width = forward.weights[k].shape[1]
    difference = _coupled_difference(forward, k)
    augmented = np.concatenate([inputs, np.ones((batch_size, 1))], axis=1)  # the bias sees an input of 1
    reached = np.flatnonzero(np.any(augmented != 0, axis=0))  # an input 0 for every sample moves nothing
    # every nudge: the feature it moves and its shift of that feature per sample (row `shift_rows[i]` of
    # `shifts`), before normalising or after
    units = np.arange(width)
    nudges = [(np.tile(units, len(reached)), np.repeat(np.arange(len(reached)), width), augmented[:, reached].T, True,
               h),
              (units, units, forward.normalized[k].T, False, normalised_h),  # gamma_j moves feature j by e * xn_j
              (units, np.zeros(width, int), np.ones((1, batch_size)), False, normalised_h)]  # beta_j by e
    chunk = difference.nudges_per_part
    differences, crossings = [], []
    for moved_units, shift_rows, shifts, before_normalising, step in nudges:
        parts = [slice(start, start + chunk) for start in range(0, len(moved_units), chunk)]
        results = list(pool.map(
            lambda part: difference(moved_units[part], step * shifts[shift_rows[part]], before_normalising), parts))
        differences.append(np.concatenate([found for found, _ in results]))
        crossings.append(None if results[0][1] is None else np.concatenate([crossed for _, crossed in results]))
    grad = np.zeros((fan_in + 1, width))
    grad[reached] = differences[0].reshape(len(reached), width)
    grad_gamma, grad_beta = differences[1], differences[2]
    scale, normalised_scale = 2 * h * batch_size, 2 * normalised_h * batch_size
    grads = [grad[:fan_in] / scale, grad[fan_in] / scale, grad_gamma / normalised_scale, grad_beta / normalised_scale]
    if crossings[0] is None:
        return grads, [None] * 4
    kinked = np.zeros((fan_in + 1, width), bool)
    kinked[reached] = crossings[0].reshape(len(reached), width)
    return grads, [kinked[:fan_in], kinked[fan_in], crossings[1], crossings[2]]


def _distinct_pairs(row, value):
    """The distinct (row, value) pairs, and for each original pair the index of its distinct pair."""
    distinct_values, value_code = np.unique(value, return_inverse=True)
    key = row * len(distinct_values) + value_code  # equal exactly when both row and value are
    order = np.argsort(key)
    sorted_key = key[order]
    starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group = np.empty(len(row), dtype=np.intp)
    group[order] = np.cumsum(starts) - 1
    first = order[starts]
    return row[first], value[first], group


class CachedForward:
    """One training-mode forward pass in float64, keeping what the loss differences of every nudge are
    computed from: for each hidden layer, z = a W + b, batch norm's xn and y = gamma xn + beta (y = z
    without it), f(y), and the dropout mask it is multiplied by (None without one); with `find_kinks`, and
    an activation made of linear pieces, how far each y can move on its piece (`reaches`, else None)."""

    def __init__(self, network, x, t, find_kinks=False):
        self.weights = [np.asarray(affine.W, np.float64) for affine in network.affine_layers]
        self.biases = [np.asarray(affine.b, np.float64) for affine in network.affine_layers]
        self.activation = network.hidden_activation
        self.batch_norm = [(np.asarray(layer.gamma, np.float64), np.asarray(layer.beta, np.float64))
                           for layer in network.batch_norm_layers]
        self.inputs, self.outputs = [], []  # a_k (layer k's input) and z_k (its affine output)
        self.normalized, self.batch_statistics, self.pre_activations, self.activations, self.masks = [], [], [], [], []
        dropouts = iter(network.dropout_layers)
        a = x
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            self.inputs.append(a)
            z = a @ W + b
            self.outputs.append(z)
            if k == len(self.weights) - 1:
                break
            y = z
            if self.batch_norm:
                xn, _, _, mean, var = batch_normalize(z)
                gamma, beta = self.batch_norm[k]
                y = gamma * xn + beta
                self.normalized.append(xn)
                self.batch_statistics.append((mean[0], var[0]))
            self.pre_activations.append(y)
            a = self.activation.forward(y)
            self.activations.append(a)
            dropout = next(dropouts, None)
            self.masks.append(None if dropout is None else dropout.draw_mask(a.shape).astype(np.float64))
            if dropout is not None:
                a = a * self.masks[-1]
        scores = self.outputs[-1]
        _, self.labels = as_batch(scores, t)
        self.probs = softmax(scores)
        self.sample_losses = -log_softmax(scores)[np.arange(len(scores)), self.labels]
        self.loss = float(np.mean(self.sample_losses))
        self.one_hot = np.zeros_like(scores)
        self.one_hot[np.arange(len(scores)), self.labels] = 1.0
        pieces = [self.activation.linear_pieces(y) for y in self.pre_activations] if find_kinks else [None]
        self.reaches = None if any(piece is None for piece in pieces) else [reach for _, reach in pieces]

    def own_crossings(self, k, rows, e):
        """Where shifting hidden layer k's pre-activations of samples `rows` by e (one per row) leaves a linear
        piece, shaped (rows, units); None when kinks are not sought."""
        return None if self.reaches is None else np.abs(e)[:, None] > self.reaches[k][rows]

    def off_piece(self, m, y, rows=None):
        """Whether new pre-activations `y` of hidden layer m leave some unit's linear piece, any over the units;
        None when kinks are not sought. `y` is shaped (rows, ..., units) for the samples `rows`, or
        (..., samples, units) for the whole batch."""
        if self.reaches is None:
            return None
        cached, reach = self.pre_activations[m], self.reaches[m]
        if rows is not None:
            shape = (-1, *(1,) * (y.ndim - 2), y.shape[-1])
            cached, reach = cached[rows].reshape(shape), reach[rows].reshape(shape)
        return np.any(np.abs(y - cached) > reach, axis=-1)

    def activation_state(self, k):
        """What the activation's `change` needs per (sample, unit) of hidden layer k, stacked in one array."""
        return np.stack(self.activation.change_state(self.pre_activations[k], self.activations[k]))

    def masked(self, k, moved, rows):
        """Hidden layer k's change `moved` (rows, units) as the next layer sees it: through its dropout mask."""
        if self.masks[k] is not None:
            moved *= self.masks[k][rows]
        return moved

    def hidden_output(self, k, y, rows):
        """Hidden layer k's output for pre-activations `y` (rows, ..., units) of the samples `rows`."""
        a = self.activation.forward(y)
        if self.masks[k] is not None:
            a *= self.masks[k][rows].reshape(len(rows), *(1,) * (a.ndim - 2), -1)
        return a


class LastLayerDifference:
    """Score j of sample n moves by e: the log-sum-exp moves by log1p(p_nj expm1(e))."""

    def __init__(self, forward):
        self.probs = forward.probs
        self.one_hot = forward.one_hot

    def __call__(self, rows, e):
        probs, e = self.probs[rows], e[:, None]
        plus = np.log1p(probs * np.expm1(e))
        minus = np.log1p(probs * np.expm1(-e))
        return plus - minus - 2 * e * self.one_hot[rows], None  # no kink after the scores


class SeriesDifference:
    """Unit j of hidden layer k moves by Da, so score c of sample n moves by Da V[n, j, c].

    For the last hidden layer V[n, j, c] = W[j, c], the output layer's weight.
    For an earlier one it is the product of the layers in between, each later
    unit's slope (and dropout mask) included: exact while every later unit
    stays on the linear piece of its activation (relu away from its kink),
    which a nudge of size h almost always does. Entries of a sample whose
    nudge could reach a kink are recomputed through the layers instead.
    The new normaliser is log1p(sum_m Da^m / m! * M_m[n, j]) with the moments
    M_m = sum_c p_nc V[n, j, c]^m, summed by Horner's rule.
    """

    def __init__(self, forward, k, directions, reach, terms):
        self.forward = forward
        self.k = k
        self.activation = forward.activation
        self.reach = reach
        self.recomputed = None if reach is None else RecomputedDifference(forward, k)
        # Everything a sample's difference needs, stacked so that one gather fetches it all:
        # the activation state, V[n, j, t_n], and the moments sum_c p_nc V[n, j, c]^m / m!.
        state = forward.activation_state(k)
        self.state_rows = len(state)
        label_weight = np.take_along_axis(directions, forward.labels[:, None, None], axis=2)[..., 0]
        self.table = np.concatenate([state, label_weight[None], _moments(forward.probs, directions, terms)])

    @classmethod
    def or_recomputed(cls, forward, k, h):
        """The series difference for hidden layer k, or a recomputation of the layers after it when its
        units' changes do not reach the scores linearly (a curved activation after it, or too many
        directions to hold), the series would not converge fast, or the activation gives no bound on its
        slope to tell."""
        if forward.activation.slope_bound is None:  # no bound on the unit's change to count the terms by
            return RecomputedDifference(forward, k)
        last = len(forward.weights) - 2
        if k == last:
            W = forward.weights[-1]
            directions, reach = np.broadcast_to(W, (len(forward.probs), *W.shape)), None
        else:
            directions, reach = _score_directions(forward, k)
            if directions is None:
                return RecomputedDifference(forward, k)
        largest_move = forward.activation.slope_bound * h * max(1.0, np.max(np.abs(forward.inputs[k])))
        terms = _series_terms(largest_move * np.max(np.abs(directions), initial=0.0))
        return RecomputedDifference(forward, k) if terms is None else cls(forward, k, directions, reach, terms)

    def __call__(self, rows, e):
        crossed = self.forward.own_crossings(self.k, rows, e)
        gathered = self.table[:, rows]
        state, label_w, moment_rows = gathered[:self.state_rows], gathered[self.state_rows], gathered[self.state_rows + 1:]
        result = None
        for sign in (1.0, -1.0):
            moved = self.forward.masked(self.k, self.activation.change(state, sign * e), rows)
            series = moment_rows[-1] * moved  # Horner, in place: sum_m Da^m M_m / m!
            for moment in reversed(moment_rows[:-1]):
                series += moment
                series *= moved
            d = np.log1p(series, out=series)
            moved *= label_w
            d -= moved
            result = d if result is None else np.subtract(result, d, out=result)
        if self.reach is not None:  # |Da| <= slope_bound |e|: where that could reach a kink, recompute
            entry, unit = np.nonzero(self.activation.slope_bound * np.abs(e)[:, None] >= self.reach[rows])
            if len(entry):
                result[entry, unit], later = self.recomputed.entries(rows[entry], unit, e[entry])
                if crossed is not None:
                    crossed[entry, unit] |= later
        return result, crossed


def _moments(probs, directions, terms):
    """sum_c p_nc V[n, j, c]^m / m! for m = 1..terms, shaped (terms, samples, units); V the same for every
    sample (a broadcast view) after the last hidden layer, where one product per power does."""
    shared = directions.strides[0] == 0
    V = directions[0] if shared else directions
    moments, power = [], V
    for m in range(1, terms + 1):
        if m > 1:
            power = power * V  # a product, not `**`: NumPy's float power is many times slower
        moment = probs @ power.T if shared else np.einsum("nc,njc->nj", probs, power)
        moments.append(moment / math.factorial(m))
    return np.stack(moments)


def _score_directions(forward, k):
    """(V, reach) for hidden layer k of a net whose later activations are piecewise linear, else (None, None).

    V[n, j, c]: how far score c of sample n moves per unit change of hidden
    unit j of layer k while every later unit stays on its linear piece;
    reach[n, j]: how far unit j can change before some later unit of sample n
    could leave its piece. Shapes (samples, units of k, classes) and
    (samples, units of k); the products in between are (samples, units of k,
    units of the later layer), held only when they fit DIRECTION_ELEMENTS.
    """
    samples, width = forward.pre_activations[k].shape
    widest = max(W.shape[1] for W in forward.weights[k + 1:])
    if samples * width * widest > DIRECTION_ELEMENTS:
        return None, None
    directions = np.broadcast_to(forward.weights[k + 1], (samples, *forward.weights[k + 1].shape))
    reach = np.full((samples, width), np.inf)
    for m in range(k + 1, len(forward.weights) - 1):
        pieces = forward.activation.linear_pieces(forward.pre_activations[m])
        if pieces is None:
            return None, None
        slope, unit_reach = pieces
        size = np.abs(directions)
        unit_reach = np.divide(unit_reach[:, None, :], size, out=np.full(size.shape, np.inf), where=size > 0)
        np.minimum(reach, unit_reach.min(axis=2), out=reach)
        if forward.masks[m] is not None:
            slope = slope * forward.masks[m]
        directions = (directions * slope[:, None, :]) @ forward.weights[m + 1]
    return directions, reach


class RecomputedDifference:
    """Unit j of hidden layer k moves: every later layer is recomputed for the changed samples."""

    def __init__(self, forward, k):
        self.forward = forward
        self.k = k
        self.state = forward.activation_state(k)

    def __call__(self, rows, e):
        """d(+e) - d(-e) for samples `rows`, every unit of layer k, shaped (rows, units), and where either
        shift left a linear piece (or None)."""
        state_rows = self.state[:, rows]
        plus, plus_crossed = self._new_losses(rows, state_rows, e)
        minus, minus_crossed = self._new_losses(rows, state_rows, -e)
        return plus - minus, _either(self.forward.own_crossings(self.k, rows, e), plus_crossed, minus_crossed)

    def entries(self, rows, units, e):
        """d(+e) - d(-e) for single entries (unit units[i] of sample rows[i] moves, by e[i]), and where
        either shift left a later unit's linear piece (or None)."""
        state = self.state[:, rows, units][..., None]
        plus, plus_crossed = self._new_entry_losses(rows, units, state, e)
        minus, minus_crossed = self._new_entry_losses(rows, units, state, -e)
        return plus - minus, _either(plus_crossed, minus_crossed)

    def _new_losses(self, rows, state_rows, e):
        forward, k = self.forward, self.k
        moved = forward.masked(k, forward.activation.change(state_rows, e), rows)  # (rows, units of layer k)
        # z_{k+1} for every (sample, unit j): a rank-one update of the cached row
        z = forward.outputs[k + 1][rows][:, None, :] + moved[:, :, None] * forward.weights[k + 1][None, :, :]
        return self._losses_after(rows, z)

    def _new_entry_losses(self, rows, units, state, e):
        forward, k = self.forward, self.k
        moved = forward.activation.change(state, e)[:, 0]
        if forward.masks[k] is not None:
            moved *= forward.masks[k][rows, units]
        z = forward.outputs[k + 1][rows] + moved[:, None] * forward.weights[k + 1][units]
        return self._losses_after(rows, z)

    def _losses_after(self, rows, z):
        """The losses of samples `rows` from z_{k+1} shaped (rows, ..., units of layer k+1), and where a
        later unit left its linear piece (or None)."""
        forward = self.forward
        crossed = None
        for layer, (W, b) in enumerate(zip(forward.weights[self.k + 2:], forward.biases[self.k + 2:]),
                                       start=self.k + 1):
            crossed = _either(crossed, forward.off_piece(layer, z, rows))
            z = forward.hidden_output(layer, z, rows) @ W + b
        labels = forward.labels[rows].reshape(len(rows), *(1,) * (z.ndim - 1))
        return -np.take_along_axis(log_softmax(z), labels, axis=-1)[..., 0], crossed


def _coupled_difference(forward, k):
    """The fastest exact difference for hidden layer k of a net with batch norm: the series after the last
    hidden layer, the closed form before it when its units are piecewise linear, else recomputation."""
    if k == len(forward.weights) - 2:
        return LastHiddenCoupledDifference(forward, k)
    if k == len(forward.weights) - 3:
        pieces = forward.activation.linear_pieces(forward.pre_activations[k + 1])
        if pieces is not None:
            return RenormalizedDifference(forward, k, pieces)
    return CoupledDifference(forward, k)


class CoupledDifference:
    """With batch norm: feature j of hidden layer k moves for the whole batch, and the loss is recomputed
    from there for every sample.

    Called with the nudged features `units` (one per nudge), their `shifts`
    (nudges, samples) and whether those shift z (a weight or a bias: the
    feature is renormalised) or the normalised y (gamma, beta), it returns
    for each nudge sum_n loss_n(+shift) - loss_n(-shift), and whether either
    shift took a unit off its linear piece (or None).
    """

    def __init__(self, forward, k):
        self.forward = forward
        self.k = k
        # layer k's values by feature, (units, samples): what a nudge of feature j gathers is one contiguous row
        self.outputs = forward.outputs[k].T.copy()
        self.pre_activations = forward.pre_activations[k].T.copy()
        self.state = np.ascontiguousarray(forward.activation_state(k).transpose(0, 2, 1))
        self.mask = None if forward.masks[k] is None else forward.masks[k].T.copy()
        self.reach = None if forward.reaches is None else forward.reaches[k].T.copy()
        widest = max(W.shape[1] for W in forward.weights[k + 1:])
        self.nudges_per_part = max(1, COUPLED_CHUNK_ELEMENTS // (len(forward.probs) * widest))

    def __call__(self, units, shifts, before_normalising):
        plus, plus_crossed = self._new_losses(units, shifts, before_normalising)
        minus, minus_crossed = self._new_losses(units, -shifts, before_normalising)
        return plus - minus, _either(plus_crossed, minus_crossed)

    def _new_losses(self, units, shifts, before_normalising):
        moved_y = self._moved_pre_activations(units, shifts, before_normalising)
        losses, crossed = self._losses_after(units, self._moved_outputs(units, moved_y))
        if self.reach is not None:
            crossed = _either(crossed, np.any(np.abs(moved_y) > self.reach[units], axis=1))
        return losses, crossed

    def _moved_pre_activations(self, units, shifts, before_normalising):
        """How feature `units[i]` of layer k moves before its activation for every sample under nudge i:
        (nudges, samples)."""
        if before_normalising:
            gamma, beta = self.forward.batch_norm[self.k]
            moved_y = gamma[units, None] * batch_normalize(self.outputs[units] + shifts, axis=1)[0]
            moved_y += beta[units, None]
            moved_y -= self.pre_activations[units]
        else:
            moved_y = shifts
        return moved_y

    def _moved_outputs(self, units, moved_y):
        """How feature `units[i]` of layer k's output moves when its pre-activations move by `moved_y[i]`."""
        state = self.state[:, units].reshape(len(self.state), -1, 1)
        moved = self.forward.activation.change(state, moved_y.reshape(-1)).reshape(moved_y.shape)
        if self.mask is not None:
            moved *= self.mask[units]
        return moved

    def _losses_after(self, units, moved):
        """sum_n loss_n - unperturbed loss_n for each nudge, when feature units[i] of layer k's output moves by
        moved[i] (one value per sample), and whether a later unit left its linear piece (or None)."""
        forward, k = self.forward, self.k
        crossed = None
        # z_{k+1} of every sample for each nudge: a rank-one update of the cached one
        z = forward.outputs[k + 1][None] + moved[:, :, None] * forward.weights[k + 1][units][:, None, :]
        for layer in range(k + 1, len(forward.weights) - 1):
            gamma, beta = forward.batch_norm[layer]
            y = gamma * batch_normalize(z, axis=1)[0] + beta
            off = forward.off_piece(layer, y)
            crossed = _either(crossed, None if off is None else np.any(off, axis=1))
            a = forward.activation.forward(y)
            if forward.masks[layer] is not None:
                a *= forward.masks[layer]
            z = a @ forward.weights[layer + 1] + forward.biases[layer + 1]
        losses = -np.take_along_axis(log_softmax(z), forward.labels[None, :, None], axis=2)[..., 0]
        losses -= forward.sample_losses
        return losses.sum(axis=1), crossed


class RenormalizedDifference(CoupledDifference):
    """With batch norm, for the hidden layer k before the last hidden one, when that one's activation is
    piecewise linear.

    Feature j of layer k moves by u_n (one value per sample), so every feature
    c of the next layer's affine output moves by u_n w_c (w = W[j]). Its
    normalisation then has a closed form: with du = u - mean(u), its centred
    values move by du_n w_c and its variance by
    delta_c = 2 w_c mean(du xc_c) + w_c^2 mean(du^2), so
    y_nc moves by gamma_c (alpha_c xc_nc + beta_c du_n), alpha_c the change of
    1 / sqrt(var_c + eps) and beta_c = w_c / sqrt(var_c + delta_c + eps).
    Were every unit of that layer to stay on its activation's linear piece,
    the scores would move by the sum over c of that times the unit's slope
    (and dropout mask) times the output weights: two matrix products for many
    nudges at once. The units whose move leaves their piece (a relu input
    changing sign) are found, and what their true change adds to the linear
    one is added to their sample's scores, so the result is exact for every
    nudge. To find them without computing every move, the (sample, unit)
    pairs are sorted by their reach once: no move of a nudge exceeds a bound
    from its largest alpha, beta and du, and only the pairs whose reach is
    below it (a few, for small nudges) have their move computed.
    """

    def __init__(self, forward, k, pieces):
        super().__init__(forward, k)
        m = k + 1
        slope, self.next_reach = pieces
        gamma, _ = forward.batch_norm[m]
        _, self.centred, self.std, _, var = batch_normalize(forward.outputs[m])
        self.var_eps = var + BATCH_NORM_EPS
        self.weights = forward.weights[m]
        self.next_gamma = gamma
        self.next_state = forward.activation_state(m)
        self.next_mask = forward.masks[m]
        self.largest_centred = np.max(np.abs(gamma * self.centred), axis=0)  # per feature c
        self.largest_gamma = np.abs(gamma)
        # the (sample, feature) pairs of the next layer, nearest their kink first
        reach = self.next_reach
        order = np.argsort(reach, axis=None, kind="stable")
        self.pair_reach = reach.reshape(-1)[order]
        self.pair_sample, self.pair_feature = np.unravel_index(order, reach.shape)
        if forward.masks[m] is not None:
            slope = slope * forward.masks[m]
        self.next_slope = slope
        # per (feature c, sample n, class): what alpha_c and beta_c du_n multiply in the change of the scores
        per_beta = (slope * gamma).T[:, :, None] * forward.weights[-1][:, None, :]
        per_alpha = per_beta * self.centred.T[:, :, None]
        labels = forward.labels
        samples = np.arange(len(labels))
        self.label_alpha = per_alpha[:, samples, labels].sum(axis=1)  # the same for the label's score, summed
        self.label_beta = per_beta[:, samples, labels]
        self.per_alpha = per_alpha.reshape(len(per_alpha), -1)
        self.per_beta = per_beta.reshape(len(per_beta), -1)
        self.probs = forward.probs
        # the widest arrays are the scores of every sample for each nudge: parts small enough to stay in cache
        self.nudges_per_part = max(1, CHUNK_ELEMENTS // self.per_alpha.shape[1])

    def _losses_after(self, units, moved):
        forward = self.forward
        samples = moved.shape[1]
        du = moved - moved.mean(axis=1, keepdims=True)
        w = self.weights[units]
        delta = (du @ self.centred) * (2 / samples)
        delta *= w
        delta += w ** 2 * np.mean(du ** 2, axis=1, keepdims=True)
        new_std = np.sqrt(self.var_eps + delta)
        alpha = -delta / (new_std * self.std * (new_std + self.std))  # 1/new_std - 1/std, without cancelling
        beta = w / new_std
        moved_scores = (alpha @ self.per_alpha).reshape(len(units), samples, -1)
        beta_part = (beta @ self.per_beta).reshape(moved_scores.shape)
        beta_part *= du[:, :, None]
        moved_scores += beta_part
        label_moves = (beta @ self.label_beta) * du
        nudge, sample, feature, y_moves = self._leaving_their_pieces(alpha, beta, du)
        if len(nudge):  # those units' true change beyond the linear one reaches the scores by the output weights
            beyond = forward.activation.change(self.next_state[:, sample, feature][..., None], y_moves)[:, 0]
            if self.next_mask is not None:
                beyond *= self.next_mask[sample, feature]
            beyond -= self.next_slope[sample, feature] * y_moves
            output_weights = forward.weights[-1][feature]
            np.add.at(moved_scores, (nudge, sample), beyond[:, None] * output_weights)
            np.add.at(label_moves, (nudge, sample), beyond * output_weights[np.arange(len(feature)),
                                                                            forward.labels[sample]])
        # loss_n moves by log(sum_c p_nc exp(moved_nc)) - moved_n,t_n
        d = np.log1p(np.einsum("nc,qnc->qn", self.probs, np.expm1(moved_scores, out=moved_scores)))
        d -= label_moves
        losses = d.sum(axis=1) - alpha @ self.label_alpha
        if forward.reaches is None:
            return losses, None
        crossed = np.zeros(len(units), bool)
        crossed[nudge] = True
        return losses, crossed

    def _leaving_their_pieces(self, alpha, beta, du):
        """The (nudge, sample, feature) of every unit of the next layer that a nudge moves off its linear
        piece, and its move gamma_c (alpha_c xc_nc + beta_c du_n)."""
        bound = np.max(np.abs(alpha) * self.largest_centred, axis=1)
        bound += np.max(np.abs(beta) * self.largest_gamma, axis=1) * np.max(np.abs(du), axis=1)
        counts = np.searchsorted(self.pair_reach, bound, side="left")  # pairs whose reach is below the bound
        nudge = np.repeat(np.arange(len(bound)), counts)
        pair = np.arange(len(nudge)) - np.repeat(np.cumsum(counts) - counts, counts)
        sample, feature = self.pair_sample[pair], self.pair_feature[pair]
        moves = alpha[nudge, feature] * self.centred[sample, feature]
        moves += beta[nudge, feature] * du[nudge, sample]
        moves *= self.next_gamma[feature]
        leaving = np.abs(moves) > self.pair_reach[pair]
        return nudge[leaving], sample[leaving], feature[leaving], moves[leaving]


class LastHiddenCoupledDifference(CoupledDifference):
    """With batch norm, for the last hidden layer: feature j moves by u_n for every sample, so score c of
    sample n moves by u_n W[j, c], and the loss by log1p(sum_m u_n^m M_m[n, j]) - u_n W[j, t_n] with the
    moments M_m = sum_c p_nc W[j, c]^m / m! (as `SeriesDifference`)."""

    def __init__(self, forward, k):
        super().__init__(forward, k)
        W = forward.weights[-1]
        self.largest_weight = np.max(np.abs(W))
        self.label_weight = W[:, forward.labels]  # (units, samples)
        self.moments = [None]
        self.moments_made = threading.Lock()  # the threads share them
        self.nudges_per_part = max(1, CHUNK_ELEMENTS // len(forward.probs))

    def _moment(self, m):
        """M_m, shaped (units, samples), computed when a series first needs it."""
        with self.moments_made:
            if len(self.moments) <= m:
                W = self.forward.weights[-1]
                shared = np.broadcast_to(W, (len(self.forward.probs), *W.shape))
                self.moments = [None, *(moment.T for moment in _moments(self.forward.probs, shared, m))]
        return self.moments[m]

    def _losses_after(self, units, moved):
        terms = _series_terms(np.max(np.abs(moved), initial=0.0) * self.largest_weight)
        if terms is None:
            return super()._losses_after(units, moved)
        series = self._moment(terms)[units] * moved  # Horner: sum_m u^m M_m
        for m in range(terms - 1, 0, -1):
            series += self._moment(m)[units]
            series *= moved
        d = np.log1p(series, out=series)
        d -= moved * self.label_weight[units]
        return d.sum(axis=1), None  # no kink after the last hidden layer


def _series_terms(bound):
    """Terms of the exponential series needed for arguments up to `bound`, or None if too many."""
    if bound >= MAX_SERIES_TERMS:  # its terms keep growing until m > bound
        return None
    term = 1.0
    for m in range(1, MAX_SERIES_TERMS + 1):
        term *= bound / m
        if term * math.exp(bound) * bound / (m + 1) < SERIES_TOLERANCE:
            return m
    return None
