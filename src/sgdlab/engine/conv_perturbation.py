"""The textbook numerical gradient of a convolutional net, computed without recomputing what a nudge cannot change.

The same central differences, with the same h, as `network.numerical_gradient`
(the book's, two whole forward passes per parameter), for a `ConvNet`: its
layers that give (N, C, H, W) images are the trunk (convolutions, pooling,
activations, batch norm, dropout), the rest, from the first that gives rows
(an affine layer), is the head.

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
  Each nudge is then carried from layer k on only, through each later
  layer's own declared form (`Layer.carry`; this module knows no layer kind
  by name): the layers that act on each channel by itself (`channelwise`:
  activations, dropout, batch norm per element, pooling) carry that one
  channel; a later convolution, linear in its input, moves its output by the
  convolution of that one channel's change with that channel's slice of its
  filters (a C-th of the whole convolution), and from there every channel is
  carried; the head's first affine layer moves by the change's product with
  the rows of its weights it reaches, and the head is recomputed from there
  for the whole batch. The nudges of one channel go together, + and - at
  once, in chunks of bounded size that two threads share.
- Kinks (`find_kinks`): a layer kind declares where its slope jumps (`kink`)
  and its carry finds, exactly on the values it carries, the nudges that
  cross one: a relu input moved off its linear piece (its reach,
  `Activation.linear_pieces`), a max-pooling window's winner changed (the
  first maximum, as the book's argmax takes it); the head's kinks as for a
  dense net.

The reference pass is the book's own forward pass in training mode, in
float64 (`frozen_training`: each dropout mask drawn once, in layer order, as
the textbook draws them; the running statistics left alone). The difference
from the textbook is rounding only.
"""

import itertools
import math

import numpy as np

from ..nn.activations import activation_names
from ..nn.functions import as_batch, log_softmax
from ..nn.layers import frozen_training
from ..nn.network import MultiLayerNet
from . import perturbation as dense  # the dense machinery, for the head (its central_differences dispatches here)
from .threads import CallersErrorsPool

CHUNK_VALUES = 1 << 19  # values of the widest array a chunk of nudges carries (4 MB of float64): bounds memory


def conv_central_differences(network, x, t, h=1e-4, steps=None, find_kinks=False, use_series=True, workers=2,
                             follow_statistics=False, only=None):
    """`perturbation.central_differences` for a convolutional net: (loss, grads, kinks), the same contract.

    `steps` maps a parameter to its own step (b takes W's, beta gamma's);
    `kinks` is None without `find_kinks`, or when the net has nothing
    piecewise linear (no max pooling, a curved activation). `only` maps a
    parameter of the convolutional trunk to the flat entries to nudge (a
    sample, for a net whose every nudge takes too long): its others are NaN,
    not differentiated, and cross no kink. The dense head is differentiated
    whole, which takes a fraction of the time, and then kept to its sample
    as well: a check compares what it says it sampled, and no NaN of an
    entry it left out passes for one never differentiated.
    """
    steps = steps or {}
    reference = ReferencePass(network, network.as_input(np.asarray(x, np.float64)), t, find_kinks)
    grads, kinks = {}, {}
    with CallersErrorsPool(max_workers=workers) as pool:
        head = DenseHead.of(network, reference)
        if head is not None:
            start = reference.head_start
            local_steps = {local: steps.get(dense.step_owner(name), h) for local, name in head.names.items()}
            _, head_grads, head_kinks = dense.central_differences(head, reference.inputs[start], t, h, local_steps,
                                                                  find_kinks, use_series, workers)
            for local, name in head.names.items():
                grads[name] = head_grads[local]
                kinks[name] = None if head_kinks is None else head_kinks[local]
                if name in (only or {}):
                    grads[name], kinks[name] = _kept_to(only[name], grads[name], kinks[name])
        for i in range(reference.head_start if head is not None else len(network.layers)):
            layer_grads, layer_kinks = reference.layer_differences(pool, i, steps, h, only or {})
            grads.update(layer_grads)
            kinks.update(layer_kinks)
    decay_lambda = network.weight_decay_lambda
    if decay_lambda:
        for key in network.decayed_keys:
            W = np.asarray(network.params[key], np.float64)
            grads[key] = grads[key] + dense.weight_decay_difference(W, decay_lambda, steps.get(key, h))
    if follow_statistics:
        reference.follow_batch()
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


