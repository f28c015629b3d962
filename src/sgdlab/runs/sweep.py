"""A hyperparameter sweep (chapter 6.5): random trials of the searched settings, in rounds that narrow the ranges.

The sweep folder holds `sweep.json` (what the sweep is: its searches, the
settings its trials share, trials per round, rounds, seed), written first,
a run folder per trial (`trial-000`, ...: what `sgdlab train` writes, so
any trial can be inspected, compared or resumed), `results.csv` and
`results.json` (a row per trial, rewritten as each one ends), and at the
end the book's figure (`best-trials.png`) and `search.png`, a scatter of
validation accuracy against each searched setting. Trial i's settings and
seed depend on the sweep's seed, i and the rounds before i's alone, and
training is deterministic, so a sweep gives the same results whatever
trains it: one worker or many, one machine or a cluster, in one go or
resumed. The validation accuracy ranks the trials; the test accuracy is
recorded, never used to choose.

A trial pays for what the search needs and little else: the validation and
training accuracy at each evaluation, the test set once at the end
(`TRIAL_DEFAULTS`; every evaluation if the sweep's settings ask), a
checkpoint every `checkpoint_every` iterations rather than at each
evaluation, and no charts or report unless `charts` asks: its folder still
holds config.json, history.json and model.npz, which `sgdlab view`, `plot`,
`compare` and `evaluate` read.
"""

import contextlib
import csv
import dataclasses
import io
import json
import queue
import re
import shutil
import threading
from pathlib import Path

from ..engine.threads import check_workers
from ..errors import ConfigError, SgdlabError
from ..fileio import lock_held, read_json_as, read_json_object, write_text_atomic
from ..interrupts import interrupts_deferred
from ..ranges import NON_NEGATIVE_INT, POSITIVE_INT, check_flag
from ..training.config import TrainConfig
from .run import finished_history
from .run_folder import LOCK_NAME, check_same_run, check_writable_folder, folder_lock, new_run_dir, stored_data_dir
from .run_labels import short_value
from .search_space import Search, check_searches, draw_trial, narrow
from .trial_cluster import TrialSubmitter, trial_cluster, trial_outcome

SWEEP_FILE = "sweep.json"
SWEEP_BUSY = "being used by a sweep still running: wait for it to end, or give another --out"
RESULTS_CSV, RESULTS_JSON = "results.csv", "results.json"
BEST_TRIALS_FIGURE, SEARCH_FIGURE = "best-trials.png", "search.png"
OUTCOME_KEYS = ("val_acc", "train_acc", "test_acc", "seconds", "status", "worker")
# ch06/hyperparameter_optimization.py: 500 training images, 20% of them for validation, six hidden layers of 100
# (ReLU, He weights), SGD with batch 100 for 50 epochs; 100 trials of lr = 10^U(-6,-2), weight decay = 10^U(-8,-4).
BOOK_SETTINGS = {"train_size": 500, "validation": 0.2, "hidden_sizes": (100,) * 6, "activation": "relu",
                 "weight_init_std": "he", "optimizer": "sgd", "batch_size": 100, "epochs": 50}
