"""Optimizers: rules that turn gradients into parameter updates.

Each has the book's one-method interface, `update(params, grads)`, and
updates the arrays in `params` in place. Adding one is writing its class
here with a `name`: the configuration and the command line find it in
`OPTIMIZERS`. (This module imports nothing heavy: the command line lists
the names in its help.)
"""

from ..ranges import POSITIVE_NUMBER

OPTIMIZERS = {}  # name -> class, filled as the classes below are defined


class Optimizer:
    """What every optimizer shares: a learning rate, checked once, and its registration by `name`."""

    name = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls) or cls.name in OPTIMIZERS:
            raise TypeError(f"{cls.__name__} needs a name of its own: set name = '...' other than {sorted(OPTIMIZERS)}")
        OPTIMIZERS[cls.name] = cls

    def __init__(self, lr):
        self.lr = POSITIVE_NUMBER.check("the learning rate", lr)

    def update(self, params, grads):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(Optimizer):
    """Stochastic gradient descent: W <- W - lr * dW for every parameter."""

    name = "sgd"

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]
