"""The settings of a training run, in one place, each with the book's default."""

import dataclasses
from dataclasses import dataclass

from .errors import ConfigError

ACTIVATIONS = ("sigmoid", "relu")  # the hidden activations sgdlab.layers provides
GRAD_METHODS = ("backprop", "numerical")
DTYPES = ("float32", "float64")
SAMPLING_METHODS = ("random", "epoch")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; the defaults are chapter 4's.

    Invalid values raise `ConfigError` (a `ValueError`) when the config is made,
    not minutes into training.
    """

    iters: int = 10_000  # mini-batch updates in total
    batch_size: int = 100  # samples per mini-batch
    lr: float = 0.1  # SGD step size
    hidden_size: int = 50  # units in the hidden layer
    weight_init_std: float = 0.01  # initial weights ~ N(0, weight_init_std^2)
    activation: str = "sigmoid"  # hidden activation: "sigmoid" (the book) or "relu"
    grad: str = "backprop"  # how gradients are computed: "backprop" or "numerical"
    sampling: str = "random"  # "random": each batch drawn independently (the book); "epoch": shuffle, no replacement
    seed: int = 0  # drives weight init and batch sampling: same seed, same run, bit for bit
    dtype: str | None = None  # "float32" or "float64"; None: float32 for backprop, float64 for numerical

    def __post_init__(self):
        for name in ("iters", "batch_size", "hidden_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "weight_init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if self.grad not in GRAD_METHODS:
            raise ConfigError(f"grad must be one of {', '.join(GRAD_METHODS)}, got {self.grad!r}")
        if self.sampling not in SAMPLING_METHODS:
            raise ConfigError(f"sampling must be one of {', '.join(SAMPLING_METHODS)}, got {self.sampling!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.grad == "numerical" and self.network_dtype != "float64":
            raise ConfigError("numerical gradients need float64: in float32 the loss changes made by h=1e-4 "
                              "drown in rounding error; use dtype float64 (the default for numerical gradients)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def network_dtype(self):
        """The float type the run computes in: `dtype`, else the default for the gradient method."""
        if self.dtype is not None:
            return self.dtype
        return "float64" if self.grad == "numerical" else "float32"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """A config from `to_dict()` output; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}: expected some of {sorted(known)}")
        return cls(**values)
