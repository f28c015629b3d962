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

Everything runs in float64. The difference from the textbook computation is
rounding only: the textbook subtracts two losses near 2.3 (rounding ~1e-16 each,
so ~1e-12 in the gradient), while here the unchanged terms never enter, so this
result is, if anything, the more accurate of the two.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..nn.functions import as_batch, log_softmax, softmax
from ..nn.network import weight_decay_terms

CHUNK_ELEMENTS = 1 << 17  # perturbed (sample, unit) values per array in flight: bounds memory
SERIES_TOLERANCE = 1e-22  # series terms smaller than this are below float64 rounding of any loss term
MAX_SERIES_TERMS = 40  # beyond this (|Da * W| > ~5, never with a sane h), recompute the scores instead


def numerical_gradient_fast(network, x, t, h=1e-4, use_series=True, workers=2):
    """(loss, grads): the batch loss and the central-difference gradient of every parameter.

    Same quantity as `network.numerical_gradient(x, t, h)` (the textbook
    method), to float64 rounding. `use_series=False` recomputes the scores
    for the layer before the last instead of summing the exponential series
    (slower; kept to check the series against). `workers` threads share the work.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    forward = CachedForward(network, x, t)
    num_layers = len(forward.weights)
    grads = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for k in range(num_layers):
            if k == num_layers - 1:
                difference = LastLayerDifference(forward)
            elif k == num_layers - 2 and use_series:
                difference = SeriesDifference.or_recomputed(forward, h)
            else:
                difference = RecomputedDifference(forward, k)
            grad_w, grad_b = _layer_gradient(pool, workers, forward.inputs[k], forward.weights[k].shape[1], difference, h)
            if network.weight_decay_lambda:
                grad_w += _weight_decay_difference(forward.weights[k], network.weight_decay_lambda, h)
            grads[f"W{k + 1}"] = grad_w.astype(network.params[f"W{k + 1}"].dtype, copy=False)
            grads[f"b{k + 1}"] = grad_b.astype(network.params[f"b{k + 1}"].dtype, copy=False)
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
    return grad[:fan_in], grad[fan_in]


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
    """One forward pass in float64, keeping what the loss differences of every nudge are computed from."""

    def __init__(self, network, x, t):
        self.weights = [np.asarray(network.params[f"W{k}"], np.float64) for k in range(1, len(network.sizes))]
        self.biases = [np.asarray(network.params[f"b{k}"], np.float64) for k in range(1, len(network.sizes))]
        self.activation = network.hidden_activation
        self.inputs, self.outputs = [], []  # a_k (layer k's input) and z_k (its affine output)
        a = x
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            self.inputs.append(a)
            z = a @ W + b
            self.outputs.append(z)
            if k < len(self.weights) - 1:
                a = self.activation.forward(z)
        scores = self.outputs[-1]
        _, self.labels = as_batch(scores, t)
        self.probs = softmax(scores)
        self.sample_losses = -log_softmax(scores)[np.arange(len(scores)), self.labels]
        self.loss = float(np.mean(self.sample_losses))
        self.one_hot = np.zeros_like(scores)
        self.one_hot[np.arange(len(scores)), self.labels] = 1.0

    def activation_state(self, k):
        """What the activation's `change` needs per (sample, unit) of hidden layer k, stacked in one array."""
        return np.stack(self.activation.change_state(self.outputs[k], self.inputs[k + 1]))


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
            moved = self.activation.change(state, sign * e)
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
        moved = forward.activation.change(state_rows, e)  # (rows, units of layer k)
        # z_{k+1} for every (sample, unit j): a rank-one update of the cached row
        z = forward.outputs[k + 1][rows][:, None, :] + moved[:, :, None] * forward.weights[k + 1][None, :, :]
        for W, b in zip(forward.weights[k + 2:], forward.biases[k + 2:]):
            z = forward.activation.forward(z) @ W + b
        return -np.take_along_axis(log_softmax(z), forward.labels[rows][:, None, None], axis=2)[..., 0]


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
