"""What a training run records, and how it is saved as JSON and CSV.

`History` keys are stable and documented, so plots, notebooks and other
tools can rely on them:

- `loss`: the mini-batch loss of every iteration (before that iteration's update).
- `iteration`, `epoch`, `train_acc`, `test_acc`, `seconds`: one entry per
  evaluation (before training, after every full epoch, after the last
  iteration; `TrainConfig.eval_every` spaces them otherwise). Accuracies are fractions of the WHOLE training and test sets;
  `seconds` is the wall time since training started. `test_acc` is None where
  the test set was not measured (`TrainConfig.test_eval` "last": only the
  run's last evaluation measures it).
- `val_acc`: per evaluation, the accuracy on the validation images held out
  of the training set (`TrainConfig.validation`); empty without them.
- `train_loss`, `test_loss`, `val_loss`: per evaluation, the loss on the
  whole training, test and validation sets as training defines it (the mean
  cross-entropy plus weight decay's term) at test time (no dropout): the
  overfitting view beside the mini-batch `loss`. None where not measured
  (the test set's as `test_acc`), not finite (a diverged network's), or
  recorded before sgdlab measured it; `val_loss` empty without a validation set.
- `lr`: per evaluation, the learning rate of the latest update before it (the
  settings' rate at iteration 0), as `TrainConfig.lr_schedule` and the changes
  below make it; empty in histories written before sgdlab recorded it.
- `weight_percentiles`: per evaluation, how each weight array (`W1, W2, ...`:
  every affine layer's and convolution's weights) was spread then: its
  percentiles `sgdlab.training.weight_distribution.PERCENTILES` (minimum,
  TensorBoard's six between, maximum) by name, `{"W1": [9 numbers], ...}`;
  an array's None where a weight was not finite (a diverged network's), an
  evaluation's None where recorded before sgdlab measured them; empty in
  histories written before. Not in history.csv (nine numbers per array).
- `iters_per_epoch`: ceil(train_size / batch_size), of the images trained on.
- `lr_changes`: `{"iteration": n, "lr": x}` for each change of the learning
  rate during the run (from the lab page, or `sgdlab train --resume RUN --lr X`):
  the update after the first n used x, and the schedule went on from there
  (see `sgdlab.training.learning_rate`). Empty when the rate never changed.
- `best_iteration`: with `TrainConfig.early_stop`, the evaluation (its
  iteration) with the best validation accuracy, whose weights the run keeps
  (model.npz); None otherwise.
- `early_stopped`: with early stopping, why the run ended before its length
  (the validation accuracy not improved for that many evaluations); None when
  it ran its length. The run is complete either way.
- `stopped`: None for a complete run, else why it ended early (interrupted, diverged).
"""

import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields

from ..errors import SgdlabError
from ..fileio import read_json_object, write_text_atomic
from .weight_distribution import PERCENTILES

EVALUATION_KEYS = ("iteration", "epoch", "train_acc", "test_acc", "seconds")
OPTIONAL_KEYS = ("val_acc", "lr", "train_loss", "test_loss", "val_loss")  # per evaluation too, where recorded: with a
# validation set; the rates and losses since sgdlab recorded them
LOSS_KEYS = ("train_loss", "test_loss", "val_loss")
PERCENTILES_KEY = "weight_percentiles"  # per evaluation as well, a dict of lists each: not a column of history.csv
WEIGHT_NAME = re.compile(r"W[1-9][0-9]{0,5}")  # a weight array's name in `params`: W1, W2, ...
MAX_WEIGHT_ARRAYS = 100  # a network's layers at most (nn.network.MAX_LAYERS): a chart each on the page
PER_EVALUATION_KEYS = (*EVALUATION_KEYS, *OPTIONAL_KEYS, PERCENTILES_KEY)  # the lists with an entry per evaluation
# The most a number takes in history.json: its indent, 24 characters (-1.2345678901234567e-308) and ",\n".
ENTRY_BYTES = 2 + 24 + 2
INTERRUPTED = "interrupted"  # how `stopped` begins for a run stopped by Ctrl-C or a request to stop
# What `History.plot` draws with, named rather than imported: the drawing is the plots layer's, above this one.


def largest_json_size(iterations, evaluations, weight_arrays=0):
    """The most bytes history.json takes for a run of `iterations` with `evaluations` (its lists; the rest is
    a few hundred bytes) of a network with `weight_arrays` (their `weight_percentiles`)."""
    spread = 2 * ENTRY_BYTES + weight_arrays * (len(PERCENTILES) + 2) * (ENTRY_BYTES + 2)  # its braces; two levels
    # deeper, each array's name, percentiles and closing bracket
    return (iterations + evaluations * (len(EVALUATION_KEYS) + len(OPTIONAL_KEYS))) * ENTRY_BYTES + evaluations * spread


