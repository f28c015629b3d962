"""The network's forward pass on buffers allocated once: whole data sets in chunks, and the training step's first half.

Built from the network's own layers, through the in-place forms each layer
kind defines (`forward_into`, see `sgdlab.nn.layers`), on the very weight
arrays the layers hold.
"""

import numpy as np

from .threads import limit_blas_loaded_since


def execution_order(layers):
    """The positions of `layers` in the order the fast paths run them: the network's, but for an activation
    that commutes with a maximum (relu: max(relu(a), relu(b)) = relu(max(a, b)), and the gradient through
    a tie is the same) followed by max pooling, which run the other way round, the activation on the pooled
    values (a quarter of them, for 2x2 windows). The numbers are the book's order's exactly."""
    order = list(range(len(layers)))
    for i in range(len(order) - 1):
        if layers[order[i]].commutes_with_max and layers[order[i + 1]].takes_max:
            order[i], order[i + 1] = order[i + 1], order[i]
    return order


class ForwardPass:
    """The network's scores (the softmax's input) for up to `rows` samples at a time, into reused buffers.

    `scores(x)` returns a buffer that the next call overwrites. Evaluation
    runs whole data sets through it chunk by chunk, at test time (`train`
    False); `BackpropStep` builds on it in training mode, on full batches of
    `rows` (batch norm's statistics are of the batch).
    """

    def __init__(self, network, rows, train=False):
        self.rows = rows
        self.train = train
        self.order = execution_order(network.layers)
        self.layers = [network.layers[i] for i in self.order]
        if self.layers[0].in_place:
            raise ValueError(f"the first layer, {self.layers[0]!r}, would overwrite the input images")
        self.input_shape = network.input_shape
        # outputs[i]: layer i's output, (rows, *its shape); a layer that works in place shares its input's buffer.
        # blocks[i]: the tiling windows of a max pooling that layer i's output feeds, in which a layer that
        # `writes_blocks` (a convolution) lays that output out, for the pooling to read it in whole blocks.
        blocks = [None] * len(self.layers)
        for i in range(len(self.layers) - 1):
            if self.layers[i].writes_blocks and self.layers[i + 1].blocks is not None:
                blocks[i] = blocks[i + 1] = self.layers[i + 1].blocks
        self.blocks, self.layer_inputs = blocks, []  # and each layer's input shape, per sample
        self.outputs, shape = [], network.input_shape
        for layer in self.layers:
            self.layer_inputs.append(shape)
            if not layer.in_place:
                shape = layer.output_shape(shape)
                buffer = np.empty((rows, *shape), network.dtype)
            self.outputs.append(buffer)
        self.workspaces = self._workspaces(rows, network.dtype)
        limit_blas_loaded_since()  # a workspace may have loaded a BLAS library (SciPy's, for the shifted products)

    def _workspaces(self, rows, dtype):
        """What each layer's in-place forms keep, for `rows` samples at a time."""
        return [layer.workspace(rows, shape, dtype, self.train, arrangement)
                for layer, shape, arrangement in zip(self.layers, self.layer_inputs, self.blocks)]

    @property
    def nbytes(self):
        """The memory its buffers and workspaces hold."""
        arrays = {id(a): a for a in self.outputs}
        for work in self.workspaces:
            values = work.values() if isinstance(work, dict) else work if isinstance(work, tuple) else ()
            arrays.update((id(a), a) for a in values if isinstance(a, np.ndarray))
        return sum(a.nbytes for a in arrays.values())

    @classmethod
    def rows_within(cls, network, budget):
        """How many samples at a time a test-time pass of `network` may take with buffers of at most `budget`
        bytes (at least one: a network's layers write at most `MAX_WORK_PER_SAMPLE` values per sample, 32 MB of
        float64, so that one sample's buffers fit the evaluation's budget whatever a model file describes)."""
        return max(1, budget // cls(network, 1).nbytes)

    def scores(self, x):
        """The scores of `x`, rows or images (at most `rows` of them), a view of the last layer's buffer."""
        x = x.reshape(len(x), *self.input_shape)
        outputs = self.outputs if len(x) == self.rows else [out[:len(x)] for out in self.outputs]
        for layer, out, work in zip(self.layers, outputs, self.workspaces):
            x = layer.forward_into(x, out, self.train, work)
        return x