BOOK_SEARCHES = ("lr=log:1e-6:1e-2", "weight_decay=log:1e-8:1e-4")
BOOK_TRIALS = 100
ENDED = ("finished", "diverged")  # a trial's statuses once it has ended for good
WAITING = ("queued", "running")  # a trial's statuses while the sweep waits for it
SIGNAL_POLL_SECONDS = 0.1  # how often a round waiting on its trials looks for a Ctrl-C (SIGTERM, SIGHUP) held
# What a trial measures unless the sweep's settings say otherwise: the search chooses by validation accuracy.
TRIAL_DEFAULTS = {"test_eval": "last"}
# Iterations between a trial's checkpoints: what a lost worker can cost, at most. A checkpoint (the weights
# and an fsync) costs about as many milliseconds as an update of the same net, plus ~10 ms: a few percent.
TRIAL_CHECKPOINT_EVERY = 500
MAX_TRIALS = 100_000  # in all rounds: each is a run folder


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What a sweep is: its `searches` (first round's ranges), the `settings` every trial shares (TrainConfig
    fields; `TRIAL_DEFAULTS` where not given), `trials` per round, `rounds`, the `seed` every trial's
    draw derives from, the iterations between a trial's checkpoints (`checkpoint_every`) and whether each trial
    draws its charts and report (`charts`)."""

    searches: tuple
    settings: dict
    trials: int
    rounds: int = 1
    seed: int = 0
    checkpoint_every: int = TRIAL_CHECKPOINT_EVERY
    charts: bool = False

    def __post_init__(self):
        for name in ("trials", "rounds", "checkpoint_every"):
            POSITIVE_INT.check(name, getattr(self, name))
        NON_NEGATIVE_INT.check("seed", self.seed)
        check_flag("charts", self.charts)
        object.__setattr__(self, "settings", {**TRIAL_DEFAULTS, **self.settings})
        if self.trials * self.rounds > MAX_TRIALS:
            raise ConfigError(f"{self.trials} trials x {self.rounds} rounds is more than the {MAX_TRIALS} trials a "
                              "sweep may have: give fewer --trials or --rounds")
        if "seed" in self.settings:
            raise ConfigError("the trials' seeds derive from the sweep's seed: give --seed, not a trial's seed")
        check_searches(self.searches, self.settings)
        held_out = any(search.name == "validation" and min(search.corners()) for search in self.searches)
        if not (self.settings.get("validation") or held_out):
            raise ConfigError("a sweep chooses by validation accuracy: hold some training images out with "
                              "--validation F (the book: 0.2 of --train-size 500)")

    def trial_numbers(self, round_):
        return range(round_ * self.trials, (round_ + 1) * self.trials)

    def check_data(self, train_images, workers=1):
        """Refuse now a sweep some trial of which could not train on the `train_images` training images, or not
        with `workers` trials side by side here (None: on a cluster, whose machines are its own)."""
        if workers is not None:
            check_workers(workers)
        check_searches(self.searches, self.settings, train_images, workers or 1)

    def trial_config(self, searches, trial):
        """The TrainConfig of trial number `trial`, drawn from `searches` (its round's)."""
        settings, seed = draw_trial(searches, self.seed, trial)
        return TrainConfig(**self.settings, **settings, seed=seed), settings

    def to_dict(self):
        return {"searches": [search.to_dict() for search in self.searches], "settings": self.settings,
                "trials": self.trials, "rounds": self.rounds, "seed": self.seed,
                "checkpoint_every": self.checkpoint_every, "charts": self.charts}

    @classmethod
    def from_dict(cls, values):
        if not isinstance(values["settings"], dict) or not isinstance(values["searches"], list):
            raise TypeError("settings must be an object and searches a list")
        settings = TrainConfig.from_dict(values["settings"]).to_dict()  # checked, lists as the config keeps them
        # A sweep.json from before TRIAL_DEFAULTS: its trials trained with TrainConfig's defaults, which it keeps.
        given = {key: value for key, value in settings.items() if key in values["settings"] or key in TRIAL_DEFAULTS}
        return cls(tuple(Search.from_dict(search) for search in values["searches"]), given, values["trials"],
                   values["rounds"], values["seed"], values.get("checkpoint_every", TRIAL_CHECKPOINT_EVERY),
                   values.get("charts", False))


def trial_folder(sweep_dir, sweep, trial):
    """The run folder of trial number `trial`: trial-007, its number padded to the sweep's widest."""
    width = len(str(sweep.trials * sweep.rounds - 1))
    return Path(sweep_dir) / f"trial-{trial:0{width}d}"


def _trial_folders(sweep_dir):
    """The trial run folders in `sweep_dir` (trial-000, ...: run folders, with a config.json)."""
    return [path for path in Path(sweep_dir).glob("trial-*") if re.fullmatch(r"trial-\d+", path.name)
            and path.is_dir() and not path.is_symlink() and (path / "config.json").is_file()]


def check_trial_folder(folder, config):
    """Refuse to keep or continue a trial's run folder that was trained with other settings than the sweep's
    draw for it gives (`config`): its results would be recorded against settings they did not come from."""
    check_same_run(folder, config, "this sweep draws for it", "move the folder away to train the trial again, or "
                   "start the sweep afresh with --overwrite")


def new_sweep(sweep, out=None, overwrite=False, data_dir=None):
    """Make the sweep's folder (`out`, default a new one under runs/) with its sweep.json; returns the folder."""
    out = Path(out) if out is not None else new_run_dir()
    check_writable_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, SWEEP_BUSY):  # before an earlier sweep there is replaced
        if (out / SWEEP_FILE).exists() and not overwrite:
            raise ConfigError(f"{out} already holds a sweep ({SWEEP_FILE}): continue it with --resume {out}, give "
                              "another --out, or add --overwrite to replace it")
        if overwrite and (out / SWEEP_FILE).exists():  # the earlier sweep's results and trials must not pass for ours
            for name in (RESULTS_CSV, RESULTS_JSON, BEST_TRIALS_FIGURE, SEARCH_FIGURE):
                (out / name).unlink(missing_ok=True)
            for folder in _trial_folders(out):
                shutil.rmtree(folder)
        write_text_atomic(out / SWEEP_FILE, json.dumps({**sweep.to_dict(), "data_dir": data_dir and str(data_dir)},
                                                       indent=1) + "\n")
        return out


