"""Optimizers: rules that turn gradients into parameter updates, in order of increasing complexity.

Each has the book's one-method interface, `update(params, grads)`, updates
the arrays in `params` in place, and follows the book's update rule exactly
(chapter 6.1, `common/optimizer.py`). The base class owns everything an
optimizer remembers between updates: the count of updates made (`iter`)
and its slots (velocities, sums of squares, moments), one array per
parameter, made on first use; `state()` returns all of it as plain arrays.
A rule writes only its `step`.

Each rule is written once, as in-place NumPy operations on its slots and on
scratch arrays the base class lends it (`_scratch`), with its formula in the
comment beside them: an update then allocates nothing, and makes the very
numbers of the formula written with fresh arrays (the same operations in the
same order: `tests/nn/test_optimizers.py` checks it bit for bit). The rules
are elementwise, so the base class hands `step` the parameters in pieces of
at most `PIECE` values (flat views, their gradients' and slots' alike): the
rule's dozen passes over a piece then find it in the core's cache rather
than in memory, with the same numbers.

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
PIECE = 1 << 15  # values of a parameter a rule updates at a time: its arrays' pieces fit a core's L2 cache


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
        self._whole = None  # during an update, the parameters whole
        self.scratch = {}  # (shape, dtype) -> arrays for a rule's intermediate results, made on first use

    def update(self, params, grads):
        """Count the update, then make the rule's `step`, piece by piece: the arrays of `params` change in place
        by `grads`."""
        self.iter += 1
        self._whole = params  # what `_slot` makes a slot's arrays like
        try:
            for pieces in _pieces(params):
                self.step({piece: _piece_of(params, piece) for piece in pieces},
                          {piece: _piece_of(grads, piece) for piece in pieces})
        finally:
            self._whole = None

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
        """The arrays of `slot` for the pieces of `params` that `step` was given: zeros of each parameter's shape
        and dtype on first use."""
        if slot not in self.slots:
            import numpy as np

            self.slots[slot] = {key: np.zeros_like(param) for key, param in self._whole.items()}
        return {piece: _piece_of(self.slots[slot], piece) for piece in params}

    def _scratch(self, param, count=1):
        """`count` arrays of `param`'s shape and dtype to hold a rule's intermediate results: the same ones for
        every parameter of that shape and dtype and at every update (their values are not kept)."""
        arrays = self.scratch.get((param.shape, param.dtype), ())
        if len(arrays) < count:
            import numpy as np

            arrays = self.scratch[param.shape, param.dtype] = tuple(np.empty_like(param) for _ in range(count))
        return arrays[:count]

    def __repr__(self):
        settings = ", ".join(f"{name}={getattr(self, name)}" for name in ("lr", *self.hyperparameters))
        return f"{type(self).__name__}({settings})"


def _pieces(params):
    """The pieces of `params`' arrays an update goes through, in groups for one `step` each: (key, start, stop)
    of a flat view, at most PIECE values of one parameter (a non-contiguous array in one piece, as it is)."""
    group, size = [], 0
    for key, param in params.items():
        whole = not param.flags.c_contiguous
        for start in range(0, param.size, PIECE) if not whole else (0,):
            stop = param.size if whole else min(start + PIECE, param.size)
            if size + stop - start > PIECE and group:
                yield group
                group, size = [], 0
            group.append((key, start, stop) if not whole else (key, None, None))
            size += stop - start
    if group:
        yield group


def _piece_of(arrays, piece):
    """The view of `arrays[key]` a piece (key, start, stop) names; the whole array where start is None."""
    key, start, stop = piece
    array = arrays[key]
    return array if start is None else array.reshape(-1)[start:stop]


class SGD(Optimizer):
    """Stochastic gradient descent: W <- W - lr * dW for every parameter."""

    name = "sgd"

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def step(self, params, grads):
        import numpy as np

        for key in params:
            step, = self._scratch(params[key])
            params[key] -= np.multiply(self.lr, grads[key], out=step)  # W -= lr * dW


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
        import numpy as np

        v = self._slot("v", params)
        for key in params:
            step, = self._scratch(params[key])
            v[key] *= self.momentum  # v = momentum * v - lr * dW
            v[key] -= np.multiply(self.lr, grads[key], out=step)
            params[key] += v[key]  # W += v


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
        import numpy as np

        v = self._slot("v", params)
        for key in params:
            step, = self._scratch(params[key])
            params[key] += np.multiply(self.momentum * self.momentum, v[key], out=step)  # W += momentum^2 * v
            params[key] -= np.multiply((1 + self.momentum) * self.lr, grads[key], out=step)  # - (1 + momentum) lr dW
            v[key] *= self.momentum  # v = momentum * v - lr * dW
            v[key] -= np.multiply(self.lr, grads[key], out=step)


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
            step, root = self._scratch(params[key], 2)
            h[key] += np.multiply(grads[key], grads[key], out=step)  # h += dW * dW
            params[key] -= scaled_step(self.lr, grads[key], h[key], step, root)  # W -= lr * dW / (sqrt(h) + 1e-7)


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
            step, root = self._scratch(params[key], 2)
            h[key] *= self.decay_rate  # h = decay_rate * h + (1 - decay_rate) * dW * dW
            step = np.multiply(1 - self.decay_rate, grads[key], out=step)
            h[key] += np.multiply(step, grads[key], out=step)
            params[key] -= scaled_step(self.lr, grads[key], h[key], step, root)  # W -= lr * dW / (sqrt(h) + 1e-7)


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
            step, root = self._scratch(params[key], 2)
            step = np.subtract(grads[key], m[key], out=step)  # m += (1 - beta1) * (dW - m)
            m[key] += np.multiply(1 - self.beta1, step, out=step)
            step = np.square(grads[key], out=step)  # v += (1 - beta2) * (dW ** 2 - v)
            step -= v[key]
            v[key] += np.multiply(1 - self.beta2, step, out=step)
            params[key] -= scaled_step(lr_t, m[key], v[key], step, root)  # W -= lr_t * m / (sqrt(v) + 1e-7)


def scaled_step(lr, direction, squares, step, root):
    """lr * direction / (sqrt(squares) + 1e-7), AdaGrad's, RMSprop's and Adam's step, into `step` (`root` holds
    the denominator): the formula's operations in its order, so its numbers exactly."""
    import numpy as np

    root = np.sqrt(squares, out=root)
    root += 1e-7
    step = np.multiply(lr, direction, out=step)
    step /= root
    return step
