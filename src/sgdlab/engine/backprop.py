"""Backpropagation for the training loop: the same numbers as the layers, without their overhead.

`Network.loss_and_gradient` walks the book's layer objects, allocating a
fresh array for every intermediate result; it is the readable reference.
`BackpropStep` computes the same loss and gradients for one batch size with
every array allocated once, through the forms each layer kind defines for it
(`forward_into`, `backward_into`) and the loss's
`softmax_cross_entropy_in_place`, and no gradient with respect to the input
images (no parameter needs it, and for the first layer it would cost as much
as the forward pass).

A convolutional net's leading layers that treat each sample on its own
(`Layer.per_sample`) run on two cores, each on half of the rows: up to the
first affine layer in chunks of rows of bounded buffers (`CHUNK_BYTES`;
a batch of less work than `SPLIT_BYTES` is not split), then (the affine layers, whose matrix products run best on
many rows) each on its whole half, up to the first layer that couples the
samples (batch norm) or draws random numbers (dropout). The second half runs
on a worker thread beside this one; each chunk has its own workspaces and
each half its own parameter gradients, which are then added. The split
depends on the network and the batch size alone, never on the cores: with one
core the halves run one after the other, and the numbers are the same. A
dense net is not split.
"""

import atexit
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..nn.functions import softmax_cross_entropy_in_place
from .forward import ForwardPass
from .threads import one_blas_thread, usable_cores

SPLIT_BYTES = 4 << 20  # the leading per-sample layers' buffers for a batch above which it is split in halves
# The most of those buffers one chunk of rows takes. Smaller chunks fit a core's cache but make more, smaller
# products: for DeepConvNet on two cores 16 MB took 59 ms a step where 4 MB took 98 (two threads of small
# products crowd each other), and SimpleConvNet's 6.5 ms against 7.1 (benchmarks/README.md).
CHUNK_BYTES = 16 << 20

_worker = None


def _second_core():
    """The thread that runs a batch's second half, started on first use (None with one core)."""
    global _worker
    if _worker is None and usable_cores() > 1:
        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sgdlab-half-batch")
        atexit.register(_worker.shutdown)
    return _worker


