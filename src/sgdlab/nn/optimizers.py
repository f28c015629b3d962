"""Optimizers: rules that turn gradients into parameter updates, in order of increasing complexity.

Each has the book's one-method interface, `update(params, grads)`, updates
the arrays in `params` in place, and follows the book's update rule exactly
(chapter 6.1, `common/optimizer.py`). What an optimizer remembers between
updates (velocities, sums of squares, moments) is created on the first
call, one array per parameter, and `state()` returns all of it as plain
arrays. Adding one is writing its class here with a `name`: the
configuration and the command line find it in `OPTIMIZERS`. (This module
imports NumPy only when an update needs it: the command line lists the
names in its help.)
"""

import math

from ..ranges import POSITIVE_NUMBER, UNIT_INTERVAL

OPTIMIZERS = {}  # name -> class, filled as the classes below are defined


class Optimizer:
    """What every optimizer shares: a learning rate, its registration by `name`, and its state."""

    name = None
    default_lr = None  # the book's default learning rate for this rule
    hyperparameters = ()  # its keywords besides lr

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls) or cls.name in OPTIMIZERS:
            raise TypeError(f"{cls.__name__} needs a name of its own: set name = '...' other than {sorted(OPTIMIZERS)}")
        OPTIMIZERS[cls.name] = cls

    def __init__(self, lr):
        self.lr = POSITIVE_NUMBER.check("the learning rate", lr)
        self.slots = {}  # slot name -> {parameter key -> array}, made on the first update

    def update(self, params, grads):
        raise NotImplementedError

    def state(self):
        """Everything the optimizer remembers, as plain arrays keyed `slot/parameter` (e.g. `v/W1`); Adam adds
        its update count as `iter`."""
        return {f"{slot}/{key}": array for slot, arrays in self.slots.items() for key, array in arrays.items()}

    def load_state(self, state):
        """Continue where an optimizer of this kind left off: its `state()` copied in."""
        self.slots = {}
        for name, array in state.items():
            slot, _, key = name.partition("/")
            if key:
                self.slots.setdefault(slot, {})[key] = array.copy()

    def _slot(self, slot, params):
        """The arrays of `slot`, one per parameter: zeros of its shape and dtype on first use."""
        if slot not in self.slots:
            import numpy as np

            self.slots[slot] = {key: np.zeros_like(param) for key, param in params.items()}
        return self.slots[slot]

    def __repr__(self):
        settings = ", ".join(f"{name}={getattr(self, name)}" for name in ("lr", *self.hyperparameters))
        return f"{type(self).__name__}({settings})"


class SGD(Optimizer):
    """Stochastic gradient descent: W <- W - lr * dW for every parameter."""

    name = "sgd"
    default_lr = 0.01

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum(Optimizer):
    """Momentum SGD: v <- momentum * v - lr * dW;  W <- W + v.

    The update keeps rolling the way it has been going, like a ball on the
    loss surface; `momentum` is how much of its velocity it keeps (Polyak
    1964; Rumelhart, Hinton and Williams 1986).
    """

    name = "momentum"
    default_lr = 0.01
    hyperparameters = ("momentum",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = UNIT_INTERVAL.check("momentum", momentum)

    def update(self, params, grads):
        v = self._slot("v", params)
        for key in params:
            v[key] = self.momentum * v[key] - self.lr * grads[key]
            params[key] += v[key]


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient in the book's form (Bengio et al. 2012, http://arxiv.org/abs/1212.0901):

    v <- momentum * v - lr * dW;  W <- W + momentum^2 * v - (1 + momentum) * lr * dW:
    the momentum step looks one step ahead, rewritten so that only the current gradient is needed.
    """

    name = "nesterov"
    default_lr = 0.01
    hyperparameters = ("momentum",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = UNIT_INTERVAL.check("momentum", momentum)

    def update(self, params, grads):
        v = self._slot("v", params)
        for key in params:
            v[key] *= self.momentum
            v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class AdaGrad(Optimizer):
    """AdaGrad: h <- h + dW * dW;  W <- W - lr * dW / (sqrt(h) + 1e-7).

    Each parameter's step shrinks as its squared gradients add up, so the
    parameters that have moved much move less (Duchi, Hazan and Singer 2011).
    """

    name = "adagrad"
    default_lr = 0.01

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def update(self, params, grads):
        import numpy as np

        h = self._slot("h", params)
        for key in params:
            h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(h[key]) + 1e-7)


class RMSprop(Optimizer):
    """RMSprop: h <- decay_rate * h + (1 - decay_rate) * dW * dW;  W <- W - lr * dW / (sqrt(h) + 1e-7).

    AdaGrad with a memory that fades, so the steps do not shrink to nothing
    (Tieleman and Hinton 2012, lecture 6.5 of "Neural Networks for Machine Learning").
    """

    name = "rmsprop"
    default_lr = 0.01
    hyperparameters = ("decay_rate",)

    def __init__(self, lr=0.01, decay_rate=0.99):
        super().__init__(lr)
        self.decay_rate = UNIT_INTERVAL.check("decay_rate", decay_rate)

    def update(self, params, grads):
        import numpy as np

        h = self._slot("h", params)
        for key in params:
            h[key] *= self.decay_rate
            h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(h[key]) + 1e-7)


class Adam(Optimizer):
    """Adam in the book's form (Kingma and Ba 2015, http://arxiv.org/abs/1412.6980v8):

    m <- m + (1 - beta1) (dW - m);  v <- v + (1 - beta2) (dW^2 - v);
    W <- W - lr_t * m / (sqrt(v) + 1e-7)  with  lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t):
    momentum (m) and AdaGrad-like scaling (v), corrected through lr_t for starting at zero.
    """

    name = "adam"
    default_lr = 0.001
    hyperparameters = ("beta1", "beta2")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        super().__init__(lr)
        self.beta1 = UNIT_INTERVAL.check("beta1", beta1)
        self.beta2 = UNIT_INTERVAL.check("beta2", beta2)
        self.iter = 0  # updates made: t in the correction

    def update(self, params, grads):
        import numpy as np

        m, v = self._slot("m", params), self._slot("v", params)
        self.iter += 1
        # a Python float, so that float32 parameters are updated in float32
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params:
            m[key] += (1 - self.beta1) * (grads[key] - m[key])
            v[key] += (1 - self.beta2) * (grads[key] ** 2 - v[key])
            params[key] -= lr_t * m[key] / (np.sqrt(v[key]) + 1e-7)

    def state(self):
        import numpy as np

        return {**super().state(), "iter": np.array(self.iter)} if self.slots else {}

    def load_state(self, state):
        super().load_state(state)
        self.iter = int(state["iter"]) if "iter" in state else 0
