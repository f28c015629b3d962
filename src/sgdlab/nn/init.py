"""Initial weights: how large the random starting weights of each layer are.

`weight_init_std` is a number (every weight drawn from N(0, std^2), the
book's 0.01 for the two-layer net) or the name of a scale that depends on
the layer's fan-in n: "xavier" (or "sigmoid") std = sqrt(1 / n), Glorot and
Bengio 2010, for sigmoid and tanh; "he" (or "relu") std = sqrt(2 / n), He et
al. 2015, for ReLU. Biases start at zero.
"""

import math

from ..errors import ConfigError
from ..ranges import POSITIVE_NUMBER

SCALED_INITS = {"xavier": 1.0, "sigmoid": 1.0, "he": 2.0, "relu": 2.0}  # std = sqrt(scale / fan_in)


DESCRIPTION = f"a positive number or one of {', '.join(SCALED_INITS)}"


def check_weight_init(name, value):
    """`value` if it is a positive number or one of `SCALED_INITS`; else a `ConfigError` naming `name`."""
    valid = value in SCALED_INITS if isinstance(value, str) else POSITIVE_NUMBER.contains(value)
    if not valid:
        raise ConfigError(f"{name} must be {DESCRIPTION}, got {value!r}")
    return value


def parse_weight_init(text):
    """A `weight_init_std` typed on the command line: a number or a scale's name (a ValueError says which)."""
    if text in SCALED_INITS:
        return text
    try:
        return check_weight_init("weight_init_std", float(text))
    except ValueError:  # not a number, or ConfigError (a ValueError): out of range
        raise ValueError(f"must be {DESCRIPTION}, got {text!r}") from None


def init_std(weight_init_std, fan_in):
    """The standard deviation of a layer's initial weights."""
    if isinstance(weight_init_std, str):
        return math.sqrt(SCALED_INITS[weight_init_std] / fan_in)
    return weight_init_std


def initial_weights(fan_in, fan_out, weight_init_std, rng, dtype):
    """A (fan_in, fan_out) weight matrix drawn from `rng` (a numpy Generator); `fan_out` may be a whole shape
    (a convolution's (FN, C, FH, FW) filters, whose fan-in is C * FH * FW)."""
    shape = fan_out if isinstance(fan_out, tuple) else (fan_in, fan_out)
    return (init_std(weight_init_std, fan_in) * rng.standard_normal(shape)).astype(dtype)


class InitialParameters:
    """What a layer kind's `from_spec` builds its parameters with: random weights (`weights(shape, fan_in)`,
    drawn from `rng` in the order the layers ask), zeros and ones, in `dtype`; `rng` also draws dropout's
    masks. (NumPy is imported where it is used: the command line's help reads this module's scales.)"""

    def __init__(self, weight_init_std, rng, dtype):
        self.weight_init_std = weight_init_std
        self.rng = rng
        self.dtype = dtype

    def weights(self, shape, fan_in):
        return initial_weights(fan_in, tuple(shape), self.weight_init_std, self.rng, self.dtype)

    def zeros(self, shape):
        import numpy as np

        return np.zeros(shape, self.dtype)

    def ones(self, shape):
        import numpy as np

        return np.ones(shape, self.dtype)


class ParameterShapes(InitialParameters):
    """Parameters of the right shapes that take no memory (read-only views of one zero): a network's layers
    planned, their shapes checked and their parameters counted, before anything is allocated or drawn. More
    than `limit` parameters in all is a `ConfigError`, raised before the view that would pass it is made."""

    def __init__(self, dtype, limit):
        super().__init__(1.0, None, dtype)
        self.limit = limit
        self.count = 0

    def weights(self, shape, fan_in):
        return self.zeros(shape)

    def zeros(self, shape):
        import numpy as np

        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.count += math.prod(shape)
        if self.count > self.limit:
            raise ConfigError(f"these layers make more than the {self.limit:,} parameters sgdlab builds: choose "
                              "fewer filters or narrower layers")
        return np.broadcast_to(np.zeros((), self.dtype), shape)

    ones = zeros
