"""What a run publishes for the lab page: a thread-safe record that training writes and the server reads.

Training adds a number per iteration and, per evaluation, its figures and a
copy of the weights; that is all it pays, so it never waits on a page. The
server reads the record from its own threads: every change bumps
`version`, and `call_on_change` wakes a page's stream, waiting on the
server's event loop without a thread, when there is something new. The
loss is kept as bucket means (`LossSeries`), so a run of a million
iterations costs the page as little memory and traffic as one of a few
thousand.
"""

import threading
import time
from collections import deque

MAX_LOSS_POINTS = 4096  # even: when full, pairs of buckets merge into half as many
# What the page gets of each evaluation: the history's keys (an optional one None where the history has none)
EVALUATION_FIELDS = ("iteration", "epoch", "train_acc", "test_acc", "seconds", "val_acc", "lr", "train_loss",
                     "test_loss", "val_loss", "weight_percentiles")


PACE_WINDOW_SECONDS = 10.0  # the recent stretch of training the page's iterations per second are measured over
PACE_SAMPLES = 20  # (time, iterations) pairs noted in it, one per half second at most
PACE_SHORTEST_SECONDS = 1.0  # no rate measured over less


def evaluation_row(history, index):
    """The page's record of the evaluation at `index` in `history`."""
    return {key: getattr(history, key)[index] if getattr(history, key) else None for key in EVALUATION_FIELDS}


class LossSeries:
    """The loss of every iteration, as at most `limit` means of equal buckets of iterations.

    Buckets hold one iteration at first; when `limit` are full, neighbours
    merge and buckets become twice as wide. Bucket i ends at iteration
    (i + 1) * width (the page computes it: only the means travel); the
    bucket being filled ends at `count`, the latest iteration.
    """

    def __init__(self, limit=MAX_LOSS_POINTS):
        self.limit = limit
        self.width = 1
        self.means = []
        self._open_sum, self._open_count = 0.0, 0  # the bucket being filled

    @classmethod
    def of(cls, losses, limit=MAX_LOSS_POINTS):
        series = cls(limit)
        for loss in losses:
            series.append(loss)
        return series

    @property
    def count(self):
        """The iterations recorded, the bucket being filled included."""
        return len(self.means) * self.width + self._open_count

    @property
    def open_mean(self):
        """The mean of the bucket being filled, None while it is empty."""
        return self._open_sum / self._open_count * self.width if self._open_count else None  # in this order: finite

    def append(self, loss):
        self._open_sum += loss / self.width  # each share divided first: losses near float's largest add up finite
        self._open_count += 1
        if self._open_count < self.width:
            return
        self.means.append(self._open_sum)
        self._open_sum, self._open_count = 0.0, 0
        if len(self.means) == self.limit:
            self.means = [a / 2 + b / 2 for a, b in zip(self.means[::2], self.means[1::2])]
            self.width *= 2


