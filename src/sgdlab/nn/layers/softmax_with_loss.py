"""The output layer: softmax and cross-entropy, fused."""

import numpy as np

from ..functions import softmax, softmax_cross_entropy


class SoftmaxWithLoss:
    """Softmax followed by mean cross-entropy, fused so that backward is simply (y - t) / N.

    `forward(x, t)` takes scores and label or one-hot targets and returns the
    scalar loss; `backward(dout=1)` returns d loss / d scores. The training
    step computes the same in place: `functions.softmax_cross_entropy_in_place`.
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