class BackpropStep(ForwardPass):
    """Loss and gradients of `network` on batches of exactly `batch_size` samples.

    Calling it with a batch `x` (batch_size, inputs), rows or images, of the
    network's dtype and integer `labels` returns `(loss, grads)`; `grads` are
    buffers that the next call overwrites, so use them (e.g.
    `optimizer.update`) before calling again. The call is `forward` then
    `backward`, which can also be called one by one.
    """

    def __init__(self, network, batch_size):
        super().__init__(network, batch_size, train=True)
        dtype = network.dtype
        # input_grads[i]: d loss / d (layer i's input); none for the first layer.
        self.input_grads = [None] + [np.empty_like(out) for out in self.outputs[:-1]]
        self.grads = {key: np.empty_like(param) for key, param in network.params.items()}
        self.layer_keys = [network.layer_keys[i] for i in self.order]
        self.layer_grads = [tuple(self.grads[key] for key in keys) for keys in self.layer_keys]
        self.row_max = np.empty((batch_size, 1), dtype)
        self.row_sum = np.empty((batch_size, 1), dtype)
        self.row_starts = np.arange(batch_size) * network.output_size
        self.network = network
        # the weights the weight decay covers, as the network counts them
        self.decayed = [(network.params[key], self.grads[key]) for key in network.decayed_keys]
        # each half its own gradients of the split layers, and room for a chunk's before they are added
        self.half_grads, self.chunk_grads = ([[tuple(np.empty_like(grad) for grad in grads)
                                               for grads in self.layer_grads[:self.split_end]]
                                              for _ in range(2)] for _ in range(2))

    def _workspaces(self, rows, dtype):
        """The layers' workspaces, but for the leading ones that run on the batch's halves (`segments`: the
        layers first..stop of each, and its two lists of row chunks; `split_end`: where they end), for
        which each chunk has its own."""
        self.segments, self.split_end = [], 0
        cached = self._leading(0, lambda layer: layer.per_sample and not layer.batched_product)
        per_row = sum(out[0].nbytes for out in self.outputs[:cached]) * 2  # outputs, and as large gradients
        if rows < 2 or cached == 0 or per_row * rows <= SPLIT_BYTES:
            return super()._workspaces(rows, dtype)
        count = 2 * math.ceil(rows * per_row / CHUNK_BYTES / 2)  # an even number of chunks of about equal rows
        bounds = [rows * k // count for k in range(count + 1)]
        chunks = [(start, stop) for start, stop in zip(bounds[:-1], bounds[1:]) if stop > start]
        self.segments.append((0, cached, [chunks[:len(chunks) // 2], chunks[len(chunks) // 2:]]))
        whole = self._leading(cached, lambda layer: layer.per_sample)
        if whole > cached:
            self.segments.append((cached, whole, [[(0, rows // 2)], [(rows // 2, rows)]]))
        self.split_end = self.segments[-1][1]
        self.chunk_workspaces = {(first, *chunk): [self.layers[i].workspace(chunk[1] - chunk[0], self.layer_inputs[i],
                                                                            dtype, True, self.blocks[i])
                                                   for i in range(first, stop)]
                                 for first, stop, halves in self.segments for half in halves for chunk in half}
        return [None if i < self.split_end else layer.workspace(rows, self.layer_inputs[i], dtype, True, self.blocks[i])
                for i, layer in enumerate(self.layers)]

    def _leading(self, first, condition):
        """The position of the first layer from `first` on that does not meet `condition`."""
        end = first
        while end < len(self.layers) and condition(self.layers[end]):
            end += 1
        return end

    @staticmethod
    def _both_halves(halves, run):
        """run(0, chunks) and run(1, chunks) for each half's chunks, the second on the worker thread if there is one."""
        worker = _second_core()
        second = worker.submit(run, 1, halves[1]) if worker is not None else None
        run(0, halves[0])
        if second is None:
            run(1, halves[1])
        else:
            second.result()

    def scores(self, x):
        if not self.segments:
            return super().scores(x)
        x = x.reshape(len(x), *self.input_shape)
        for first, stop, halves in self.segments:
            source = x if first == 0 else self.outputs[first - 1]

            def forward_half(half, chunks, first=first, stop=stop, source=source):
                for start, end in chunks:
                    h, work = source[start:end], self.chunk_workspaces[first, start, end]
                    for i in range(first, stop):
                        h = self.layers[i].forward_into(h, self.outputs[i][start:end], True, work[i - first])

            self._both_halves(halves, forward_half)
        h = self.outputs[self.split_end - 1]
        for i in range(self.split_end, len(self.layers)):
            h = self.layers[i].forward_into(h, self.outputs[i], True, self.workspaces[i])
        return h

    def __call__(self, x, labels):
        """(loss, grads) of the batch: `forward` then `backward`, BLAS held to one thread through both."""
        with one_blas_thread():
            return self._forward(x, labels), self._backward(x)

    def forward(self, x, labels):
        """The mean loss on the batch; keeps what `backward` needs (d loss / d scores in the scores' buffer).
        BLAS runs on one thread meanwhile (`one_blas_thread`), as in `backward`: the batch's halves are the two
        cores' work, and a BLAS pool for each half would crowd them (a user's script, a notebook, or training)."""
        with one_blas_thread():
            return self._forward(x, labels)

    def backward(self, x):
        """The gradients of the loss of the last `forward` on the same batch `x`."""
        with one_blas_thread():
            return self._backward(x)

    def _forward(self, x, labels):
        loss = softmax_cross_entropy_in_place(self.scores(x), labels, self.row_max, self.row_sum, self.row_starts)
        return loss + self.network.weight_decay() if self.network.weight_decay_lambda else loss

    def _backward(self, x):
        x = x.reshape(len(x), *self.input_shape)
        dout = self.outputs[-1]
        for i in range(len(self.layers) - 1, self.split_end - 1, -1):
            inputs = x if i == 0 else self.outputs[i - 1]
            dout = self.layers[i].backward_into(inputs, self.outputs[i], dout, self.input_grads[i],
                                                self.layer_grads[i], self.workspaces[i])
        for first, stop, halves in reversed(self.segments):
            self._backward_halves(x, dout, first, stop, halves)
            dout = self.input_grads[first]
        decay_lambda = self.network.weight_decay_lambda
        if decay_lambda:  # the weight decay's lambda * W
            for weight, grad in self.decayed:
                grad += decay_lambda * weight
        return self.grads

    def _backward_halves(self, x, dout, first, stop, halves):
        """Layers stop - 1 down to first on each half's chunks, from d loss / d (their last output) `dout`."""
        def backward_half(half, chunks):
            for number, (start, end) in enumerate(chunks):
                d, work = dout[start:end], self.chunk_workspaces[first, start, end]
                for i in range(stop - 1, first - 1, -1):
                    inputs = x[start:end] if i == 0 else self.outputs[i - 1][start:end]
                    dx = None if self.input_grads[i] is None else self.input_grads[i][start:end]
                    grads = self.half_grads[half][i] if number == 0 else self.chunk_grads[half][i]
                    d = self.layers[i].backward_into(inputs, self.outputs[i][start:end], d, dx, grads, work[i - first])
                    if number:
                        for total, grad in zip(self.half_grads[half][i], grads):
                            total += grad

        self._both_halves(halves, backward_half)
        for i in range(first, stop):  # each parameter's gradient: the sum of the halves'
            for grad, first_half, second_half in zip(self.layer_grads[i], self.half_grads[0][i], self.half_grads[1][i]):
                np.add(first_half, second_half, out=grad)