@dataclass
class History:
    iters_per_epoch: int
    loss: list = field(default_factory=list)
    iteration: list = field(default_factory=list)
    epoch: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    weight_percentiles: list = field(default_factory=list)
    lr_changes: list = field(default_factory=list)
    best_iteration: int | None = None
    early_stopped: str | None = None
    stopped: str | None = None

    def record_evaluation(self, iteration, train_acc, test_acc, seconds, val_acc=None, lr=None, losses=None,
                          weight_percentiles=None):
        """One evaluation; `losses` maps `LOSS_KEYS` to its losses (each None where not measured; `val_loss` left
        out without a validation set); `weight_percentiles` the weights' spread then, where measured."""
        self.iteration.append(iteration)
        self.epoch.append(iteration / self.iters_per_epoch)
        self.train_acc.append(train_acc)
        self.test_acc.append(test_acc)
        self.seconds.append(seconds)
        if val_acc is not None:
            self.val_acc.append(val_acc)
        if lr is not None:
            self.lr.append(lr)
        measured = {**(losses or {}), **({PERCENTILES_KEY: weight_percentiles} if weight_percentiles is not None
                                         else {})}
        for key, value in measured.items():
            recorded = getattr(self, key)  # None for the evaluations before (a run continued from an older version)
            recorded.extend([None] * (len(self.iteration) - 1 - len(recorded)))
            recorded.append(value)

    def truncate(self, iteration):
        """Forget everything after `iteration` updates (an early-stopped run's iterations past its decision)."""
        kept = sum(1 for value in self.iteration if value <= iteration)
        self.loss = self.loss[:iteration]
        for key in PER_EVALUATION_KEYS:
            setattr(self, key, getattr(self, key)[:kept])
        self.lr_changes = self.lr_changes_until(iteration)

    def record_lr_change(self, lr):
        """Note that the updates from now on use the learning rate `lr`."""
        self.lr_changes.append({"iteration": len(self.loss), "lr": lr})

    def lr_changes_until(self, iteration):
        """The changes made after at most `iteration` updates (what a checkpoint there holds)."""
        return [dict(change) for change in self.lr_changes if change["iteration"] <= iteration]

    @property
    def interrupted(self):
        """Whether the run was stopped on request (Ctrl-C), rather than by diverging."""
        return self.stopped is not None and self.stopped.startswith(INTERRUPTED)

    @property
    def final_test_acc(self):
        """The test accuracy of the weights the run kept: the best evaluation's with early stopping, else the
        last measured (None if it never was: a run stopped before its end, with `test_eval` "last")."""
        if self.best_iteration is not None:
            return self.test_acc[self.iteration.index(self.best_iteration)]
        return next((value for value in reversed(self.test_acc) if value is not None), None)

    def evaluation_keys(self):
        """The per-evaluation keys this history holds: `EVALUATION_KEYS`, `val_acc` with a validation set, and
        `lr` where recorded."""
        return (*EVALUATION_KEYS, *(key for key in OPTIONAL_KEYS if getattr(self, key)))

    def mean_loss_since_last_evaluation(self):
        """Mean mini-batch loss over the iterations between the last two evaluations (None before any)."""
        start = self.iteration[-2] if len(self.iteration) > 1 else 0
        recent = self.loss[start:self.iteration[-1]]
        return sum(recent) / len(recent) if recent else None

    def evaluation_rows(self):
        """One dict per evaluation, keyed by `evaluation_keys()`."""
        keys = self.evaluation_keys()
        return [dict(zip(keys, row)) for row in zip(*(getattr(self, k) for k in keys))]

    def plot(self):
        """The book's two figures of this run, as matplotlib Figures: `loss, accuracy = history.plot()`, the
        mini-batch loss per iteration and the train and test accuracy per epoch. In a notebook, a cell ending
        in `history.plot()` shows both inline.

        They are the figures `sgdlab train` writes as loss.png and accuracy.png, built by the one definition
        in `sgdlab.plots.charts`: the one import of training from the layer above, made when a plot is asked
        for (and allowed by name in the import contracts).
        """
        from ..plots.charts import book_figures

        return book_figures(self)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(values) - {"stopped", "seconds", "val_acc", "lr_changes", "lr", "best_iteration",
                                                "early_stopped", *LOSS_KEYS, PERCENTILES_KEY})
        if missing:
            raise SgdlabError(f"history is missing the keys {missing}: it was not written by sgdlab")
        # val_acc and val_loss are empty when no validation set was held out, lr and the losses in histories older
        # than them; when there, they are as long as the others.
        per_evaluation = [key for key in PER_EVALUATION_KEYS if key in values and values[key] != []]
        for key in ("loss", *(key for key in per_evaluation if key != PERCENTILES_KEY)):
            unmeasured = (None,) if key in ("test_acc", *LOSS_KEYS) else ()  # the test set left for the end, a loss
            # not finite or not yet recorded
            if not isinstance(values[key], list) or not all(_is_number(v) or v in unmeasured for v in values[key]):
                raise SgdlabError(f"history's {key!r} is not a list of numbers: it was not written by sgdlab, "
                                  "or was edited")
        _check_weight_percentiles(values.get(PERCENTILES_KEY, []))
        lengths = {key: len(values[key]) for key in per_evaluation}
        if len(set(lengths.values())) > 1:
            raise SgdlabError(f"history's evaluation lists differ in length ({lengths}): it was not written by "
                              "sgdlab, or was edited")
        _check_lr_changes(values.get("lr_changes", []), len(values["loss"]))
        _check_ranges(values)
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_csv(self):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.evaluation_keys(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.evaluation_rows())
        return out.getvalue()

    def save(self, json_path, csv_path=None):
        """Write history.csv (one row per evaluation, if asked) and then history.json, each atomically."""
        if csv_path is not None:
            write_text_atomic(csv_path, self.to_csv())
        write_text_atomic(json_path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path):
        """Read a history.json (the history of a run that has ended: a finished run's was evaluated at its end),
        with a clear error naming it when it is missing or not sgdlab's."""
        values = read_json_object(path, "history file")
        try:
            history = cls.from_dict(values)
        except SgdlabError as exc:
            raise SgdlabError(f"{path}: {exc}") from None
        if history.stopped is None and not history.iteration:
            raise SgdlabError(f"{path}: history is of a finished run but holds no evaluation: it was not written by "
                              "sgdlab, or was edited")
        return history


