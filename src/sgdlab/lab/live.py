"""A run trained with the lab page watching: it publishes into a `RunFeed` and obeys the page's controls.

The controls act between two iterations, where Ctrl-C does: pause holds the
training loop there (Ctrl-C still ends it), a step lets one more iteration
through, stop ends the run as Ctrl-C does (saved, and resumable), and a new
learning rate is taken by the trainer before its next update. Nothing here
touches the weights or a random generator, so a run watched gives the same
history and weights, bit for bit, as one that is not.
"""

import threading
from pathlib import Path

from ..interrupts import interrupts_deferred
from ..runs.run import RunObserver
from .messages import STOPPED_BY_PAGE, ended_message, message_of

PAUSE_POLL_SECONDS = 0.1  # how often a paused run looks for Ctrl-C


class LiveRun(RunObserver):
    """Publishes the run into `feed`, passing every event on to `terminal` too (the command line's progress)."""

    def __init__(self, feed, terminal=None):
        self.feed = feed
        self.terminal = terminal if terminal is not None else RunObserver()
        self.trainer = None
        self._control = threading.Condition()
        self._paused = False
        self._steps = 0  # iterations let through while paused
        self._stop = False

    # --- what training reports ---------------------------------------------------------------------------

    def started(self, run_dir, trainer, x_train, t_train):
        self.terminal.started(run_dir, trainer, x_train, t_train)
        self.trainer = trainer
        config = trainer.config
        self.feed.update(name=Path(run_dir).name, settings=config.resolved().to_dict(), live_network=trainer.network,
                         status="paused" if self._paused else "training",
                         learning_rate=trainer.optimizer.lr,
                         total_iterations=config.iterations(config.data_rows(len(x_train))[0]))

    def iteration(self, iteration, loss):
        self.terminal.iteration(iteration, loss)
        self.feed.add_loss(float(loss))
        changes = self.trainer.history.lr_changes
        if len(changes) != len(self.feed.lr_changes):  # a rate set was taken: in force, and marked on the curves
            requested = self.feed.requested_learning_rate
            self.feed.update(learning_rate=self.trainer.optimizer.lr, lr_changes=[dict(change) for change in changes],
                             requested_learning_rate=None if requested == changes[-1]["lr"] else requested)
        elif self.feed.learning_rate != self.trainer.optimizer.lr:  # a schedule's next rate
            self.feed.update(learning_rate=self.trainer.optimizer.lr)
        self._wait_while_paused()

    def evaluation(self, history):
        self.terminal.evaluation(history)
        self.feed.add_evaluation(history, self.trainer.network.copy())

    def training_ended(self):
        self.terminal.training_ended()
        with self._control:
            self._paused = False

    @property
    def stopped_by_page(self):
        """Whether the page's stop was pressed."""
        return self._stop

    def ended(self, history):
        """The run is saved: the page says how it ended (and reads digits with its final weights)."""
        self.feed.update(status="stopped" if history.stopped else "finished", message=ended_message(history),
                         live_network=None)

    def diverged(self, error):
        """Training diverged (`error`, a `TrainingDiverged`): the page says where, at which rate, and where the run
        was saved, as the command line does."""
        self.feed.update(status="diverged", message=message_of(error))

    # --- what the page asks --------------------------------------------------------------------------------

    def pause(self):
        """Hold training between its next two iterations; the page says "paused" once it is held there (by
        `_wait_while_paused`), so the iteration shown with it is the one training stopped after."""
        with self._control:
            self._paused = True

    def resume(self):
        with self._control:
            self._paused, self._steps = False, 0
            self._control.notify_all()
        if self.feed.status == "paused":
            self.feed.update(status="training")

    def step(self):
        """One more iteration, then paused again (pausing first if it was running)."""
        with self._control:
            self._paused = True
            self._steps += 1
            self._control.notify_all()

    def stop(self):
        """End the run after its current iteration, saved as Ctrl-C saves it."""
        with self._control:
            self._stop = True
            self._control.notify_all()

    def change_learning_rate(self, lr):
        """Train with `lr` from the next update on; the page says so at once, paused or not."""
        self.trainer.change_learning_rate(lr)  # checked there; taken before the next update
        self.feed.update(requested_learning_rate=None if lr == self.trainer.optimizer.lr else lr)

    def _wait_while_paused(self):
        """Between iterations: hold while paused (Ctrl-C and the page's stop still end the run)."""
        if not (self._paused or self._stop):  # the common case, read without the lock: nothing asked
            return
        with interrupts_deferred() as pending, self._control:
            while True:
                if self._stop:
                    raise KeyboardInterrupt(STOPPED_BY_PAGE)
                if not self._paused:
                    return
                if self._steps:
                    self._steps -= 1
                    return
                if self.feed.status != "paused":
                    self.feed.update(status="paused")
                self._control.wait(PAUSE_POLL_SECONDS)
                if (signal_name := pending()) is not None:
                    raise KeyboardInterrupt(signal_name)