def _sweep_file(sweep_dir):
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.exists():
        raise ConfigError(f"{sweep_dir} holds no sweep (no {SWEEP_FILE}): give the folder of an 'sgdlab sweep'")
    return path


def load_sweep(sweep_dir):
    """The `Sweep` in `sweep_dir` and the data folder it was started with."""
    return read_json_as(_sweep_file(sweep_dir), "sweep's settings", lambda values: (
        Sweep.from_dict(values), stored_data_dir(values.get("data_dir"))), "the sweep cannot be resumed")


def run_sweep(sweep_dir, data_dir=None, workers=1, scheduler=None, progress=None, data=None):
    """Train the sweep in `sweep_dir` round by round, skipping the trials that have ended already; returns
    `(rows, interrupted)`, the rows as results.csv has them, by trial.

    `workers` local processes train the trials, or the cluster at `scheduler`.
    `progress(row)` is called for each trial that has ended, those that
    ended before first. A worker lost mid-trial costs the trial's progress
    since its last checkpoint. After Ctrl-C the running trials are saved,
    to resume (`interrupted` is then True). A round some trial of which
    failed (its workers lost too often) ends the sweep there, since the next
    round's ranges depend on it: resuming tries the trial again. `data`: what
    `load_mnist(normalize=False, data_dir=data_dir)` returns, if the caller has it.
    The folder is locked meanwhile: no other process resumes or replaces it.
    """
    _sweep_file(sweep_dir)  # a folder holding none is named, not locked
    with folder_lock(sweep_dir, SWEEP_BUSY):
        return _run_sweep(sweep_dir, data_dir, workers, scheduler, progress, data)


def _run_sweep(sweep_dir, data_dir, workers, scheduler, progress, data):
    from ..data import load_mnist
    from ..engine.threads import usable_cores

    sweep, stored_data_dir = load_sweep(sweep_dir)
    data_dir = data_dir if data_dir is not None else stored_data_dir
    (x_train, t_train), test = data or load_mnist(normalize=False, copy=False, data_dir=data_dir)
    sweep.check_data(len(x_train), workers if scheduler is None else None)
    progress = progress or (lambda row: None)
    previous = _stored_rows(sweep_dir)  # where the trials that ended ran
    rows = {}
    with trial_cluster(workers, scheduler) as client:
        rows_used = sweep.settings.get("train_size") or len(x_train)
        # A local worker with a second core to itself evaluates on it, as sgdlab train does; a cluster's has one.
        background = scheduler is None and usable_cores() >= 2 * workers
        with TrialSubmitter(client, ((x_train[:rows_used], t_train[:rows_used]), test), background) as submitter:
            searches, interrupted = sweep.searches, False
            for round_ in range(sweep.rounds):
                configs = {trial: sweep.trial_config(searches, trial) for trial in sweep.trial_numbers(round_)}
                interrupted = _train_round(sweep_dir, sweep, round_, configs, data_dir, submitter, rows, previous,
                                           progress)
                if interrupted or not all(rows[trial]["status"] in ENDED for trial in configs):
                    break
                searches = narrow(searches, [row["settings"] for row in ranked(rows.values())
                                             if row["round"] == round_ + 1])
    draw_figures(sweep_dir, sweep, rows)
    return rows, interrupted


