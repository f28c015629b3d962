"""The building blocks of backpropagation, with the book's names and interface.

Each layer's `forward` keeps what its `backward` will need; `backward(dout)`
takes the gradient of the loss with respect to the layer's output and returns
the gradient with respect to its input, never modifying `dout`. Layers with
parameters also leave their gradients in `dW` and `db`.
"""

import numpy as np

from .functions import sigmoid, softmax, softmax_cross_entropy


class Affine:
    """out = x @ W + b, the fully connected layer."""

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.original_x_shape)

    def __repr__(self):
        return f"Affine({self.W.shape[0]} -> {self.W.shape[1]})"


class Sigmoid:
    """out = sigmoid(x); its local derivative out * (1 - out) needs only the output."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out

    def __repr__(self):
        return "Sigmoid()"


class Relu:
    """out = max(0, x); the gradient passes only where the input was positive."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, 0).astype(x.dtype, copy=False)

    def backward(self, dout):
        return np.where(self.mask, dout, 0).astype(dout.dtype, copy=False)

    def __repr__(self):
        return "Relu()"


class SoftmaxWithLoss:
    """Softmax followed by mean cross-entropy, fused so that backward is simply (y - t) / N.

    `forward(x, t)` takes scores and label or one-hot targets and returns the
    scalar loss; `backward(dout=1)` returns d loss / d scores.
    """

    def __init__(self):
        self.y = None
        self.t = None
        self.loss = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = softmax_cross_entropy(x, t)
        return self.loss

    def backward(self, dout=1.0):
        batch_size = self.y.shape[0]
        dx = self.y.copy()
        if self.t.size == self.y.size:  # one-hot targets
            dx -= self.t
        else:
            dx[np.arange(batch_size), self.t] -= 1
        return dx * (dout / batch_size)

    def __repr__(self):
        return "SoftmaxWithLoss()"


ACTIVATIONS = {"sigmoid": Sigmoid, "relu": Relu}
