"""The network's forward pass on buffers allocated once: whole data sets in chunks, and the training step's first half.

Built from the network's own layers, through the in-place forms each layer
kind defines (`forward_into`, see `sgdlab.nn.layers`), on the very weight
arrays the layers hold.
"""

import numpy as np


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
        self.layers = network.layers
        if self.layers[0].in_place:
            raise ValueError(f"the first layer, {self.layers[0]!r}, would overwrite the input images")
        self.input_shape = network.input_shape
        # outputs[i]: layer i's output, (rows, *its shape); a layer that works in place shares its input's buffer.
        self.outputs, self.workspaces, shape = [], [], network.input_shape
        for layer in self.layers:
            self.workspaces.append(layer.workspace(rows, shape, network.dtype, train))
            if not layer.in_place:
                shape = layer.output_shape(shape)
                buffer = np.empty((rows, *shape), network.dtype)
            self.outputs.append(buffer)

    def scores(self, x):
        """The scores of `x`, rows or images (at most `rows` of them), a view of the last layer's buffer."""
        x = x.reshape(len(x), *self.input_shape)
        outputs = self.outputs if len(x) == self.rows else [out[:len(x)] for out in self.outputs]
        for layer, out, work in zip(self.layers, outputs, self.workspaces):
            x = layer.forward_into(x, out, self.train, work)
        return x