def _kept_to(entries, grad, kinked):
    """`grad` NaN (and `kinked`, if given, False) but at the flat `entries`: as if only those were nudged."""
    outside = np.ones(grad.size, bool)
    outside[entries] = False
    outside = outside.reshape(grad.shape)
    grad = np.where(outside, np.nan, grad)
    return grad, None if kinked is None else kinked & ~outside


class DenseHead:
    """A conv net's head laid out as a `MultiLayerNet` is (affine, [batch norm], activation, [dropout], ...,
    affine: `MultiLayerNet.specification`'s layout), as the dense machinery reads one: its parameters under
    the dense names (`names` maps them to the network's), its dropout masks the ones the reference pass drew."""

    @classmethod
    def of(cls, network, reference):
        """The head of `network` after the reference pass, or None if it is not laid out as a dense net's."""
        layers = network.layers[reference.head_start:]
        kinds = [layer.spec()["type"] for layer in layers]
        for batch_norm, dropout in itertools.product((False, True), repeat=2):
            per_hidden = 2 + batch_norm + dropout  # affine, [batch norm], activation, [dropout]
            hidden, left = divmod(len(layers) - 1, per_hidden)
            activation = kinds[1 + batch_norm] if hidden and not left else None
            if activation is not None and activation not in activation_names():
                continue
            _, specs = MultiLayerNet.specification((1,) * (hidden + 2), activation, batch_norm, dropout)
            if not left and kinds == [spec["type"] for spec in specs]:
                return cls(network, reference, per_hidden, batch_norm, dropout)
        return None

    def __init__(self, network, reference, per_hidden, batch_norm, dropout):
        start = reference.head_start
        layers = network.layers[start:]
        self.affine_layers = layers[::per_hidden]
        self.batch_norm_layers = layers[1::per_hidden] if batch_norm else []
        self.dropout_layers = [DrawnMask(reference.states[start + i]) for i in range(per_hidden - 1, len(layers),
                                                                                     per_hidden)] if dropout else []
        self.hidden_activation = layers[1 + batch_norm].activation if len(layers) > 1 else None
        self.weight_decay_lambda = 0.0  # the caller adds the weight decay's differences, for every weight
        self.dtype = np.dtype(np.float64)
        self.names, counts = {}, {}
        for layer, keys in zip(layers, network.layer_keys[start:]):
            if layer.parameter_names:
                number = counts[layer.parameter_names] = counts.get(layer.parameter_names, 0) + 1
                for name, key in zip(layer.parameter_names, keys):
                    self.names[f"{name}{number}"] = key
        self.params = {local: network.params[key] for local, key in self.names.items()}

    def weight_decay(self):
        return 0.0