def _check_ranges(values):
    """Refuse values no run records: a loss below 0, an accuracy outside 0..1, a negative or fractional
    iteration, an epoch length that is not a positive integer, a `stopped` that is not a text."""
    problems = {
        "iters_per_epoch": not (type(values["iters_per_epoch"]) is int and values["iters_per_epoch"] > 0),
        "loss": any(v < 0 for v in values["loss"]),
        **{key: any(v is not None and v < 0 for v in values.get(key) or []) for key in LOSS_KEYS},
        "iteration": any(type(v) is not int or v < 0 for v in values["iteration"]),
        "stopped": not (values.get("stopped") is None or isinstance(values["stopped"], str)),
        "early_stopped": not (values.get("early_stopped") is None or isinstance(values["early_stopped"], str)),
        "best_iteration": values.get("best_iteration") not in (None, *values["iteration"]),
        "lr": any(not 0 < v < math.inf for v in values.get("lr") or []),
        **{key: any(v is not None and not 0 <= v <= 1 for v in values.get(key) or [])
           for key in ("train_acc", "test_acc", "val_acc")},
    }
    wrong = [key for key, bad in problems.items() if bad]
    if wrong:
        raise SgdlabError(f"history's {', '.join(map(repr, wrong))} hold values no run records: it was not "
                          "written by sgdlab, or was edited")


def _check_weight_percentiles(evaluations):
    """Refuse weight percentiles that are not, per evaluation, None or `{name: None or PERCENTILES' many numbers
    in increasing order}`, each name a parameter's (`W` and its number), at most MAX_WEIGHT_ARRAYS of them and the
    same in every evaluation."""
    def spread(values):
        return values is None or (isinstance(values, list) and len(values) == len(PERCENTILES)
                                  and all(_is_number(v) and math.isfinite(v) for v in values)
                                  and all(a <= b for a, b in zip(values, values[1:])))

    if not isinstance(evaluations, list) or not all(
            evaluation is None or (isinstance(evaluation, dict) and all(
                isinstance(name, str) and WEIGHT_NAME.fullmatch(name) and spread(values)
                for name, values in evaluation.items()))
            for evaluation in evaluations) or len({
                tuple(evaluation) for evaluation in evaluations if evaluation is not None}) > 1 or any(
            evaluation is not None and len(evaluation) > MAX_WEIGHT_ARRAYS for evaluation in evaluations):
        raise SgdlabError(f"history's {PERCENTILES_KEY!r} is not, per evaluation, each weight array's (W1, W2, ...) "
                          f"{len(PERCENTILES)} percentiles in increasing order: it was not written by sgdlab, or "
                          "was edited")


def _check_lr_changes(changes, iterations):
    """Refuse learning-rate changes that are not `{"iteration": n, "lr": x}` in order, within the run."""
    previous = 0
    for change in changes if isinstance(changes, list) else [None]:
        if not (isinstance(change, dict) and set(change) == {"iteration", "lr"}
                and type(change["iteration"]) is int and _is_number(change["lr"])
                and previous <= change["iteration"] <= iterations and 0 < change["lr"] < math.inf):
            raise SgdlabError("history's 'lr_changes' is not a list of {\"iteration\": n, \"lr\": x} in the order of "
                              "the run: it was not written by sgdlab, or was edited")
        previous = change["iteration"]


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
