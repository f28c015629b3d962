"""The textbook numerical gradient, computed without recomputing what a perturbation cannot change.

The chapter's gradient of the batch loss L for a parameter w is the central
difference (L(w+h) - L(w-h)) / 2h, where each L is a full forward pass. This
module computes the same quantity, with the same h, for every parameter of a
`MultiLayerNet`, by evaluating only what nudging w changes:

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
  * earlier layers of deeper nets: the rest of the net is recomputed for the
    changed samples only, many perturbations at a time.
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
  for the whole batch, and the rest of the net recomputed from it for all
  samples, many nudges at a time. Inputs that are 0 in every sample move
  nothing and are skipped. gamma and beta move feature j after the
  normalisation. Running statistics are never touched.

Everything runs in float64. The difference from the textbook computation is
rounding only: the textbook subtracts two losses near 2.3 (rounding ~1e-16 each,
so ~1e-12 in the gradient), while here the unchanged terms never enter, so this
result is, if anything, the more accurate of the two.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..nn.functions import as_batch, log_softmax, softmax
from ..nn.layers import batch_normalize
from ..nn.network import weight_decay_terms

CHUNK_ELEMENTS = 1 << 17  # perturbed (sample, unit) values per array in flight: bounds memory
COUPLED_CHUNK_ELEMENTS = 1 << 20  # the same for batch norm's whole-batch recomputations
SERIES_TOLERANCE = 1e-22  # series terms smaller than this are below float64 rounding of any loss term
MAX_SERIES_TERMS = 40  # beyond this (|Da * W| > ~5, never with a sane h), recompute the scores instead


def numerical_gradient_fast(network, x, t, h=1e-4, use_series=True, workers=2, follow_statistics=False):
    """(loss, grads): the batch loss and the central-difference gradient of every parameter.

    Same quantity as `network.numerical_gradient(x, t, h)` (the textbook
    method, in training mode, each dropout mask drawn once from the layer's
    generator as the textbook draws it), to float64 rounding.
    `use_series=False` recomputes the scores for the layer before the last
    instead of summing the exponential series (slower; kept to check the
    series against). `workers` threads share the work. The running statistics
    of batch norm stay as they are, unless `follow_statistics` (a training
    step) moves them by this batch's once, as a backpropagation step does.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    forward = CachedForward(network, x, t)
    num_layers = len(forward.weights)
    grads = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for k in range(num_layers):
            if k < num_layers - 1 and forward.batch_norm:
                layer_grads = _coupled_layer_gradient(pool, workers, forward, k, h)
            else:
                if k == num_layers - 1:
                    difference = LastLayerDifference(forward)
                elif k == num_layers - 2 and use_series:
                    difference = SeriesDifference.or_recomputed(forward, h)
                else:
                    difference = RecomputedDifference(forward, k)
                layer_grads = _layer_gradient(pool, workers, forward.inputs[k], forward.weights[k].shape[1],
                                              difference, h)
            if network.weight_decay_lambda:
                layer_grads[0] += _weight_decay_difference(forward.weights[k], network.weight_decay_lambda, h)
            for name, grad in zip(("W", "b", "gamma", "beta"), layer_grads):
                grads[f"{name}{k + 1}"] = grad
    if follow_statistics:
        for layer, (mean, var) in zip(network.batch_norm_layers, forward.batch_statistics):
            layer.follow(mean.astype(network.dtype), var.astype(network.dtype))
    grads = {key: grads[key].astype(param.dtype, copy=False) for key, param in network.params.items()}
    return forward.loss + network.weight_decay(), grads


def _weight_decay_difference(W, decay_lambda, h):
    """The central difference of the weight decay for each weight: nudging one changes only its own term."""
    return (weight_decay_terms(W + h, decay_lambda) - weight_decay_terms(W - h, decay_lambda)) / (2 * h)


