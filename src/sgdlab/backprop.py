"""Backpropagation for the training loop: the same numbers as the layers, without their overhead.

`MultiLayerNet.loss_and_gradient` walks the book's layer objects, allocating a
fresh array for every intermediate result; it is the readable reference.
`BackpropStep` computes the same loss and gradients for one batch size with
every array allocated once, softmax fused with the cross-entropy gradient, and
no gradient with respect to the input images (no parameter needs it, and for
the first layer it would cost as much as the forward pass).
"""

import numpy as np

SIGMOID_EXP_CAP = 80.0  # exp(80) = 5.5e34 fits float32 (max 3.4e38)


class ForwardPass:
    """The network's scores (the softmax's input) for up to `rows` samples at a time, into reused buffers.

    `scores(x)` returns a buffer that the next call overwrites. Evaluation
    runs whole data sets through it chunk by chunk; `BackpropStep` builds on it.
    """

    def __init__(self, network, rows):
        self.rows = rows
        self.num_layers = len(network.sizes) - 1
        self.weights = [network.params[f"W{i}"] for i in range(1, self.num_layers + 1)]
        self.biases = [network.params[f"b{i}"] for i in range(1, self.num_layers + 1)]
        # outputs[i]: layer i's activated output (for the last layer: its raw scores).
        self.outputs = [np.empty((rows, n), network.dtype) for n in network.sizes[1:]]
        self.relu = network.activation == "relu"

    def scores(self, x):
        outputs = self.outputs if len(x) == self.rows else [out[:len(x)] for out in self.outputs]
        inputs = x
        for i, (weight, bias, out) in enumerate(zip(self.weights, self.biases, outputs)):
            np.matmul(inputs, weight, out=out)
            out += bias
            if i < self.num_layers - 1:
                self._activate(out)
            inputs = out
        return inputs

    def _activate(self, z):
        if self.relu:
            np.maximum(z, 0, out=z)
        else:  # sigmoid(z) = 1 / (1 + exp(-z)), with -z capped at 80 so exp never overflows
            np.negative(z, out=z)  # (sigmoid(-80) = 2e-35: the cap changes nothing that matters)
            np.minimum(z, SIGMOID_EXP_CAP, out=z)
            np.exp(z, out=z)
            z += 1
            np.reciprocal(z, out=z)


class BackpropStep(ForwardPass):
    """Loss and gradients of `network` on batches of exactly `batch_size` samples.

    Calling it with a batch `x` (batch_size, inputs) of the network's dtype and
    integer `labels` returns `(loss, grads)`; `grads` are buffers that the next
    call overwrites, so use them (e.g. `optimizer.update`) before calling again.
    The call is `forward` then `backward`, which can also be called one by one.
    """

    def __init__(self, network, batch_size):
        super().__init__(network, batch_size)
        dtype = network.dtype
        self.batch_size = batch_size
        # deltas[i]: d loss / d (layer i's pre-activation); the last layer's is computed in outputs[-1].
        self.deltas = [np.empty((batch_size, n), dtype) for n in network.sizes[1:-1]]
        self.scratch = [np.empty((batch_size, n), dtype) for n in network.sizes[1:-1]]
        self.row_max = np.empty((batch_size, 1), dtype)
        self.row_sum = np.empty((batch_size, 1), dtype)
        self.row_starts = np.arange(batch_size) * network.sizes[-1]
        self.grads = {key: np.empty_like(param) for key, param in network.params.items()}

    def __call__(self, x, labels):
        loss = self.forward(x, labels)
        return loss, self.backward(x)

    def forward(self, x, labels):
        """The mean loss on the batch; keeps what `backward` needs."""
        return self._softmax_cross_entropy(self.scores(x), labels)

    def _softmax_cross_entropy(self, scores, labels):
        """The mean loss; leaves d loss / d scores = (softmax - onehot) / N in `scores`.

        (The ufuncs' own reduce methods: np.max, np.sum and np.mean cost
        several times more on arrays this small.)
        """
        np.maximum.reduce(scores, axis=1, keepdims=True, out=self.row_max)
        scores -= self.row_max
        true_class = self.row_starts + labels  # flat positions of each sample's true-class score
        flat = scores.reshape(-1)
        picked = flat.take(true_class)
        np.exp(scores, out=scores)
        np.add.reduce(scores, axis=1, keepdims=True, out=self.row_sum)
        loss = float(np.add.reduce(np.log(self.row_sum[:, 0]) - picked)) / self.batch_size
        scores /= self.row_sum
        flat[true_class] -= 1
        scores *= 1 / self.batch_size
        return loss

    def backward(self, x):
        """The gradients of the loss of the last `forward` on the same batch `x`."""
        delta = self.outputs[-1]
        for i in range(self.num_layers - 1, -1, -1):
            inputs = x if i == 0 else self.outputs[i - 1]
            np.matmul(inputs.T, delta, out=self.grads[f"W{i + 1}"])
            np.add.reduce(delta, axis=0, out=self.grads[f"b{i + 1}"])
            if i == 0:
                break
            below = self.deltas[i - 1]
            np.matmul(delta, self.weights[i].T, out=below)
            self._activation_backward(below, inputs, self.scratch[i - 1])
            delta = below
        return self.grads

    def _activation_backward(self, delta, activated, scratch):
        """delta *= the activation's derivative, expressed through its output."""
        if self.relu:
            np.greater(activated, 0, out=scratch)
            delta *= scratch
        else:  # sigmoid' = s * (1 - s)
            np.subtract(1, activated, out=scratch)
            delta *= scratch
            delta *= activated
