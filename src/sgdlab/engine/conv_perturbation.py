"""The textbook numerical gradient of a convolutional net, computed without recomputing what a nudge cannot change.

The same central differences, with the same h, as `network.numerical_gradient`
(the book's, two whole forward passes per parameter), for a `ConvNet`: its
layers up to the first affine one are the trunk (convolutions, pooling,
activations, batch norm, dropout on (N, C, H, W) images), the rest is the
head (affine layers, activations, batch norm, dropout on rows).

- The head's parameters: the head is a dense net whose input is the flattened
  trunk output. When it is laid out as a `MultiLayerNet` is (affine, batch
  norm if any, one activation, dropout if any, ..., affine), the dense
  machinery (`sgdlab.engine.perturbation`) differentiates it as it does a
  dense net, with the same masks. Otherwise each nudge recomputes the head
  from its layer on, for the whole batch, many nudges at a time (slower, the
  same numbers).
- The trunk's parameters: nudging W[f, c, i, j] of a convolution by e moves
  channel f of its output only, each output position by e times the input
  pixel it sees at (c, i, j) (its bias b[f]: by e everywhere); batch norm's
  gamma[p] or beta[p] after a convolution moves one element of one channel.
  Activations, dropout, batch norm (per element, the book's) and pooling act
  on each channel by itself, so only that channel moves up to the head, and
  only its rows of the head's first weight matrix matter: the head's first
  output moves by (the channel's change) @ (those rows), and the head is
  recomputed from there for the whole batch. The nudges of one channel go
  together, + and - at once, in chunks of bounded size that two threads
  share. A later convolution mixes the channels: from it on, the nudge's
  whole output is carried, every channel (slower, the same numbers).
- Kinks (`find_kinks`): a nudge that moves a trunk unit of a piecewise-linear
  activation (relu) off its linear piece (its reach, `Activation.linear_pieces`),
  or changes the winner of a max-pooling window (the first maximum, as the
  book's argmax takes it), is found exactly, on the values it carries; the
  head's kinks as for a dense net.

The reference pass is the book's own forward pass in training mode, in
float64 (`frozen_training`: each dropout mask drawn once, in layer order, as
the textbook draws them; the running statistics left alone). The difference
from the textbook is rounding only.
"""

import math
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..nn.functions import as_batch, log_softmax
from ..nn.im2col import im2col, windows
from ..nn.layers import ActivationLayer, batch_normalize, frozen_training
from . import perturbation as dense  # the dense machinery, for the head (its central_differences dispatches here)

CHUNK_VALUES = 1 << 19  # values of the widest array a chunk of nudges carries (4 MB of float64): bounds memory


