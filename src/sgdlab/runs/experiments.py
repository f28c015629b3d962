"""The book's chapter-6 experiments, each one command: its variants trained side by side, fairly.

Each experiment is the setting of one of the book's scripts (`ch06/...`)
and the variants it compares. Every variant is an ordinary run folder
(what `sgdlab train` writes) named after it, under the experiment's folder,
beside `summary.json` (each variant's folder, settings and final figures)
and the book's figure; `experiment.json`, written first, holds what the
experiment is (its settings, variants, seed and length), from which
`resume_experiment` continues an interrupted one. All variants use the same seed, so they draw the
same batches and, where the architecture is the same, the same initial
weights (scaled by the variant's weight scale): they differ only in what
the experiment varies, which the book's scripts do not ensure.
"""

import dataclasses
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.mnist import NUM_CLASSES, SAMPLE_SHAPE
from ..engine.threads import check_workers, usable_cores
from ..errors import ConfigError
from ..fileio import read_json_as, write_text_atomic
from ..nn.optimizers import OPTIMIZERS
from ..plots.charts import figure_class
from ..plots.experiment_charts import FIGURES
from ..ranges import NON_NEGATIVE_INT
from ..training.config import NETS, TrainConfig
from .parallel_runs import train_runs
from .run import finished_history
from .run_folder import check_same_run, check_writable_folder, folder_lock, new_run_dir, stored_data_dir

BOOK_OPTIMIZERS = ("sgd", "momentum", "adagrad", "adam")  # the four of optimizer_compare_mnist.py
# The optimizer and weight-init scripts record the loss only: their variants are evaluated once, at the end.
DEEP_NET = {"hidden_sizes": (100, 100, 100, 100), "activation": "relu", "batch_size": 128, "iters": 2000,
            "eval_every": 0}
OVERFITTING_NET = {"hidden_sizes": (100,) * 6, "activation": "relu", "weight_init_std": "he", "train_size": 300,
                   "optimizer": "sgd", "lr": 0.01, "batch_size": 100}
# The settings of the book's fully connected nets, left out for another net (`Experiment.on_net`): its own take
# their place, unless the experiment varies them
MLP_ONLY = ("hidden_sizes", "activation", "weight_init_std")
BATCH_NORM_SCALES = np.logspace(0, -4, num=16)  # batch_norm_test.py's weight scales
EXPERIMENT_FILE = "experiment.json"
EXPERIMENT_BUSY = "being used by an experiment still running: wait for it to end, or give another --out"
NAMES = ("optimizers", "weight-init", "batch-norm", "weight-decay", "dropout")
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a folder's name inside the experiment's, no more
LENGTHS = ("iters", "epochs")  # what may replace an experiment's own length


@dataclass(frozen=True)
class Experiment:
    """The book's script it reproduces, the settings its variants share and what each changes."""

    name: str
    script: str
    shared: dict
    variants: dict  # variant name -> the settings it changes
    figure: str  # the function of sgdlab.plots.experiment_charts that draws the book's figure (see FIGURES)

    def __post_init__(self):
        """Refuse what no experiment of sgdlab's is (experiment.json is read back into one): an unknown name or
        figure, no variants, or a variant whose name is not a plain folder name inside the experiment's."""
        if self.name not in NAMES:
            raise ConfigError(f"unknown experiment {self.name!r}: one of {', '.join(NAMES)}")
        if self.figure not in FIGURES:
            raise ConfigError(f"unknown figure {self.figure!r}: one of {', '.join(FIGURES)}")
        if not isinstance(self.script, str) or not isinstance(self.shared, dict):
            raise ConfigError("an experiment's script is a text and its shared settings an object")
        if not isinstance(self.variants, dict) or not self.variants:
            raise ConfigError("an experiment has at least one variant")
        for variant, settings in self.variants.items():
            if not VARIANT_NAME.fullmatch(variant):
                raise ConfigError(f"a variant's name {variant!r} is not a folder name (letters, digits, '.', '-' "
                                  "and '_', not starting with a dot)")
            if not isinstance(settings, dict):
                raise ConfigError(f"variant {variant!r}'s settings are not an object")

    def config(self, variant, seed, length):
        """The TrainConfig of one variant: the shared settings, the variant's, the seed and `length`
        ({"iters": N} or {"epochs": N}, replacing the experiment's own when given)."""
        return TrainConfig.from_dict(_lengthened({**self.shared, **self.variants[variant], "seed": seed}, length))

    def shared_settings(self, length):
        """The settings every variant trains with, `length` replacing the experiment's own when given."""
        return _lengthened(self.shared, length)

    def on_net(self, net):
        """The experiment on `net` (a name of `NETS`): the settings of the book's fully connected nets (`MLP_ONLY`,
        but those the variants change) give way to the net's own; what the experiment compares, its data,
        batches and length stay. Refused in one line where a variant sets what `net` cannot take (deep-convnet's
        dropout is built in, and it has no batch norm), naming the nets the experiment runs on."""
        moved = self._moved_to(net)
        why = moved.refusal()
        if why is not None:
            takers = [name for name in NETS if self._moved_to(name).refusal() is None]
            varied = sorted({name for settings in self.variants.values() for name in settings})
            raise ConfigError(f"the {self.name} experiment cannot run on {net}: its variants set {', '.join(varied)}, "
                              f"and {why}; run it with --net {' or '.join(takers)}")
        return moved

    def _moved_to(self, net):
        if net == "mlp":
            return self
        varied = {name for settings in self.variants.values() for name in settings}
        kept = {name: value for name, value in self.shared.items() if name not in MLP_ONLY or name in varied}
        return dataclasses.replace(self, shared={**kept, "net": net})

    def refusal(self):
        """Why one of the variants' networks cannot be built for MNIST (the first clause of the error), or None."""
        for variant in self.variants:
            try:
                self.config(variant, 0, None).planned_layers(SAMPLE_SHAPE, NUM_CLASSES)
            except ConfigError as refused:
                return str(refused).split(":")[0]
        return None


