"""Backpropagation for the training loop: the same numbers as the layers, without their overhead.

`MultiLayerNet.loss_and_gradient` walks the book's layer objects, allocating a
fresh array for every intermediate result; it is the readable reference.
`BackpropStep` computes the same loss and gradients for one batch size with
every array allocated once, through the forms each layer kind defines for it
(`forward_into`, `backward_into`) and the loss's
`softmax_cross_entropy_in_place`, and no gradient with respect to the input
images (no parameter needs it, and for the first layer it would cost as much
as the forward pass).
"""

import numpy as np

from ..nn.functions import softmax_cross_entropy_in_place
from .forward import ForwardPass


class BackpropStep(ForwardPass):
    """Loss and gradients of `network` on batches of exactly `batch_size` samples.

    Calling it with a batch `x` (batch_size, inputs) of the network's dtype and
    integer `labels` returns `(loss, grads)`; `grads` are buffers that the next
    call overwrites, so use them (e.g. `optimizer.update`) before calling again.
    The call is `forward` then `backward`, which can also be called one by one.
    """

    def __init__(self, network, batch_size):
        super().__init__(network, batch_size, train=True)
        dtype = network.dtype
        # input_grads[i]: d loss / d (layer i's input); none for the first layer.
        self.input_grads = [None] + [np.empty_like(out) for out in self.outputs[:-1]]
        self.grads = {key: np.empty_like(param) for key, param in network.params.items()}
        self.layer_grads = [tuple(self.grads[key] for key in network.layer_keys[i]) for i in self.order]
        self.row_max = np.empty((batch_size, 1), dtype)
        self.row_sum = np.empty((batch_size, 1), dtype)
        self.row_starts = np.arange(batch_size) * network.output_size
        self.network = network
        # the weights the weight decay covers, as the network counts them
        self.decayed = [(network.params[key], self.grads[key]) for key in network.decayed_keys]

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
        dout = self.outputs[-1]
        for i in range(len(self.layers) - 1, -1, -1):
            inputs = x if i == 0 else self.outputs[i - 1]
            dout = self.layers[i].backward_into(inputs, self.outputs[i], dout, self.input_grads[i],
                                                self.layer_grads[i], self.workspaces[i])
        decay_lambda = self.network.weight_decay_lambda
        if decay_lambda:  # the weight decay's lambda * W
            for weight, grad in self.decayed:
                grad += decay_lambda * weight
        return self.grads