def _layer_gradient(pool, workers, inputs, width, difference, h):
    """Central differences for the weights and biases of one layer.

    `difference(rows, e)` gives, for samples `rows` whose output column j
    shifts by +e or -e (one e per row), d(+e) - d(-e) per sample and column,
    shaped (rows, width). Nudging input unit i's weight shifts sample n by
    h * a[n, i], so pairs with the same sample and the same input value give
    the same difference: it is computed once for each distinct pair (for
    MNIST batches, under half of the nonzero pixels).
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
    differences = np.concatenate(list(pool.map(
        lambda part: difference(distinct_rows[part], h * distinct_values[part]), parts)))

    chunk = max(1, CHUNK_ELEMENTS // width)
    grad = np.zeros((fan_in + 1, width))
    for start in range(0, len(unit), chunk):
        part = slice(start, start + chunk)
        units = unit[part]
        first = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])  # where each input's pairs begin
        grad[units[first]] += np.add.reduceat(differences[pair_group[part]], first, axis=0)
    grad /= 2 * h * batch_size
    return [grad[:fan_in], grad[fan_in]]


def _coupled_layer_gradient(pool, workers, forward, k, h):
    """Central differences for W, b, gamma and beta of hidden layer k of a net with batch norm.

    Each nudge moves feature j of layer k for the whole batch; the loss
    differences of many nudges are evaluated at once, in parts the threads share.
    """
    inputs = forward.inputs[k]
    batch_size, fan_in = inputs.shape
    width = forward.weights[k].shape[1]
    difference = CoupledDifference(forward, k)
    augmented = np.concatenate([inputs, np.ones((batch_size, 1))], axis=1)  # the bias sees an input of 1
    reached = np.flatnonzero(np.any(augmented != 0, axis=0))  # an input 0 for every sample moves nothing
    # every nudge: (the feature it moves, the shift of that feature per sample, before or after normalising)
    nudges = [(np.tile(np.arange(width), len(reached)), np.repeat(augmented[:, reached].T, width, axis=0), True),
              (np.arange(width), forward.normalized[k].T, False),  # gamma_j moves feature j by e * xn_j
              (np.arange(width), np.ones((width, batch_size)), False)]  # beta_j by e
    chunk = max(1, COUPLED_CHUNK_ELEMENTS // (batch_size * difference.widest))
    differences = []
    for units, shifts, before_normalising in nudges:
        parts = [slice(start, start + chunk) for start in range(0, len(units), chunk)]
        differences.append(np.concatenate(list(pool.map(
            lambda part: difference(units[part], h * shifts[part], before_normalising), parts))))
    grad = np.zeros((fan_in + 1, width))
    grad[reached] = differences[0].reshape(len(reached), width)
    grad_gamma, grad_beta = differences[1], differences[2]
    scale = 2 * h * batch_size
    return [grad[:fan_in] / scale, grad[fan_in] / scale, grad_gamma / scale, grad_beta / scale]


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
    without it), f(y), and the dropout mask it is multiplied by (None without one)."""

    def __init__(self, network, x, t):
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
        return plus - minus - 2 * e * self.one_hot[rows]


class SeriesDifference:
    """Unit j of the last hidden layer moves by Da, so every score c moves by Da W[j, c].

    The new normaliser is log1p(sum_m Da^m / m! * M_m[n, j]) with the moments
    M_m = sum_c p_nc W[j, c]^m, summed by Horner's rule.
    """

    def __init__(self, forward, terms):
        k = len(forward.weights) - 2
        W = forward.weights[-1]
        self.forward = forward
        self.activation = forward.activation
        # Everything a sample's difference needs, stacked so that one gather fetches it all:
        # the activation state, W[j, t_n], and the moments sum_c p_nc W[j, c]^m / m!.
        state = forward.activation_state(k)
        self.state_rows = len(state)
        label_weight = W[:, forward.labels].T
        moments = [forward.probs @ (W ** m).T / math.factorial(m) for m in range(1, terms + 1)]
        self.table = np.concatenate([state, label_weight[None], np.stack(moments)])

    @classmethod
    def or_recomputed(cls, forward, h):
        """The series difference for the layer before the last, or a recomputation when the series would not converge fast."""
        k = len(forward.weights) - 2
        largest_move = forward.activation.slope_bound * h * max(1.0, np.max(np.abs(forward.inputs[k])))
        terms = _series_terms(largest_move * np.max(np.abs(forward.weights[-1])))
        return RecomputedDifference(forward, k) if terms is None else cls(forward, terms)

    def __call__(self, rows, e):
        gathered = self.table[:, rows]
        state, label_w, moment_rows = gathered[:self.state_rows], gathered[self.state_rows], gathered[self.state_rows + 1:]
        result = None
        for sign in (1.0, -1.0):
            moved = self.forward.masked(len(self.forward.weights) - 2, self.activation.change(state, sign * e), rows)
            series = moment_rows[-1] * moved  # Horner, in place: sum_m Da^m M_m / m!
            for moment in reversed(moment_rows[:-1]):
                series += moment
                series *= moved
            d = np.log1p(series, out=series)
            moved *= label_w
            d -= moved
            result = d if result is None else np.subtract(result, d, out=result)
        return result