def draw_figures(sweep_dir, sweep, rows):
    """The book's figure of the best trials and the scatter of every trial, from the trials that have ended."""
    from ..plots.sweep_charts import BEST_SHOWN, plot_best_trials, plot_search

    best = ranked(rows.values())
    if not best:
        return
    histories = [(row, finished_history(trial_folder(sweep_dir, sweep, row["trial"]))) for row in best[:BEST_SHOWN]]
    plot_best_trials([(row, history) for row, history in histories if history is not None],
                     Path(sweep_dir) / BEST_TRIALS_FIGURE)
    plot_search(list(rows.values()), sweep.searches, Path(sweep_dir) / SEARCH_FIGURE)


def _train_round(sweep_dir, sweep, round_, configs, data_dir, submitter, rows, previous, progress):
    folders = {trial: trial_folder(sweep_dir, sweep, trial) for trial in configs}
    for trial, (config, _) in configs.items():  # all of them before any trains
        check_trial_folder(folders[trial], config)
    futures = {}
    for trial, (config, settings) in configs.items():
        row = {"trial": trial, "round": round_ + 1, "settings": settings, "seed": config.seed}
        folder = folders[trial]
        history = finished_history(folder)
        if history is not None:  # ended before: its outcome again, from its folder (where it ran, as recorded)
            worker = previous.get(trial, {}).get("worker", "")
            rows[trial] = {**row, **trial_outcome(trial, history, worker)}
            progress(rows[trial])
            continue
        rows[trial] = {**row, "status": "queued"}
        futures[submitter.submit(trial, config, folder, data_dir, Path(sweep_dir) / SWEEP_FILE, sweep)] = trial
    write_results(sweep_dir, sweep, rows)
    try:
        with interrupts_deferred() as interrupted:
            for future in _as_completed(futures, interrupted):
                trial = futures[future]
                rows[trial] = {**rows[trial], **_outcome(future, folders[trial])}
                _mark_running(rows, folders)
                write_results(sweep_dir, sweep, rows)
                progress(rows[trial])
    except KeyboardInterrupt:
        _stop_round(sweep_dir, sweep, futures, folders, submitter, rows)
        return True
    except SgdlabError:  # a worker cannot go on (it cannot see the sweep, its disk is full): nor can the sweep
        _stop_round(sweep_dir, sweep, futures, folders, submitter, rows)
        raise
    return False


def _as_completed(futures, interrupted):
    """`futures` as they end; KeyboardInterrupt once `interrupted()` says a Ctrl-C (SIGTERM, SIGHUP) came. The
    signals are held while the round waits (`interrupts_deferred`) rather than raised wherever they land: one
    raised in code that reports and drops exceptions (a weakref's callback in Dask's client) would be lost, and the
    sweep would train on as if no key had been pressed. Dask's `as_completed` waits on a thread of its own, this one
    on its queue, a moment at a time."""
    from distributed import as_completed

    ended = queue.SimpleQueue()

    def relay():
        try:
            for future in as_completed(futures):
                ended.put(future)
        except BaseException as exc:  # raised where the round waits
            ended.put(exc)

    threading.Thread(target=relay, name="sgdlab-trials-ended", daemon=True).start()
    for _ in range(len(futures)):
        while True:
            if interrupted() is not None:
                raise KeyboardInterrupt
            try:
                future = ended.get(timeout=SIGNAL_POLL_SECONDS)
                break
            except queue.Empty:
                pass
        if isinstance(future, BaseException):
            raise future
        yield future


