"""Optimizers: rules that turn gradients into parameter updates, in order of increasing complexity.

Each has the book's one-method interface, `update(params, grads)`, updates
the arrays in `params` in place, and follows the book's update rule exactly
(chapter 6.1, `common/optimizer.py`). The base class owns everything an
optimizer remembers between updates: the count of updates made (`iter`)
and its slots (velocities, sums of squares, moments), one array per
parameter, made on first use; `state()` returns all of it as plain arrays.
A rule writes only its `step`.

Adding one is writing its class here with a `name`, its book's defaults in
`__init__`'s signature and the range of each keyword besides `lr` in
`hyperparameters`: the configuration and the command line find it in
`OPTIMIZERS`. (This module imports NumPy only when an update needs it: the
command line lists the names in its help.)
"""

import inspect
import math

from ..ranges import POSITIVE_NUMBER, UNIT_INTERVAL

OPTIMIZERS = {}  # name -> class, filled as the classes below are defined
COUNT = "iter"  # the state's name for the number of updates made


class Optimizer:
    """What every optimizer shares: a learning rate, its registration by `name`, its hyperparameters, its state."""

    name = None
    default_lr = None  # the book's default learning rate for this rule: the one in its __init__
    hyperparameters = {}  # its keywords besides lr -> the Range each takes (their defaults are in __init__)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls) or cls.name in OPTIMIZERS:
            raise TypeError(f"{cls.__name__} needs a name of its own: set name = '...' other than {sorted(OPTIMIZERS)}")
        keywords = dict(inspect.signature(cls.__init__).parameters)
        keywords.pop("self")
        lr = keywords.pop("lr", None)
        if lr is None or lr.default is inspect.Parameter.empty or set(keywords) != set(cls.hyperparameters):
            raise TypeError(f"{cls.__name__} needs __init__(self, lr=<the book's default>, <each hyperparameter>=...)"
                            f" and the range of each hyperparameter in `hyperparameters` (it declares "
                            f"{sorted(cls.hyperparameters)}; its __init__ takes {sorted(keywords)})")
        cls.default_lr = lr.default
        OPTIMIZERS[cls.name] = cls

    def __init__(self, lr, **hyperparameters):
        self.lr = POSITIVE_NUMBER.check("the learning rate", lr)
        for name, value in hyperparameters.items():
            setattr(self, name, self.hyperparameters[name].check(name, value))
        self.iter = 0  # updates made: t in Adam's bias correction
        self.slots = {}  # slot name -> {parameter key -> array}, made on first use

    def update(self, params, grads):
        """Count the update, then make the rule's `step`: the arrays of `params` change in place by `grads`."""
        self.iter += 1
        self.step(params, grads)

    def step(self, params, grads):
        """The rule itself, made at update number `self.iter` (1 for the first): what each optimizer writes."""
        raise NotImplementedError

    def state(self):
        """Everything the optimizer remembers, as plain arrays: the updates made as `iter` and each slot's arrays
        keyed `slot/parameter` (e.g. `v/W1`); empty before the first update."""
        if not self.iter:
            return {}
        import numpy as np

        slots = {f"{slot}/{key}": array for slot, arrays in self.slots.items() for key, array in arrays.items()}
        return {COUNT: np.array(self.iter), **slots}

    def load_state(self, state):
        """Continue where an optimizer of this kind left off: its `state()` copied in."""
        self.iter = int(state[COUNT]) if COUNT in state else 0
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

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def step(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum(Optimizer):
    """Momentum SGD: v <- momentum * v - lr * dW;  W <- W + v.

    The update keeps rolling the way it has been going, like a ball on the
    loss surface; `momentum` is how much of its velocity it keeps (Polyak
    1964; Rumelhart, Hinton and Williams 1986).
    """

    name = "momentum"
    hyperparameters = {"momentum": UNIT_INTERVAL}

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr, momentum=momentum)

    def step(self, params, grads):
        v = self._slot("v", params)
        for key in params:
            v[key] = self.momentum * v[key] - self.lr * grads[key]
            params[key] += v[key]


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient in the book's form (Bengio et al. 2012, http://arxiv.org/abs/1212.0901):

    W <- W + momentum^2 * v - (1 + momentum) * lr * dW;  then  v <- momentum * v - lr * dW.

    Nesterov's method measures the gradient at the lookahead point
    P = W + momentum * v: v' = momentum * v - lr * dW(P), W' = W + v'.
    Written for P itself, which is what the network holds and where the
    gradient is measured, that is P' = P + momentum^2 * v - (1 + momentum)
    * lr * dW, with the velocity from *before* this step: only the current
    gradient is needed. The book's repository fixed this order in January
    2021 ("Fix Nesterov update function"); its earlier code updated v
    first, as sgdlab 0.1.0 did, which is not Nesterov's method.
    """

    name = "nesterov"
    hyperparameters = {"momentum": UNIT_INTERVAL}

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr, momentum=momentum)

    def step(self, params, grads):
        v = self._slot("v", params)
        for key in params:
            params[key] += self.momentum * self.momentum * v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            v[key] *= self.momentum
            v[key] -= self.lr * grads[key]


class AdaGrad(Optimizer):
    """AdaGrad: h <- h + dW * dW;  W <- W - lr * dW / (sqrt(h) + 1e-7).

    Each parameter's step shrinks as its squared gradients add up, so the
    parameters that have moved much move less (Duchi, Hazan and Singer 2011).
    """

    name = "adagrad"

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def step(self, params, grads):
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
    hyperparameters = {"decay_rate": UNIT_INTERVAL}

    def __init__(self, lr=0.01, decay_rate=0.99):
        super().__init__(lr, decay_rate=decay_rate)

    def step(self, params, grads):
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
    momentum (m) and AdaGrad-like scaling (v), corrected through lr_t for starting at zero;
    t is the update's number, `self.iter`.
    """

    name = "adam"
    hyperparameters = {"beta1": UNIT_INTERVAL, "beta2": UNIT_INTERVAL}

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        super().__init__(lr, beta1=beta1, beta2=beta2)

    def step(self, params, grads):
        import numpy as np

        m, v = self._slot("m", params), self._slot("v", params)
        # a Python float, so that float32 parameters are updated in float32
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params:
            m[key] += (1 - self.beta1) * (grads[key] - m[key])
            v[key] += (1 - self.beta2) * (grads[key] ** 2 - v[key])
            params[key] -= lr_t * m[key] / (np.sqrt(v[key]) + 1e-7)
