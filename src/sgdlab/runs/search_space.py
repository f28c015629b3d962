"""What a hyperparameter search varies: one `Search` per setting, parsed from `NAME=KIND:LOW:HIGH`.

A trial's value of each searched setting is drawn from a generator seeded
by the sweep's seed and the trial's number alone, so trial i is the same
whoever trains it and whenever. The kinds are the book's `10 **
np.random.uniform(-6, -2)` (log), a plain uniform, an integer and a choice.
After a round, `narrow` takes the ranges to the span of the best trials,
as chapter 6.5 advises doing by hand.
"""

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..data.mnist import NUM_CLASSES, SAMPLE_SHAPE
from ..errors import ConfigError
from ..ranges import check_choice
from ..training.config import SHAPE_SETTINGS, TrainConfig

KINDS = ("log", "uniform", "int", "choice")
# the trial's seed, settings no range can describe, and when the test set is measured (never a result)
NOT_SEARCHED = ("seed", "iters", "epochs", "hidden_sizes", "test_eval")
MAX_CORNERS = 16384  # combinations of range ends and choices checked before a sweep starts
BEST_FRACTION = 0.2  # the share of a round's trials, at least 2, whose span the next round searches


@dataclass(frozen=True)
class Search:
    """One searched setting: `name` (a TrainConfig field), its `kind`, and its range (`low`, `high`, both
    included) or its `choices`."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()

    def value(self, u):
        """The value at `u` in [0, 1): evenly spread over the range (over its logarithm for `log`)."""
        if self.kind == "log":
            return float(10 ** (math.log10(self.low) + u * (math.log10(self.high) - math.log10(self.low))))
        if self.kind == "uniform":
            return float(self.low + u * (self.high - self.low))
        if self.kind == "int":
            return int(min(self.high, self.low + math.floor(u * (self.high - self.low + 1))))
        return self.choices[min(len(self.choices) - 1, math.floor(u * len(self.choices)))]

    def narrowed(self, best_values):
        """This search over the span of `best_values` (the best trials' values): their smallest to their
        largest, or the choices among them."""
        if self.kind == "choice":
            return dataclasses.replace(self, choices=tuple(c for c in self.choices if c in best_values))
        return dataclasses.replace(self, low=min(best_values), high=max(best_values))

    def spec(self):
        """The text `parse_search` reads back into this search."""
        if self.kind == "choice":
            return f"{self.name}=choice:{','.join(str(c) for c in self.choices)}"
        return f"{self.name}={self.kind}:{self.low!r}:{self.high!r}"

    def corners(self):
        """The values at the search's edges: its range's ends, or every choice; every integer of the range for a
        setting of a layer's shape, whose values fit the input one by one (`SHAPE_SETTINGS`), not as a range."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int" and self.name in SHAPE_SETTINGS:
            return tuple(range(self.low, self.high + 1))
        return (self.low, self.high)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """The search `values` describe (as `to_dict` gives it), checked as `parse_search` checks a --search."""
        try:
            search = cls(**{**values, "choices": tuple(values.get("choices", ()))})
            if search.kind not in KINDS:
                raise ValueError(f"unknown kind {search.kind!r}")
            checked = parse_search(search.spec())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"not a search ({exc})") from None
        if checked != search:
            raise ConfigError(f"not a search as --search {search.spec()!r} gives it")
        return search