def _lengthened(settings, length):
    if not length:
        return dict(settings)
    if not (isinstance(length, dict) and len(length) == 1 and set(length) <= set(LENGTHS)):
        raise ConfigError(f"an experiment's length is one of {', '.join(LENGTHS)}, got {length!r}")
    return {**{name: value for name, value in settings.items() if name not in LENGTHS}, **length}


def optimizers_experiment(names=BOOK_OPTIMIZERS):
    """optimizer_compare_mnist.py: a 784-100-100-100-100-10 ReLU net with He weights, one optimizer per
    variant at the book's learning rate for it (SGD 0.01, Adam 0.001, ...)."""
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown or not names:
        raise ConfigError(f"unknown optimizers {unknown}: choose among {', '.join(OPTIMIZERS)}")
    variants = {name: {"optimizer": name, "lr": OPTIMIZERS[name].default_lr} for name in names}
    return Experiment("optimizers", "ch06/optimizer_compare_mnist.py", {**DEEP_NET, "weight_init_std": "he"},
                      variants, "plot_losses")


def experiments(optimizers=BOOK_OPTIMIZERS):
    """Every experiment, by name (the optimizers one comparing `optimizers`), on the book's fully connected nets
    (`Experiment.on_net` moves one to another net)."""
    found = [
        optimizers_experiment(optimizers),
        Experiment("weight-init", "ch06/weight_init_compare.py", {**DEEP_NET, "optimizer": "sgd", "lr": 0.01},
                   {"std-0.01": {"weight_init_std": 0.01}, "xavier": {"weight_init_std": "xavier"},
                    "he": {"weight_init_std": "he"}}, "plot_losses"),
        Experiment("batch-norm", "ch06/batch_norm_test.py",
                   {"hidden_sizes": (100,) * 5, "activation": "relu", "train_size": 1000, "optimizer": "sgd",
                    "lr": 0.01, "batch_size": 100, "epochs": 20},
                   {f"{kind}-std-{scale:.3g}": {"weight_init_std": float(scale), "batch_norm": kind == "batch-norm"}
                    for scale in BATCH_NORM_SCALES for kind in ("batch-norm", "plain")}, "plot_batch_norm_grid"),
        Experiment("weight-decay", "ch06/overfit_weight_decay.py", {**OVERFITTING_NET, "epochs": 201},
                   {"no-decay": {}, "decay-0.1": {"weight_decay": 0.1}}, "plot_overfitting"),
        Experiment("dropout", "ch06/overfit_dropout.py", {**OVERFITTING_NET, "epochs": 301},
                   {"no-dropout": {}, "dropout-0.2": {"dropout": 0.2}}, "plot_overfitting"),
    ]
    return {experiment.name: experiment for experiment in found}




def run_experiment(experiment, out=None, seed=0, length=None, overwrite=False, data_dir=None, progress=None,
                   workers=None):
    """Train every variant of `experiment` into `out` (default: a new folder under runs/) and draw the book's
    figure; returns (the folder, the summary written to its summary.json).

    The variants train side by side on `workers` processes (default: one per
    usable core; see `parallel_runs`), with the same results as one after
    another. `progress(variant, done, total)` follows their iterations. After
    Ctrl-C the variants that ran are summarised, and `summary["stopped"]`
    names those that did not.
    """
    configs = {variant: experiment.config(variant, seed, length) for variant in experiment.variants}  # all checked
    _check_room(configs, workers)
    if out is None:
        out = new_run_dir()
    out = Path(out)
    check_writable_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, EXPERIMENT_BUSY):  # before an earlier experiment there is replaced
        for name, what in (("summary.json", "an experiment"), (EXPERIMENT_FILE, "an unfinished experiment")):
            if (out / name).exists() and not overwrite:
                resume = f", continue it with --resume {out}" if name == EXPERIMENT_FILE else ""
                raise ConfigError(f"{out} already holds {what} ({name}): give another --out{resume}, or add "
                                  "--overwrite to replace it")
        if overwrite:  # the earlier experiment's summary and figure must not pass for this one's
            for name in ("summary.json", f"{experiment.name}.png", EXPERIMENT_FILE):
                (out / name).unlink(missing_ok=True)
        write_text_atomic(out / EXPERIMENT_FILE, json.dumps({**dataclasses.asdict(experiment), "seed": seed,
                                                             "length": length, "data_dir": data_dir and str(data_dir)},
                                                            indent=1) + "\n")
        jobs = {variant: (config, out / variant, overwrite, data_dir, False) for variant, config in configs.items()}
        return out, _train_and_summarise(experiment, out, seed, length, configs, jobs, {}, progress, workers)


