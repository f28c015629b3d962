"""The ranges a setting's value may take, each declared once.

A `Range` checks a value given in Python (`check`, raising `ConfigError`)
and parses one typed on the command line (`parse`, for argparse), with the
same words, so a setting is refused the same way wherever it comes from.
This module imports nothing heavy: the command line builds its help from it.
"""

import math
import numbers
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Range:
    """Finite integers or numbers from `low` on (`low` itself allowed unless `strict`), below `below` if given."""

    kind: type  # int or float
    low: float
    strict: bool
    description: str  # how messages name the range: "a positive integer"
    below: float | None = None

    def contains(self, value):
        """Whether `value` is in range: Python or NumPy numbers of the kind (integers count as numbers), no bools."""
        kind = numbers.Real if self.kind is float else numbers.Integral
        if isinstance(value, bool) or not isinstance(value, kind):
            return False
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond float's range: no setting needs one, and sgdlab's JSON refuses it
            return False
        if not finite or (self.below is not None and value >= self.below):
            return False
        return value > self.low if self.strict else value >= self.low

    def check(self, name, value):
        """`value` if it is in range, else a `ConfigError` naming `name`."""
        if not self.contains(value):
            raise ConfigError(f"{name} must be {self.description}, got {value!r}")
        return value

    def parse(self, text):
        """The value that `text` spells, for argparse's `type=`: a ValueError names the range."""
        try:
            value = self.kind(text)
        except ValueError:
            value = None
        if value is None or not self.contains(value):
            raise ValueError(f"must be {self.description}, got {text!r}")
        return value


POSITIVE_INT = Range(int, 1, strict=False, description="a positive integer")
NON_NEGATIVE_INT = Range(int, 0, strict=False, description="a non-negative integer")
NON_NEGATIVE_NUMBER = Range(float, 0, strict=False, description="a non-negative number")
POSITIVE_NUMBER = Range(float, 0, strict=True, description="a positive number")
UNIT_INTERVAL = Range(float, 0, strict=False, description="a number in [0, 1)", below=1)


def check_flag(name, value):
    """`value` if it is True or False, else a `ConfigError` naming `name`."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def check_widths(name, value):
    """`value` as a tuple of positive integers (layer widths), else a `ConfigError` naming `name`."""
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise ConfigError(f"{name} must be one or more positive integers, got {value!r}")
    for width in value:
        if not POSITIVE_INT.contains(width):
            raise ConfigError(f"{name} must be one or more positive integers, got {value!r}")
    return tuple(int(width) for width in value)


def parse_widths(text):
    """Layer widths typed on the command line, "100,100,100" (a ValueError names what is allowed)."""
    try:
        return check_widths("the widths", tuple(int(part) for part in text.split(",")))
    except ValueError:  # not integers, or ConfigError (a ValueError): out of range
        raise ValueError(f"must be positive integers separated by commas, such as 100,100,100, got {text!r}") from None


def parse_names(text):
    """Names typed on the command line, "sgd,adam" (a ValueError for an empty one)."""
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise ValueError(f"must be names separated by commas, such as sgd,adam, got {text!r}")
    return names


def check_choice(name, value, choices):
    """`value` if it is one of `choices`, else a `ConfigError` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