def _stop_round(sweep_dir, sweep, futures, folders, submitter, rows):
    """Stop the round's running trials, saved to resume, and record where every trial stands."""
    with interrupts_deferred():  # a second Ctrl-C waits, too, for the running trials to save
        submitter.stop(list(futures))
        for future, trial in futures.items():
            if rows[trial]["status"] in WAITING:
                with contextlib.suppress(SgdlabError):
                    rows[trial] = {**rows[trial], **_outcome(future, folders[trial])}
        _mark_running(rows, folders)
        write_results(sweep_dir, sweep, rows)


def _mark_running(rows, folders):
    """Mark `running` the waiting trials whose run folder is being trained (a process holds its lock), `queued`
    the others: where each stands, as results.csv says while the sweep runs. A lock file left by a worker that
    was killed holds nothing: its trial is queued."""
    for trial, folder in folders.items():
        if rows[trial]["status"] in WAITING:
            rows[trial]["status"] = "running" if lock_held(Path(folder) / LOCK_NAME) else "queued"


def _outcome(future, folder):
    """A future's trial outcome once it has ended; a trial that failed (a worker lost too often, an error) is
    recorded as failed, to try again on resume, and one that never ran (the sweep stopped first, the cluster
    went away) as interrupted if its folder holds progress to continue from, else as not run."""
    if future.status == "finished" and future.result() is not None:
        return future.result()
    if future.status == "error":
        exc = future.exception()
        if isinstance(exc, SgdlabError):  # ends the sweep, which is continued as a whole
            raise exc.with_advice(f"once it is mended, continue the sweep: sgdlab sweep --resume {Path(folder).parent}")
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    started = (Path(folder) / "config.json").exists()
    return {"status": "interrupted" if started else "not run"}


def ranked(rows):
    """The finished trials' rows, best validation accuracy first (ties by trial number): a diverged trial's network
    is no use, whatever it reached before."""
    scored = [row for row in rows if row.get("status") == "finished" and row.get("val_acc") is not None]
    return sorted(scored, key=lambda row: (-row["val_acc"], row["trial"]))


def write_results(sweep_dir, sweep, rows):
    """results.json (every row as recorded) and results.csv (a row per trial: trial, round, each searched
    setting, seed, then the outcome), atomically."""
    ordered = [rows[trial] for trial in sorted(rows)]
    write_text_atomic(Path(sweep_dir) / RESULTS_JSON, json.dumps({"trials": ordered}, indent=1) + "\n")
    names = [search.name for search in sweep.searches]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["trial", "round", *names, "seed", *OUTCOME_KEYS])
    for row in ordered:
        writer.writerow([row["trial"], row["round"], *(row["settings"][name] for name in names), row["seed"],
                         *("" if row.get(key) is None else row[key] for key in OUTCOME_KEYS)])
    write_text_atomic(Path(sweep_dir) / RESULTS_CSV, text.getvalue())


def read_results(sweep_dir):
    """The rows of results.json, by trial ({} if there is none yet)."""
    path = Path(sweep_dir) / RESULTS_JSON
    if not path.exists():
        return {}
    stored = read_json_object(path, "sweep's results")
    try:
        return {int(row["trial"]): row for row in stored["trials"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise SgdlabError(f"{path} is damaged ({exc}): delete it, and resume the sweep to write it again") from None


def _stored_rows(sweep_dir):
    try:
        return read_results(sweep_dir)
    except SgdlabError:  # only where each trial ran is taken from it: the outcomes come from the folders
        return {}


def best_settings_line(row):
    """`lr 0.0061, weight_decay 3.2e-07`: a row's searched settings, shortly."""
    return ", ".join(f"{name} {short_value(value)}" for name, value in row["settings"].items())
