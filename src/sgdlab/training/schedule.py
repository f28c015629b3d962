"""When a run evaluates and checkpoints: its settings resolved once, asked at each iteration.

Evaluations come before training, after every `eval_every` iterations (one
epoch by default) and after the last iteration. A checkpoint, when the run
writes them, is taken with each scheduled evaluation, so that it holds the
evaluations up to it; with `checkpoint_every` (or when there is no
evaluation before the end) it is taken on its own, every so many iterations.
Where the run ends (or Ctrl-C stops it) is not on the schedule: the trainer
evaluates there and, for a stopped run, writes a checkpoint there.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """The schedule of a run of `iterations` updates: `evaluation_interval` iterations between evaluations (0:
    none before the end), `checkpoint_interval` between checkpoints, and whether it writes any (`checkpoints`)."""

    iterations: int
    evaluation_interval: int
    checkpoint_interval: int
    checkpoints: bool

    @classmethod
    def of(cls, config, train_rows, iters_per_epoch, checkpoint_every=None, checkpoints=False):
        """The schedule of a run of `config` on `train_rows` images: checkpoints (if any) every `checkpoint_every`
        iterations, else at each evaluation, else every epoch."""
        interval = config.evaluation_interval(iters_per_epoch)
        return cls(config.iterations(train_rows), interval, checkpoint_every or interval or iters_per_epoch,
                   checkpoints)

    @property
    def evaluates_first(self):
        """Whether the run is evaluated before its first update."""
        return self.evaluation_interval > 0

    def evaluation_due(self, iteration):
        """Whether a scheduled evaluation falls after `iteration` updates."""
        return self.evaluation_interval > 0 and iteration % self.evaluation_interval == 0

    def evaluates_after(self, iteration):
        """Whether the loop starts a scheduled evaluation after `iteration` (the last one's is the run's end's)."""
        return self.evaluation_due(iteration) and iteration != self.iterations

    @property
    def checkpoints_with_evaluations(self):
        """Whether each checkpoint is taken with a scheduled evaluation (and written once it is recorded)."""
        return self.checkpoints and self.checkpoint_interval == self.evaluation_interval

    def checkpoints_alone_after(self, iteration):
        """Whether a checkpoint of its own is written after `iteration` (never after the last: the run saves)."""
        return (self.checkpoints and not self.checkpoints_with_evaluations
                and iteration % self.checkpoint_interval == 0 and iteration != self.iterations)