def resume_experiment(out, data_dir=None, progress=None, workers=None):
    """Continue the interrupted experiment in `out`: its finished variants are kept, the interrupted ones
    continue from their checkpoints and the others start; returns what `run_experiment` does, with the same
    results as the experiment made in one go. `data_dir`: where MNIST is now (default: where it was)."""
    out = Path(out)
    if not (out / EXPERIMENT_FILE).exists():
        raise ConfigError(f"{out} holds no experiment to resume (no {EXPERIMENT_FILE}): give the folder of an "
                          "'sgdlab experiment'")
    with folder_lock(out, EXPERIMENT_BUSY):
        experiment, seed, length, stored_dir = read_json_as(out / EXPERIMENT_FILE, "experiment's settings", _stored,
                                                            "it cannot be resumed")
        data_dir = data_dir if data_dir is not None else stored_dir
        configs = {variant: experiment.config(variant, seed, length) for variant in experiment.variants}  # checked
        _check_room(configs, workers)
        for variant, config in configs.items():  # every variant's folder before any trains
            check_same_run(out / variant, config, "this experiment gives that variant", "move the folder away to "
                           "train the variant again, or start the experiment afresh with --overwrite")
        finished, jobs = {}, {}
        for variant, config in configs.items():
            history = finished_history(out / variant)
            if history is not None:
                finished[variant] = history
            else:  # interrupted or killed (it continues), or not started yet
                jobs[variant] = (config, out / variant, False, data_dir, (out / variant / "config.json").exists())
        return out, _train_and_summarise(experiment, out, seed, length, configs, jobs, finished, progress, workers)


def _check_room(configs, workers):
    """Refuse, before any variant starts, an experiment whose variants this machine has not the cores or the
    memory to train `workers` (default: one per core) at a time."""
    workers = workers or usable_cores()
    check_workers(workers)
    for config in configs.values():
        config.check_memory(SAMPLE_SHAPE, NUM_CLASSES, runs=min(workers, len(configs)))


def _stored(values):
    """What experiment.json holds, checked: the `Experiment`, its seed, its length and its data folder."""
    experiment = Experiment(*(values[spec.name] for spec in dataclasses.fields(Experiment)))
    seed = NON_NEGATIVE_INT.check("seed", values["seed"])
    for variant in experiment.variants:  # every variant's settings, and the length, before anything is done
        experiment.config(variant, seed, values["length"])
    return experiment, seed, values["length"], stored_data_dir(values["data_dir"])


def _train_and_summarise(experiment, out, seed, length, configs, jobs, finished, progress, workers):
    """Train `jobs` (the variants not in `finished`, their histories), then write the summary and the figure."""
    # matplotlib's import (half a second) happens while the variants train, not after them
    threading.Thread(target=figure_class, daemon=True).start()
    trained, interrupted = train_runs(jobs, workers or usable_cores(), progress)
    histories = {variant: finished[variant] if variant in finished else trained[variant] for variant in configs
                 if variant in finished or variant in trained}
    summary = {"experiment": experiment.name, "book_script": experiment.script, "seed": seed,
               "shared_settings": experiment.shared_settings(length), "variants": {}}
    for variant, history in histories.items():
        summary["variants"][variant] = {"folder": variant, "settings": experiment.variants[variant],
                                        "stopped": history.stopped, **final_figures(history)}
    if interrupted:
        summary["stopped"] = f"interrupted; not run: {', '.join(v for v in configs if v not in histories) or 'none'}"
    if histories:
        figure = out / f"{experiment.name}.png"
        FIGURES[experiment.figure](histories, figure, experiment.name)
        summary["figure"] = figure.name
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def final_figures(history):
    """A run's outcome in a few numbers: its last loss (mean of the last 100 iterations, as smoothed curves
    end; the weight decay's penalty included), its last train and test accuracy, their gap, and the best test
    accuracy on the way."""
    tail = history.loss[-100:]
    figures = {"iterations": len(history.loss), "final_loss": float(np.mean(tail)) if tail else None,
               "train_acc": None, "test_acc": None, "gap": None, "best_test_acc": None}
    if history.iteration:  # none for a run that diverged before its only evaluation, at the end
        measured = [value for value in history.test_acc if value is not None]  # all, unless left for the end
        test_acc = history.test_acc[-1]
        figures.update(train_acc=history.train_acc[-1], test_acc=test_acc,
                       gap=None if test_acc is None else history.train_acc[-1] - test_acc,
                       best_test_acc=max(measured, default=None))
    return figures
