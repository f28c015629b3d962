"""Backpropagation for the training loop: the same numbers as the layers, without their overhead.

`Network.loss_and_gradient` walks the book's layer objects, allocating a
fresh array for every intermediate result; it is the readable reference.
`BackpropStep` computes the same loss and gradients for one batch size with
every array allocated once, through the forms each layer kind defines for it
(`forward_into`, `backward_into`) and the loss's
`softmax_cross_entropy_in_place`, and no gradient with respect to the input
images (no parameter needs it, and for the first layer it would cost as much
as the forward pass).

A convolutional net's leading layers (those that treat each sample on its
own, `Layer.per_sample`, up to the first affine layer, whose one matrix
product over the batch is faster whole) run on chunks of rows whose buffers
fit a core's cache (`CHUNK_BYTES`), the first half of the chunks on this
thread and the second on a worker thread beside it, each half with its own
workspaces and parameter gradients, which are then added. The chunks depend
on the network and the batch size alone, never on the cores: with one core
the halves run one after the other, and the numbers are the same.
"""

import atexit
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..nn.functions import softmax_cross_entropy_in_place
from .forward import ForwardPass
from .threads import usable_cores

CHUNK_BYTES = 4 << 20  # the leading per-sample layers' buffers for one chunk of rows: about a core's L2 cache

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
        if self.halves is not None:  # each half its own gradients, and room for a chunk's before they are added
            self.half_grads, self.chunk_grads = ([[tuple(np.empty_like(grad) for grad in grads)
                                                   for grads in self.layer_grads[:self.split_layers]]
                                                  for _ in self.halves] for _ in range(2))

    def _workspaces(self, rows, dtype):
        """The layers' workspaces, but for the `split_layers` leading ones that run in chunks of rows
        (`halves`: the chunks, in two lists; None where the batch is not split): each chunk has its own."""
        self.split_layers = 0
        while self.split_layers < len(self.layers) and self.layers[self.split_layers].per_sample \
                and not self.layers[self.split_layers].batched_product:
            self.split_layers += 1
        # the leading layers' outputs and their gradients (as large, but for the first layer's input)
        per_row = sum(out[0].nbytes for out in self.outputs[:self.split_layers]) * 2
        self.halves = None
        if rows < 2 or self.split_layers == 0 or per_row * rows <= CHUNK_BYTES:
            return super()._workspaces(rows, dtype)
        size = max(1, CHUNK_BYTES // per_row)
        chunks = [(start, min(start + size, rows)) for start in range(0, rows, size)]
        if len(chunks) == 1:
            chunks = [(0, rows // 2), (rows // 2, rows)]
        middle = (len(chunks) + 1) // 2
        self.halves = [chunks[:middle], chunks[middle:]]
        self.chunk_workspaces = {chunk: [self.layers[i].workspace(chunk[1] - chunk[0], self.layer_inputs[i], dtype,
                                                                  True, self.blocks[i]) for i in range(self.split_layers)]
                                 for chunk in chunks}
        return [None if i < self.split_layers else layer.workspace(rows, self.layer_inputs[i], dtype, True,
                                                                     self.blocks[i])
                for i, layer in enumerate(self.layers)]

    def _both_halves(self, run):
        """run(0, chunks) and run(1, chunks) for each half's chunks, the second on the worker thread if there is one."""
        worker = _second_core()
        second = worker.submit(run, 1, self.halves[1]) if worker is not None else None
        run(0, self.halves[0])
        if second is None:
            run(1, self.halves[1])
        else:
            second.result()

    def scores(self, x):
        if self.halves is None:
            return super().scores(x)
        x = x.reshape(len(x), *self.input_shape)

        def forward_half(half, chunks):
            for start, stop in chunks:
                h = x[start:stop]
                for i in range(self.split_layers):
                    h = self.layers[i].forward_into(h, self.outputs[i][start:stop], True,
                                                    self.chunk_workspaces[start, stop][i])

        self._both_halves(forward_half)
        h = self.outputs[self.split_layers - 1]
        for i in range(self.split_layers, len(self.layers)):
            h = self.layers[i].forward_into(h, self.outputs[i], True, self.workspaces[i])
        return h

    def __call__(self, x, labels):
        loss = self.forward(x, labels)
        return loss, self.backward(x)

    def forward(self, x, labels):
        """The mean loss on the batch; keeps what `backward` needs (d loss / d scores in the scores' buffer)."""
        loss = softmax_cross_entropy_in_place(self.scores(x), labels, self.row_max, self.row_sum, self.row_starts)
        return loss + self.network.weight_decay() if self.network.weight_decay_lambda else loss

    def backward(self, x):
        """The gradients of the loss of the last `forward` on the same batch `x`."""
        x = x.reshape(len(x), *self.input_shape)
        first = 0 if self.halves is None else self.split_layers
        dout = self.outputs[-1]
        for i in range(len(self.layers) - 1, first - 1, -1):
            inputs = x if i == 0 else self.outputs[i - 1]
            dout = self.layers[i].backward_into(inputs, self.outputs[i], dout, self.input_grads[i],
                                                self.layer_grads[i], self.workspaces[i])
        if self.halves is not None:
            self._backward_halves(x, dout)
        decay_lambda = self.network.weight_decay_lambda
        if decay_lambda:  # the weight decay's lambda * W
            for weight, grad in self.decayed:
                grad += decay_lambda * weight
        return self.grads

    def _backward_halves(self, x, dout):
        def backward_half(half, chunks):
            for number, (start, stop) in enumerate(chunks):
                d = dout[start:stop]
                for i in range(self.split_layers - 1, -1, -1):
                    inputs = x[start:stop] if i == 0 else self.outputs[i - 1][start:stop]
                    dx = None if self.input_grads[i] is None else self.input_grads[i][start:stop]
                    grads = self.half_grads[half][i] if number == 0 else self.chunk_grads[half][i]
                    d = self.layers[i].backward_into(inputs, self.outputs[i][start:stop], d, dx, grads,
                                                     self.chunk_workspaces[start, stop][i])
                    if number:
                        for total, grad in zip(self.half_grads[half][i], grads):
                            total += grad

        self._both_halves(backward_half)
        for i in range(self.split_layers):  # each parameter's gradient: the sum of the halves'
            for grad, first, second in zip(self.layer_grads[i], self.half_grads[0][i], self.half_grads[1][i]):
                np.add(first, second, out=grad)