def conv_central_differences(network, x, t, h=1e-4, steps=None, find_kinks=False, use_series=True, workers=2,
                             follow_statistics=False):
    """`perturbation.central_differences` for a convolutional net: (loss, grads, kinks), the same contract.

    `steps` maps a parameter to its own step (b takes W's, beta gamma's);
    `kinks` is None without `find_kinks`, or when the net has nothing
    piecewise linear (no max pooling, a curved activation).
    """
    steps = steps or {}
    reference = ReferencePass(network, network.as_input(np.asarray(x, np.float64)), t, find_kinks)
    grads, kinks = {}, {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        head = DenseHead.of(network, reference)
        if head is not None:
            start = reference.head_start
            local_steps = {local: steps.get(dense.step_owner(name), h) for local, name in head.names.items()}
            _, head_grads, head_kinks = dense.central_differences(head, reference.inputs[start], t, h, local_steps,
                                                                  find_kinks, use_series, workers)
            for local, name in head.names.items():
                grads[name] = head_grads[local]
                kinks[name] = None if head_kinks is None else head_kinks[local]
        for i in range(reference.head_start if head is not None else len(network.layers)):
            layer_grads, layer_kinks = reference.layer_differences(pool, i, steps, h)
            grads.update(layer_grads)
            kinks.update(layer_kinks)
    decay_lambda = network.weight_decay_lambda
    if decay_lambda:
        for key in network.decayed_keys:
            W = np.asarray(network.params[key], np.float64)
            grads[key] = grads[key] + dense.weight_decay_difference(W, decay_lambda, steps.get(key, h))
    if follow_statistics:
        for layer, (mean, var) in reference.batch_statistics():
            layer.follow(mean.astype(network.dtype), var.astype(network.dtype))
    grads = {key: grads[key].astype(param.dtype, copy=False) for key, param in network.params.items()}
    if not (find_kinks and reference.has_kinks):
        return reference.loss + network.weight_decay(), grads, None
    kinks = {key: np.zeros(param.shape, bool) if kinks[key] is None else kinks[key]
             for key, param in network.params.items()}
    return reference.loss + network.weight_decay(), grads, kinks


class DrawnMask:
    """A dropout layer whose mask is already drawn, as the dense machinery asks one for it."""

    def __init__(self, mask):
        self.mask = mask

    def draw_mask(self, shape):
        return self.mask.reshape(shape)


class DenseHead:
    """A conv net's head laid out as a `MultiLayerNet` (affine, [batch norm], activation, [dropout], ...,
    affine), as the dense machinery reads one: its parameters under the dense names (`names` maps them to the
    network's), its dropout masks the ones the reference pass drew."""

    LAYOUT = re.compile(r"(ABFD?|AFD?)*A")  # Affine, Batch norm, F an activation, Dropout

    @classmethod
    def of(cls, network, reference):
        """The head of `network` after the reference pass, or None if it is not laid out as a dense net's."""
        layers = network.layers[reference.head_start:]
        letters = "".join("F" if isinstance(layer, ActivationLayer) else
                          {"affine": "A", "batch_norm": "B", "dropout": "D"}.get(layer.kind, "?") for layer in layers)
        activations = {layer.activation.name for layer in layers if isinstance(layer, ActivationLayer)}
        hidden = letters.count("F")
        if not cls.LAYOUT.fullmatch(letters) or len(activations) > 1 or \
                letters.count("B") not in (0, hidden) or letters.count("D") not in (0, hidden):
            return None
        return cls(network, reference, letters)

    def __init__(self, network, reference, letters):
        start = reference.head_start
        layers = network.layers[start:]
        self.affine_layers = [layer for layer in layers if layer.kind == "affine"]
        self.batch_norm_layers = [layer for layer in layers if layer.kind == "batch_norm"]
        self.dropout_layers = [DrawnMask(reference.masks[start + i]) for i, letter in enumerate(letters)
                               if letter == "D"]
        self.hidden_activation = next((layer.activation for layer in layers if isinstance(layer, ActivationLayer)),
                                      None)
        self.weight_decay_lambda = 0.0  # the caller adds the weight decay's differences, for every weight
        self.dtype = np.dtype(np.float64)
        self.names, counts = {}, {}
        for layer, keys in zip(layers, network.layer_keys[start:]):
            if layer.parameter_names:
                number = counts[layer.kind] = counts.get(layer.kind, 0) + 1
                for name, key in zip(layer.parameter_names, keys):
                    self.names[f"{name}{number}"] = key
        self.params = {local: network.params[key] for local, key in self.names.items()}

    def weight_decay(self):
        return 0.0


class ReferencePass:
    """The book's forward pass in training mode, in float64, kept layer by layer: what every nudge's change is
    carried from. `inputs[i]`, `outputs[i]`: layer i's; `masks[i]`: dropout i's mask; `winners[i]`: pooling
    i's first maximum per window, (N, C, OH, OW); `reaches[i]`: how far each input of activation i can move
    on its linear piece (with `find_kinks`, for a piecewise-linear activation; else absent)."""

    def __init__(self, network, x, t, find_kinks):
        self.network = network
        self.layers = network.layers
        self.head_start = next(i for i, layer in enumerate(self.layers) if layer.kind == "affine")
        self.inputs, self.outputs, self.masks, self.winners, self.reaches, self.seen = [], [], {}, {}, {}, {}
        a = x
        with frozen_training(self.layers):
            for i, layer in enumerate(self.layers):
                self.inputs.append(a)
                a = layer.forward(a, True) if layer.uses_train_flg else layer.forward(a)
                a = np.asarray(a, np.float64)
                self.outputs.append(a)
                if layer.kind == "dropout":
                    self.masks[i] = layer.mask.astype(np.float64)
                elif layer.kind == "pooling":
                    N, C, out_h, out_w = a.shape
                    self.winners[i] = layer.arg_max.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2).copy()
                elif layer.kind == "convolution":  # what each weight multiplies: (C * FH * FW, N, OH, OW)
                    _, _, FH, FW = layer.W.shape
                    padded = np.pad(self.inputs[i], [(0, 0), (0, 0), (layer.pad, layer.pad), (layer.pad, layer.pad)])
                    seen = windows(padded, FH, FW, layer.stride).transpose(1, 4, 5, 0, 2, 3)
                    self.seen[i] = seen.reshape(-1, *seen.shape[3:]).copy()
                elif isinstance(layer, ActivationLayer) and find_kinks:
                    pieces = layer.activation.linear_pieces(self.inputs[i])
                    if pieces is not None:
                        self.reaches[i] = pieces[1]
        self.find_kinks = find_kinks
        self.has_kinks = bool(self.winners) or any(
            isinstance(layer, ActivationLayer) and layer.activation.linear_pieces(np.zeros(1)) is not None
            for layer in self.layers)
        _, self.labels = as_batch(a, t)
        self.sample_losses = -log_softmax(a)[np.arange(len(a)), self.labels]
        self.loss = float(np.mean(self.sample_losses))

    def batch_statistics(self):
        """(layer, (mean, var)) of each batch norm layer over this batch, per feature."""
        for layer, inputs in zip(self.layers, self.inputs):
            if layer.kind == "batch_norm":
                _, _, _, mean, var = batch_normalize(inputs.reshape(len(inputs), -1))
                yield layer, (mean[0], var[0])

    # --- the nudges of one layer's parameters ---------------------------------------------------------------

    def layer_differences(self, pool, i, steps, h):
        """({key: grad}, {key: kinks or None}) for the parameters of layer i, each nudged in turn."""
        layer, keys = self.layers[i], self.network.layer_keys[i]
        grads, kinks = {}, {}
        for name, key in zip(layer.parameter_names, keys):
            step = steps.get(dense.step_owner(key), h)
            shape = getattr(layer, name).shape
            groups = self._nudge_groups(i, name, shape)
            jobs = [(channel, entries[start:start + self._chunk(i, channel)]) for channel, entries in groups
                    for start in range(0, len(entries), self._chunk(i, channel))]
            results = list(pool.map(lambda job: self._differences(i, name, job[0], job[1], step), jobs))
            grad, kinked = np.zeros(math.prod(shape)), np.zeros(math.prod(shape), bool)
            for (_, entries), (difference, crossed) in zip(jobs, results):
                grad[entries] = difference
                kinked[entries] = crossed
            grads[key] = grad.reshape(shape) / (2 * step * len(self.labels))
            kinks[key] = kinked.reshape(shape) if self.find_kinks else None
        return grads, kinks

    def _nudge_groups(self, i, name, shape):
        """[(channel, flat entries)]: the entries of parameter `name` of layer i grouped by the one channel of
        the layer's output their nudge moves (None: more than one, or the head's rows)."""
        entries = np.arange(math.prod(shape))
        if i >= self.head_start:
            return [(None, entries)]
        channels = self.outputs[i].shape[1]
        # a convolution's W (FN, C, FH, FW) and b (FN,): filter f moves channel f; batch norm's gamma and beta,
        # one per element of the (C, H, W) feature map: each moves its element's channel
        per_channel = entries.reshape(channels, -1)
        return [(c, per_channel[c]) for c in range(channels)]

    def _chunk(self, i, channel):
        """How many nudges (each carried at +h and -h) a chunk holds, within CHUNK_VALUES."""
        widest = 1
        for m in range(i, len(self.layers)):
            size = self.outputs[m][0].size
            if channel is not None and m < self.head_start:
                if self.layers[m].kind == "convolution" and m > i:
                    channel = None
                else:
                    size //= self.outputs[m].shape[1]
            widest = max(widest, size)
        return max(1, CHUNK_VALUES // (2 * len(self.labels) * widest))

    def _differences(self, i, name, channel, entries, step):
        """sum_n loss_n(+step) - loss_n(-step) for each entry of parameter `name` of layer i, and whether either
        nudge crossed a kink."""
        e = np.concatenate([np.full(len(entries), step), np.full(len(entries), -step)])
        moved = self._moved_output(i, name, channel, np.concatenate([entries, entries]), e)
        losses, crossed = self._carry(i, moved, channel)
        half = len(entries)
        return losses[:half] - losses[half:], crossed[:half] | crossed[half:]

    def _moved_output(self, i, name, channel, entries, e):
        """Layer i's output when each entry of its parameter `name` is nudged by its e: (nudges, N, *shape),
        the one `channel` only ((nudges, N, 1, H, W)) when it is given."""
        layer, out, inputs = self.layers[i], self.outputs[i], self.inputs[i]
        N = len(out)
        if layer.kind == "convolution":
            if name == "b":
                return out[None, :, channel:channel + 1] + e[:, None, None, None, None]
            seen = self.seen[i][entries % len(self.seen[i])]  # (nudges, N, OH, OW)
            moved = np.multiply(e[:, None, None, None], seen)
            moved += out[:, channel]
            return moved[:, :, None]
        if layer.kind == "batch_norm":  # feature p (an element of the map, or a unit of a row) moves
            flat = out.reshape(N, -1)
            sample_shape = out.shape[1:]
            if channel is None:
                moved = np.repeat(flat[None], len(entries), axis=0)
                position = entries
            else:
                per_channel = flat.size // N // sample_shape[0]
                moved = np.repeat(flat[None, :, channel * per_channel:(channel + 1) * per_channel], len(entries),
                                  axis=0)
                position = entries - channel * per_channel
                sample_shape = (1, *sample_shape[1:])
            shift = e[:, None] * (1.0 if name == "beta" else layer.xn[:, entries].T)
            moved[np.arange(len(entries)), :, position] += shift
            return moved.reshape(len(entries), N, *sample_shape)
        # an affine layer of the head: W[a, j] moves unit j by e * input a, b[j] by e
        width = out.shape[1]
        moved = np.repeat(out[None], len(entries), axis=0)
        a, j = np.divmod(entries, width) if name == "W" else (None, entries)
        shift = e[:, None] if name == "b" else e[:, None] * inputs.reshape(N, -1)[:, a].T
        moved[np.arange(len(entries)), :, j] += shift
        return moved

    def _reference(self, values, channel):
        """Reference values (N, *shape) of a trunk layer as a carried array sees them: (1, N, ...), the one
        `channel` when given."""
        return values[None] if channel is None else values[None, :, channel:channel + 1]

    def _carry(self, i, moved, channel):
        """For each carried nudge, from layer i's new output `moved`: sum_n new loss_n - loss_n, and whether it
        crossed a kink on the way."""
        crossed = np.zeros(len(moved), bool)
        for m in range(i + 1, len(self.layers)):
            layer = self.layers[m]
            if layer.kind == "convolution" and channel is not None:  # it mixes the channels: carry them all
                full = np.repeat(self.inputs[m][None], len(moved), axis=0)
                full[:, :, channel] = moved[:, :, 0]
                moved, channel = full, None
            if m == self.head_start:
                moved, channel = self._into_head(m, moved, channel), None
                continue
            moved = self._layer_forward(m, moved, channel, crossed)
        z = moved
        log_probs = log_softmax(z)
        labels = np.broadcast_to(self.labels[None, :, None], (len(z), len(self.labels), 1))
        losses = -np.take_along_axis(log_probs, labels, axis=2)[..., 0]
        return (losses - self.sample_losses).sum(axis=1), crossed

    def _into_head(self, m, moved, channel):
        """The head's first affine output for carried trunk outputs: the reference one, moved by the change's
        product with the rows of the weights it reaches."""
        layer = self.layers[m]
        N = len(self.labels)
        change = moved - self._reference(self.inputs[m], channel)
        W = np.asarray(layer.W, np.float64)
        if channel is not None:
            per_channel = W.shape[0] // self.inputs[m].shape[1]
            W = W[channel * per_channel:(channel + 1) * per_channel]
        return self.outputs[m][None] + change.reshape(len(moved), N, -1) @ W

    def _layer_forward(self, m, moved, channel, crossed):
        """Layer m applied to carried values `moved` (nudges, N, *shape) (one `channel` of a trunk layer, or
        all); where a nudge leaves a linear piece or changes a pooling window's winner, `crossed` is set."""
        layer = self.layers[m]
        if isinstance(layer, ActivationLayer):
            if m in self.reaches:
                before = self._reference(self.inputs[m], channel)
                off = np.abs(moved - before) > self._reference(self.reaches[m], channel)
                crossed |= off.reshape(len(moved), -1).any(axis=1)
            return layer.activation.forward(moved)
        if layer.kind == "dropout":
            return moved * self._reference(self.masks[m], channel)
        if layer.kind == "batch_norm":
            features = moved.shape[2:]
            gamma = np.asarray(layer.gamma, np.float64).reshape(self.inputs[m].shape[1:])
            beta = np.asarray(layer.beta, np.float64).reshape(self.inputs[m].shape[1:])
            if channel is not None:
                gamma, beta = gamma[channel:channel + 1], beta[channel:channel + 1]
            normalized = batch_normalize(moved, axis=1)[0]
            return gamma.reshape(features) * normalized + beta.reshape(features)
        if layer.kind == "affine":
            return moved.reshape(*moved.shape[:2], -1) @ np.asarray(layer.W, np.float64) + layer.b
        if layer.kind == "pooling":
            return self._pool(m, moved, channel, crossed)
        if layer.kind == "convolution":
            return self._convolve(layer, moved)
        raise AssertionError(f"no numerical gradient for {layer!r}")

    def _pool(self, m, moved, channel, crossed):
        layer = self.layers[m]
        K, N, C, H, W = moved.shape
        images = moved.reshape(K * N, C, H, W)
        if layer.pad:
            images = np.pad(images, [(0, 0), (0, 0), (layer.pad, layer.pad), (layer.pad, layer.pad)],
                            constant_values=-np.inf)
        out_shape = self.outputs[m].shape[2:]
        views = layer.offset_views(images, *out_shape)
        pooled = views[0].copy()
        winner = np.zeros(pooled.shape, np.intp) if self.find_kinks else None
        for k, view in enumerate(views[1:], start=1):
            if winner is not None:
                winner[view > pooled] = k  # strictly: the first maximum wins a tie, as the book's argmax
            np.maximum(pooled, view, out=pooled)
        if winner is not None:
            changed = winner.reshape(K, N, C, *out_shape) != self._reference(self.winners[m], channel)
            crossed |= changed.reshape(K, -1).any(axis=1)
        return pooled.reshape(K, N, C, *out_shape)

    def _convolve(self, layer, moved):
        K, N = moved.shape[:2]
        FN, _, FH, FW = layer.W.shape
        images = moved.reshape(K * N, *moved.shape[2:])
        col = im2col(images, FH, FW, layer.stride, layer.pad)
        out = col @ np.asarray(layer.W, np.float64).reshape(FN, -1).T + layer.b
        _, out_h, out_w = layer.output_shape(moved.shape[2:])
        return out.reshape(K, N, out_h, out_w, FN).transpose(0, 1, 4, 2, 3)
