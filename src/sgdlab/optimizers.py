"""Optimizers: rules that turn gradients into parameter updates.

Each has the book's one-method interface, `update(params, grads)`, and
updates the arrays in `params` in place.
"""

import numpy as np

from .errors import ConfigError


class SGD:
    """Stochastic gradient descent: W <- W - lr * dW for every parameter."""

    def __init__(self, lr=0.01):
        if not lr > 0:
            raise ConfigError(f"learning rate must be positive, got {lr}")
        self.lr = lr
        self._steps = {}  # one reused buffer per parameter for lr * grad: no allocation per update

    def update(self, params, grads):
        for key, param in params.items():
            step = self._steps.get(key)
            if step is None or step.shape != param.shape or step.dtype != param.dtype:
                step = self._steps[key] = np.empty_like(param)
            np.multiply(grads[key], self.lr, out=step)
            param -= step

    def __repr__(self):
        return f"SGD(lr={self.lr})"