class ReferencePass:
    """The book's forward pass in training mode, in float64, kept layer by layer: what every nudge's change is
    carried from. `inputs[i]`, `outputs[i]`: layer i's; `states[i]`: what layer i declared it keeps of the
    pass for carrying nudges through it (`Layer.reference_state`: dropout's mask, pooling's winners, an
    activation's reach to its kinks)."""

    def __init__(self, network, x, t, find_kinks):
        self.network = network
        self.layers = network.layers
        self.inputs, self.outputs, self.states = [], [], []
        a = x
        with frozen_training(self.layers):
            for layer in self.layers:
                self.inputs.append(a)
                out = np.asarray(layer.forward(a, True) if layer.uses_train_flg else layer.forward(a), np.float64)
                self.states.append(layer.reference_state(a, out, find_kinks))
                self.outputs.append(out)
                a = out
        # the trunk works on images, (N, C, H, W); the head, from its first layer giving rows, on rows
        self.head_start = next(i for i, out in enumerate(self.outputs) if out.ndim == 2)
        self.find_kinks = find_kinks
        self.has_kinks = any(layer.kink is not None for layer in self.layers)
        _, self.labels = as_batch(a, t)
        self.sample_losses = -log_softmax(a)[np.arange(len(a)), self.labels]
        self.loss = float(np.mean(self.sample_losses))

    def follow_batch(self):
        """Move each layer's running statistics by this batch's once (`Layer.follow_batch`)."""
        for layer, inputs in zip(self.layers, self.inputs):
            layer.follow_batch(inputs)

    # --- the nudges of one layer's parameters ---------------------------------------------------------------

    def layer_differences(self, pool, i, steps, h, only):
        """({key: grad}, {key: kinks or None}) for the parameters of layer i, each nudged in turn (of a parameter
        in `only`, those entries alone; NaN for the others)."""
        layer, keys = self.layers[i], self.network.layer_keys[i]
        prepared = layer.nudge_state(self.inputs[i], self.outputs[i], self.states[i])
        grads, kinks = {}, {}
        for name, key in zip(layer.parameter_names, keys):
            step = steps.get(dense.step_owner(key), h)
            shape = getattr(layer, name).shape
            groups = self._nudge_groups(i, shape)
            if key in only:
                groups = [(channel, entries[np.isin(entries, only[key])]) for channel, entries in groups]
            jobs = [(channel, entries[start:start + self._chunk(i, channel)]) for channel, entries in groups
                    for start in range(0, len(entries), self._chunk(i, channel))]
            results = list(pool.map(lambda job: self._differences(i, name, prepared, job[0], job[1], step), jobs))
            grad = np.full(math.prod(shape), np.nan if key in only else 0.0)
            kinked = np.zeros(math.prod(shape), bool)
            for (_, entries), (difference, crossed) in zip(jobs, results):
                grad[entries] = difference
                kinked[entries] = crossed
            grads[key] = grad.reshape(shape) / (2 * step * len(self.labels))
            kinks[key] = kinked.reshape(shape) if self.find_kinks else None
        return grads, kinks

    def _nudge_groups(self, i, shape):
        """[(channel, flat entries)]: the entries of a parameter of layer i grouped by the one channel of the
        layer's output their nudge moves (None: the layer gives rows). A trunk layer's parameters are laid out
        by the channel they move, channel-major (a convolution's W (FN, C, FH, FW) and b (FN,); batch norm's
        gamma and beta, one per element of the (C, H, W) feature map)."""
        entries = np.arange(math.prod(shape))
        if self.outputs[i].ndim == 2:
            return [(None, entries)]
        per_channel = entries.reshape(self.outputs[i].shape[1], -1)
        return [(c, per_channel[c]) for c in range(len(per_channel))]

    def _chunk(self, i, channel):
        """How many nudges (each carried at +h and -h) a chunk holds, within CHUNK_VALUES."""
        widest = 1
        for m in range(i, len(self.layers)):
            size = self.outputs[m][0].size
            if channel is not None and m > i and not self.layers[m].channelwise:
                channel = None
            if channel is not None:
                size //= self.outputs[m].shape[1]
            widest = max(widest, size)
        return max(1, CHUNK_VALUES // (2 * len(self.labels) * widest))

    def _differences(self, i, name, prepared, channel, entries, step):
        """sum_n loss_n(+step) - loss_n(-step) for each entry of parameter `name` of layer i, and whether either
        nudge crossed a kink."""
        e = np.concatenate([np.full(len(entries), step), np.full(len(entries), -step)])
        moved = self.layers[i].nudged(name, np.concatenate([entries, entries]), e, self.inputs[i], self.outputs[i],
                                      prepared, channel)
        losses, crossed = self._carry(i, moved, channel)
        half = len(entries)
        return losses[:half] - losses[half:], crossed[:half] | crossed[half:]

    def _carry(self, i, moved, channel):
        """For each carried nudge, from layer i's new output `moved`: sum_n new loss_n - loss_n, and whether it
        crossed a kink on the way (each layer's `carry`)."""
        crossed = np.zeros(len(moved), bool)
        for m in range(i + 1, len(self.layers)):
            layer = self.layers[m]
            moved, crossing = layer.carry(moved, self.inputs[m], self.outputs[m], self.states[m], channel)
            if crossing is not None:
                crossed |= crossing
            if not layer.channelwise:
                channel = None
        z = moved
        log_probs = log_softmax(z)
        labels = np.broadcast_to(self.labels[None, :, None], (len(z), len(self.labels), 1))
        losses = -np.take_along_axis(log_probs, labels, axis=2)[..., 0]
        return (losses - self.sample_losses).sum(axis=1), crossed
