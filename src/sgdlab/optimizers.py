"""Optimizers: rules that turn gradients into parameter updates.

Each has the book's one-method interface, `update(params, grads)`, and
updates the arrays in `params` in place.
"""

from .errors import ConfigError


class SGD:
    """Stochastic gradient descent: W <- W - lr * dW for every parameter."""

    def __init__(self, lr=0.01):
        if not lr > 0:
            raise ConfigError(f"learning rate must be positive, got {lr}")
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]

    def __repr__(self):
        return f"SGD(lr={self.lr})"