def parse_search(text):
    """The `Search` that `text`, such as `lr=log:1e-6:1e-2` or `optimizer=choice:sgd,adam`, spells; a
    `ConfigError` saying what is wrong and what would do otherwise."""
    usage = ("expected NAME=KIND:LOW:HIGH (KIND log, uniform or int) or NAME=choice:A,B,..., such as "
             "lr=log:1e-6:1e-2")
    name, equals, rest = text.partition("=")
    kind, colon, bounds = rest.partition(":")
    name, kind = name.strip().replace("-", "_"), kind.strip()
    if not equals or not colon:
        raise ConfigError(f"--search {text!r}: {usage}")
    spec = _field(name, text)
    if kind not in KINDS:
        raise ConfigError(f"--search {text!r}: unknown kind {kind!r}, choose among {', '.join(KINDS)}")
    if kind == "choice":
        return Search(name, kind, choices=tuple(_parse_value(spec, part.strip(), text) for part in bounds.split(",")))
    parts = bounds.split(":")
    if len(parts) != 2:
        raise ConfigError(f"--search {text!r}: {kind} needs LOW:HIGH, got {bounds!r}")
    number = int if kind == "int" else float
    try:
        low, high = (number(part) for part in parts)
    except ValueError:
        raise ConfigError(f"--search {text!r}: LOW and HIGH must be {'integers' if kind == 'int' else 'numbers'}, "
                          f"got {bounds!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"--search {text!r}: LOW must not be above HIGH, and both must be finite")
    if kind == "log" and low <= 0:
        raise ConfigError(f"--search {text!r}: a log range needs LOW above 0 (10**LOW is not meant: write 1e-6, "
                          "not -6)")
    if kind != "int" and _is_int_field(spec):
        raise ConfigError(f"--search {text!r}: {name} takes integers: use {name}=int:LOW:HIGH")
    for bound in (low, high):  # the range's ends must be values the setting takes
        _check_value(spec, bound, text)
    return Search(name, kind, low, high)


def check_searches(searches, fixed, train_images=None, runs=1):
    """Refuse a sweep whose searches repeat a setting or contradict the fixed settings (`fixed`, a dict of
    TrainConfig fields), by building now a trial at every combination of the ranges' ends and the choices
    (the settings' limits are ranges, so a trial inside passes if those at the corners do; the sizes of a
    layer's shape are each checked, see `Search.corners`); with
    `train_images`, also one that could not train on that many images, or not with `runs` trials side by
    side in this machine's memory."""
    names = [search.name for search in searches]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"--search names {', '.join(repeated)} more than once: give one range per setting")
    if not searches:
        raise ConfigError("give at least one --search NAME=KIND:LOW:HIGH: a sweep varies something")
    overlap = sorted(set(names) & set(fixed))
    if overlap:
        raise ConfigError(f"{', '.join(overlap)} is both searched and fixed: leave out its option or its --search")
    corners = math.prod(len(search.corners()) for search in searches)
    if corners > MAX_CORNERS:
        raise ConfigError(f"these searches make {corners} combinations of range ends and choices, more than the "
                          f"{MAX_CORNERS} a sweep checks before it starts: search fewer settings or fewer choices")
    for corner in itertools.product(*(search.corners() for search in searches)):
        try:
            config = TrainConfig(**fixed, **dict(zip(names, corner)))
            _, layers = config.planned_layers(SAMPLE_SHAPE, NUM_CLASSES)  # its layers fit MNIST's images
            if train_images is not None:
                config.checked_data_rows(train_images, sum(len(layer.decayed_names) for layer in layers))
                config.check_memory(SAMPLE_SHAPE, NUM_CLASSES, runs)
        except ConfigError as exc:
            raise ConfigError(f"a trial of this sweep would be refused: {exc}") from None


def draw_trial(searches, sweep_seed, trial):
    """`(settings, seed)` of trial number `trial`: a value per search and the trial's own training seed, drawn
    from the sweep's seed and `trial` alone."""
    rng = np.random.default_rng([sweep_seed, trial])
    settings = {search.name: search.value(float(rng.random())) for search in searches}
    return settings, int(rng.integers(2**31))


def narrow(searches, ranked_settings):
    """The searches of the next round: each over the span of the best trials' values, `ranked_settings` being
    the finished trials' settings, best first."""
    if len(ranked_settings) < 2:  # no span to narrow to
        return searches
    best = ranked_settings[:max(2, math.ceil(BEST_FRACTION * len(ranked_settings)))]
    return [search.narrowed([settings[search.name] for settings in best]) for search in searches]


def _field(name, text):
    fields = {spec.name: spec for spec in dataclasses.fields(TrainConfig)}
    if name not in fields or name in NOT_SEARCHED:
        searchable = [field for field in fields if field not in NOT_SEARCHED]
        raise ConfigError(f"--search {text!r}: {name!r} is not a setting a sweep can search; choose among "
                          f"{', '.join(searchable)}")
    return fields[name]


def _is_int_field(spec):
    parse = spec.metadata["parse"]
    return getattr(getattr(parse, "__self__", None), "kind", None) is int  # a Range of integers


def _parse_value(spec, part, text):
    """A choice's value, read as its option on the command line reads it."""
    try:
        if spec.metadata["choices"] is not None:
            if part not in spec.metadata["choices"]:
                raise ValueError(f"must be one of {', '.join(spec.metadata['choices'])}")
            value = part
        elif spec.metadata["parse"] is not None:
            value = spec.metadata["parse"](part)
        else:  # a flag
            value = {"true": True, "false": False}.get(part.lower())
            if value is None:
                raise ValueError("must be true or false")
    except ValueError as exc:
        got = "" if repr(part) in str(exc) else f", got {part!r}"
        raise ConfigError(f"--search {text!r}: {spec.name} {exc}{got}") from None
    _check_value(spec, value, text)
    return value


def _check_value(spec, value, text):
    """Refuse a value outside the setting's own range (whether it fits the other settings is checked later)."""
    check = spec.metadata["check"] or (lambda name, value: check_choice(name, value, spec.metadata["choices"]))
    try:
        check(spec.name, value)
    except ConfigError as exc:
        raise ConfigError(f"--search {text!r}: {exc}") from None