class RecomputedDifference:
    """Unit j of hidden layer k moves: every later layer is recomputed for the changed samples."""

    def __init__(self, forward, k):
        self.forward = forward
        self.k = k
        self.state = forward.activation_state(k)

    def __call__(self, rows, e):
        state_rows = self.state[:, rows]
        return self._new_losses(rows, state_rows, e) - self._new_losses(rows, state_rows, -e)

    def _new_losses(self, rows, state_rows, e):
        forward, k = self.forward, self.k
        moved = forward.masked(k, forward.activation.change(state_rows, e), rows)  # (rows, units of layer k)
        # z_{k+1} for every (sample, unit j): a rank-one update of the cached row
        z = forward.outputs[k + 1][rows][:, None, :] + moved[:, :, None] * forward.weights[k + 1][None, :, :]
        for layer, (W, b) in enumerate(zip(forward.weights[k + 2:], forward.biases[k + 2:]), start=k + 1):
            z = forward.hidden_output(layer, z, rows) @ W + b
        return -np.take_along_axis(log_softmax(z), forward.labels[rows][:, None, None], axis=2)[..., 0]


class CoupledDifference:
    """With batch norm: feature j of hidden layer k moves for the whole batch, and the loss is recomputed
    from there for every sample.

    Called with the nudged features `units` (one per nudge), their `shifts`
    (nudges, samples) and whether those shift z (a weight or a bias: the
    feature is renormalised) or the normalised y (gamma, beta), it returns
    for each nudge sum_n loss_n(+shift) - loss_n(-shift).
    """

    def __init__(self, forward, k):
        self.forward = forward
        self.k = k
        self.state = forward.activation_state(k)
        self.widest = max(W.shape[1] for W in forward.weights[k + 1:])

    def __call__(self, units, shifts, before_normalising):
        return self._new_losses(units, shifts, before_normalising) - self._new_losses(units, -shifts,
                                                                                      before_normalising)

    def _new_losses(self, units, shifts, before_normalising):
        forward, k = self.forward, self.k
        rows = np.arange(shifts.shape[1])
        old_y = forward.pre_activations[k][:, units].T  # (nudges, samples)
        if before_normalising:
            gamma, beta = forward.batch_norm[k]
            xn = batch_normalize(forward.outputs[k][:, units].T + shifts, axis=1)[0]
            moved_y = gamma[units, None] * xn + beta[units, None] - old_y
        else:
            moved_y = shifts
        state = self.state[:, :, units].transpose(0, 2, 1).reshape(len(self.state), -1, 1)
        moved = self.forward.activation.change(state, moved_y.reshape(-1)).reshape(moved_y.shape)
        if forward.masks[k] is not None:
            moved *= forward.masks[k][:, units].T
        # z_{k+1} of every sample for each nudge: a rank-one update of the cached one
        z = forward.outputs[k + 1][None] + moved[:, :, None] * forward.weights[k + 1][units][:, None, :]
        for layer in range(k + 1, len(forward.weights) - 1):
            gamma, beta = forward.batch_norm[layer]
            y = gamma * batch_normalize(z, axis=1)[0] + beta
            a = forward.activation.forward(y)
            if forward.masks[layer] is not None:
                a *= forward.masks[layer]
            z = a @ forward.weights[layer + 1] + forward.biases[layer + 1]
        losses = -np.take_along_axis(log_softmax(z), forward.labels[None, :, None], axis=2)[..., 0]
        losses -= forward.sample_losses[rows]
        return losses.sum(axis=1)


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