class Pace:
    """Iterations per second over the last `PACE_WINDOW_SECONDS` of training: the rate of now (the evaluations
    included, which a run's time left includes too), not the run's mean, which its start and a load gone
    since would bias. `note` is called at every iteration and costs a clock reading."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.samples = deque()  # (time, iterations done), oldest first: the oldest just beyond the window

    def restart(self):
        """Forget the samples (training paused or ended: the next stretch is measured from its own start)."""
        self.samples.clear()

    def note(self, iterations):
        now = self.clock()
        if self.samples and now - self.samples[-1][0] < PACE_WINDOW_SECONDS / PACE_SAMPLES:
            return
        self.samples.append((now, iterations))
        while len(self.samples) > 1 and now - self.samples[1][0] >= PACE_WINDOW_SECONDS:
            self.samples.popleft()

    def per_second(self, iterations):
        """The rate from the oldest sample to now, at `iterations` done; None before a second has been measured."""
        if not self.samples:
            return None
        since, done = self.samples[0]
        elapsed = self.clock() - since
        return (iterations - done) / elapsed if elapsed >= PACE_SHORTEST_SECONDS else None


class RunFeed:
    """One run as the page sees it: settings, loss, evaluations, the latest weights, and where it stands.

    `status` is "starting", "training", "paused", "finished", "stopped" or
    "diverged"; `message` says more when it ended (a `sgdlab.lab.messages` message; None). `snapshot` is a copy of the
    network at the latest evaluation (what the page inspects), `live_network`
    the network training updates (what a drawn digit is read with).
    """

    def __init__(self, name, settings, live=False):
        self.name = name
        self.settings = settings
        self.live = live  # trained by this process: the page may pause, step, stop and change its rate
        self.total_iterations = None
        self.loss = LossSeries()
        self.evaluations = []  # one `evaluation_row` per evaluation
        self.lr_changes = []
        self.learning_rate = None  # the rate in force (a run trained here)
        self.requested_learning_rate = None  # a rate the page set, until training takes it (at its next update)
        self.snapshot = None
        self.snapshot_iteration = None  # the updates the snapshot had made
        self.live_network = None
        self.status, self.message = "starting", None
        self.pace = Pace()  # iterations per second while training
        self.version = 0
        self.generation = 0  # bumped when the record is replaced as a whole (a run read again from its folder)
        self._lock = threading.Lock()
        self._callbacks = []  # see `call_on_change`

    def _bump(self):
        """A change (under the lock): each callback asked for is called, once."""
        self.version += 1
        if self._callbacks:
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()

    def call_on_change(self, seen_version, callback):
        """Call `callback()` once, at the first change after `seen_version` (now, if there has been one), from
        the thread that makes it (training's: it must be quick, as a wake-up for an event loop is); returns a
        function that cancels it. A page's stream waits this way holding no thread."""
        with self._lock:
            if self.version != seen_version:
                callback()
                return lambda: None
            self._callbacks.append(callback)

        def cancel():
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
        return cancel

    def update(self, **fields):
        """Set `fields` and wake the pages waiting for a change."""
        with self._lock:
            if fields.get("status", self.status) != self.status:
                self.pace.restart()
            for name, value in fields.items():
                setattr(self, name, value)
            self._bump()

    def add_loss(self, loss):
        with self._lock:
            self.loss.append(loss)
            self.pace.note(self.loss.count)
            self._bump()

    def add_evaluation(self, history, snapshot):
        """The evaluation just recorded in `history`, with `snapshot`, the network it was made with (a copy)."""
        evaluation = evaluation_row(history, -1)  # its lr the rate in force: schedule and changes
        with self._lock:
            self.evaluations.append(evaluation)
            self.lr_changes = [dict(change) for change in history.lr_changes]
            self.snapshot, self.snapshot_iteration = snapshot, evaluation["iteration"]
            self._bump()

    def replace(self, loss, evaluations, snapshot, snapshot_iteration, status, message, lr_changes):
        """Everything at once, as read again from a run's files: pages then get the whole record anew."""
        with self._lock:
            self.loss, self.evaluations = loss, evaluations
            self.snapshot, self.snapshot_iteration = snapshot, snapshot_iteration
            self.status, self.message, self.lr_changes = status, message, [dict(c) for c in lr_changes]
            self.generation += 1
            self._bump()

    def view(self, generation=None, loss_width=None, loss_start=0, evaluations_start=0):
        """What a page that has, of the record's `generation`, the loss buckets before `loss_start` (at bucket
        width `loss_width`) and the evaluations before `evaluations_start` still lacks: the rest, and
        everything small in full."""
        with self._lock:
            if generation != self.generation:
                loss_width, evaluations_start = None, 0
            if loss_width != self.loss.width:  # buckets merged since: the page gets the whole series again
                loss_start = 0
            means = self.loss.means[loss_start:]
            return {
                "name": self.name, "version": self.version, "generation": self.generation, "live": self.live,
                "status": self.status,
                "message": self.message, "iterations_done": self.loss.count,
                "total_iterations": self.total_iterations,
                "iterations_per_second": self.pace.per_second(self.loss.count) if self.status == "training" else None,
                "learning_rate": self.learning_rate, "requested_learning_rate": self.requested_learning_rate,
                "lr_changes": self.lr_changes,
                "loss": {"width": self.loss.width, "start": loss_start, "values": means,
                         "open": self.loss.open_mean},  # the bucket being filled: it ends at iterations_done
                "evaluations": {"start": evaluations_start, "rows": self.evaluations[evaluations_start:]},
            }
