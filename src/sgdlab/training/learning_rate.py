"""The learning rate in force at each update: the run's rate, its schedule, and the changes made during the run.

A schedule multiplies the run's rate by a factor that depends on how many
updates were made before this one (t, counted from 0):

- `constant`: 1, the book's runs.
- `step:EPOCHS:FACTOR`: FACTOR ** (t // (EPOCHS * iterations per epoch)): the rate multiplied by FACTOR
  every EPOCHS epochs.
- `cosine`: (1 + cos(pi * t / T)) / 2 over the run's T updates: the full rate for the first update, falling
  smoothly towards 0 (its last update's rate is lr * (1 - cos(pi / T)) / 2, just above 0). It is computed as
  cos(pi * t / (2 T)) ** 2, the same number without the cancellation of 1 + cos near the end.

A rate set during the run (the lab page's, or `sgdlab train --resume RUN --lr X`) rescales the schedule:
set to x after n updates, the rate of update t > n is x * factor(t) / factor(n), so the schedule goes
on from x as it would have gone on from the rate it replaced (with `constant`, x itself from then on).

`LearningRate.of_update` is the one definition: the trainer sets the optimizer's rate from it before
every update, the history records it at each evaluation, and a continued run recomputes it from the
settings and the history's `lr_changes`, which its checkpoint holds.
"""

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..ranges import POSITIVE_INT

USAGE = "constant, step:EPOCHS:FACTOR (such as step:5:0.5: halved every 5 epochs) or cosine"


def parse_lr_schedule(text):
    """A schedule as typed (`step:5:0.5`), in the form config.json keeps it; a ValueError says what is allowed."""
    kind, *parts = text.strip().split(":")
    if kind in ("constant", "cosine") and not parts:
        return kind
    if kind == "step":
        try:
            epochs, factor = int(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            epochs = factor = None
        if len(parts) == 2 and epochs is not None and POSITIVE_INT.contains(epochs) and 0 < factor <= 1:
            return f"step:{epochs}:{factor!r}"
        raise ValueError(f"step:EPOCHS:FACTOR needs a positive whole number of epochs and a factor in (0, 1], "
                         f"got {text!r}")
    raise ValueError(f"must be {USAGE}, got {text!r}")


def check_lr_schedule(name, value):
    """`value` in the form config.json keeps it (`step:5:.5` as `step:5:0.5`), else a ConfigError naming `name`."""
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be {USAGE}, got {value!r}")
    try:
        return parse_lr_schedule(value)
    except ValueError as exc:
        raise ConfigError(f"{name} {exc}") from None


@dataclass(frozen=True)
class LearningRate:
    """The rate of every update of a run: `initial` (the settings' rate), `schedule`, the run's `iterations`
    and `iters_per_epoch` (which the step schedule counts epochs by)."""

    initial: float
    schedule: str
    iterations: int
    iters_per_epoch: int

    @classmethod
    def of(cls, config, iterations, iters_per_epoch):
        """The rates of a run of `config`; a `ConfigError` if its schedule takes the rate to 0 (below the
        smallest float) before the run ends."""
        rates = cls(config.learning_rate, config.lr_schedule, iterations, iters_per_epoch)
        last = rates.of_update(iterations - 1) if iterations else rates.initial
        if last == 0:
            raise ConfigError(f"lr_schedule {config.lr_schedule} takes the rate {config.learning_rate:g} to 0 before "
                              f"the run's {iterations} updates end: use a factor nearer 1 or more epochs a step")
        return rates

    def factor(self, t):
        """The schedule's factor for the update made after `t` others."""
        kind, *parts = self.schedule.split(":")
        if kind == "step":
            epochs, factor = int(parts[0]), float(parts[1])
            return factor ** (t // (epochs * self.iters_per_epoch))
        if kind == "cosine":
            return math.cos(math.pi * t / (2 * self.iterations)) ** 2
        return 1.0

    def of_update(self, t, lr_changes=()):
        """The rate of the update made after `t` others, given the changes (`{"iteration": n, "lr": x}`, in
        order) made during the run: the latest made at most `t` updates in rescales the schedule from there."""
        start, rate = 0, self.initial
        for change in lr_changes:
            if change["iteration"] > t:
                break
            start, rate = change["iteration"], change["lr"]
        return rate * (self.factor(t) / self.factor(start))

    def at_evaluation(self, iteration, lr_changes=()):
        """The rate a history records at the evaluation after `iteration` updates: that of the latest update
        (the settings' rate before the first)."""
        return self.initial if iteration == 0 else self.of_update(iteration - 1, lr_changes)
