"""The run folder: everything a training run leaves behind, each file written atomically.

    config.json    the TrainConfig, its dtype resolved (and the data folder used)
    history.json   the History (see sgdlab.training.history for its keys)
    history.csv    one row per evaluation
    model.npz      the trained weights, reloadable with sgdlab.load_model
    accuracy.png   train and test accuracy per epoch
    loss.png       mini-batch loss per iteration

A run takes its folder before it trains (`claim_run_folder`): a new folder
under runs/, or the one asked for if it holds no earlier run (unless it is
to be overwritten), made the run's by creating its config.json exclusively,
so two runs never share one. A run that ends before training gives it back.
An earlier run that is to be overwritten keeps its files until training
starts (`RunFolder.start`); then they all go at once, so the folder never
mixes two runs' files. history.json is written last: a folder holding it
holds a whole run, and one with config.json alone holds a run that never
finished saving.
"""

import contextlib
import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import ConfigError, SgdlabError
from ..fileio import PART_SUFFIX, exclusive_lock, read_json_as, write_text_atomic
from ..plots.charts import chart_paths, plot_history
from ..plots.report import REPORT_NAME, write_report
from ..training.config import TrainConfig
from ..training.history import History
from .model_file import save_model

RUNS_ROOT = Path("runs")
RUN_FILES = ("config.json", "history.json", "history.csv", "model.npz", "accuracy.png", "loss.png", REPORT_NAME)
CHECKPOINT_NAME = "checkpoint.npz"  # the state to continue from, while the run trains (sgdlab.runs.checkpoint)
LOCK_NAME = ".lock"  # held by the process training the run


@dataclass
class RunFolder:
    """A folder claimed for one run. `made`: the outermost folder made for it (itself, or runs/ or a parent of
    --out that did not exist either), None if it existed; `claimed`: its config.json is this run's (not yet, for a
    folder whose earlier run is to be overwritten)."""

    path: Path
    made: Path | None
    claimed: bool
    resumed: bool = False  # the folder's run is being continued: its files stay until replaced

    def start(self, config, extra_settings=None):
        """Training starts: the earlier run's files, if any are to be replaced, go, and config.json is this run's.
        A continued run's results so far go too (its checkpoint holds them): until it saves, the folder reads
        as a run in progress, not as the stopped run it was."""
        if self.resumed:
            for name in RUN_FILES:
                if name != "config.json":
                    (self.path / name).unlink(missing_ok=True)
        elif not self.claimed:
            for name in ("history.json", CHECKPOINT_NAME, *RUN_FILES):  # never a whole-looking or resumable mix
                (self.path / name).unlink(missing_ok=True)
            write_text_atomic(self.path / "config.json", _settings_json(config, extra_settings))
            self.claimed = True

    def lock(self):
        """While training: this process's, refused to any other."""
        self.path.mkdir(parents=True, exist_ok=True)
        return folder_lock(self.path, "being trained by another process: wait for it to end (or give a new run "
                                      "another --out)")

    def release(self):
        """Give the folder back, for a run that ends before it has anything to save."""
        if self.resumed:
            return
        if self.claimed:
            (self.path / "config.json").unlink(missing_ok=True)
        if self.made is not None:
            (self.path / LOCK_NAME).unlink(missing_ok=True)  # a lock this process still holds goes with it
            with contextlib.suppress(OSError):  # each only if empty
                for folder in (self.path, *self.path.parents):
                    folder.rmdir()
                    if folder == self.made:
                        break


def folder_lock(path, busy):
    """Within: the folder `path` is this process's, and refused with a `ConfigError` saying
    it is `busy` to any other that asks: a run's, a sweep's or an experiment's, from before anything in it is
    replaced until it has saved. The lock is `path/.lock`, held as `sgdlab.fileio.exclusive_lock` holds one (the
    system drops it with its holder; a link or anything but a regular file there is refused, never followed)."""
    path = Path(path)
    return exclusive_lock(path / LOCK_NAME, lambda: ConfigError(f"{path} is {busy}"))


def claim_run_folder(out, overwrite, config, extra_settings=None):
    """The run's folder (`out`, else a new one under runs/), made this run's before it trains.

    It must be able to take the results, and must not hold an earlier run's
    files unless `overwrite`: both are refused with a `ConfigError` now, not
    found out after training.
    """
    if out is None:
        check_writable_folder(RUNS_ROOT)
        made = _outermost_missing(Path(RUNS_ROOT))
        path = new_run_dir()
        made = made or path
    else:
        path = Path(out)
        check_writable_folder(path)
        found = run_files_in(path)
        if found and not overwrite:
            if (path / CHECKPOINT_NAME).exists() and "history.json" not in found:
                raise ConfigError(f"{path} holds a run that ended before saving, with a checkpoint: continue it "
                                  f"with 'sgdlab train --resume {path}', or add --overwrite to start it again there")
            if "history.json" not in found:
                raise ConfigError(f"{path} holds a run's files ({', '.join(found)}, no history.json: a run still "
                                  "training, or one that ended before saving): give another --out, or add "
                                  "--overwrite to start it again there")
            raise ConfigError(f"{path} already holds a run's files ({', '.join(found)}): give another --out, "
                              "or add --overwrite to replace them")
        made = _outermost_missing(path)
    if overwrite:
        path.mkdir(parents=True, exist_ok=True)
        return RunFolder(path, made, claimed=False)
    try:
        _write_config_exclusively(path, config, extra_settings)
    except FileExistsError:
        raise ConfigError(f"{path} was just taken by another run: give another --out") from None
    return RunFolder(path, made, claimed=True)


def _outermost_missing(path):
    """The outermost of `path` and its parents that does not exist (None if `path` does)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def new_run_dir(root=RUNS_ROOT):
    """Create a folder under `root` named by the current time, and return it.

    Creating it is what reserves the name, so runs started in the same second
    each get their own ("-2", "-3", ...).
    """
    Path(root).mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        candidate = Path(root) / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


def run_files_in(run_dir):
    """The names of a run's files that are already in `run_dir`."""
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


def remove_unfinished_writes(run_dir):
    """Delete the temporary files that writes of run files left behind when their process was killed."""
    for name in (*RUN_FILES, CHECKPOINT_NAME):
        for leftover in Path(run_dir).glob(f".{name}.*{PART_SUFFIX}"):
            leftover.unlink(missing_ok=True)


def check_writable_folder(path):
    """Refuse a results folder that could not be made, or not written in, before any work is done."""
    path = Path(path)
    check_folder_name(path, "give --out a name in UTF-8")
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path} is a link to nothing: give --out a folder for the run's results")
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise ConfigError(f"{existing} is a file, not a folder: the run's results need a folder (choose one "
                          "with --out)")
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"{existing} is not writable: give --out a folder you may write in")


def check_folder_name(path, fix):
    """Refuse a folder whose name is not UTF-8 text (Python keeps such bytes as lone surrogates): report.html,
    the JSON files and the lab page could not hold it, and a run there would train and then fail to save."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"the folder name {os.fsencode(path)!r} is not UTF-8 text, which the run's files and the "
                          f"lab page need: {fix}") from None


def save_run(run_dir, config, network, history, plot=True, extra_settings=None, draw=plot_history, test_set=None,
             test_scores=None):
    """Write the run folder, history.json last; returns its path. `draw(history, run_dir)` draws the charts
    (the chart process's, say); without `plot`, the folder is left with no charts. With `test_set` (images,
    labels), report.html shows the run examined on it (from `test_scores`, the network's output scores on it,
    when the trainer has them: `Trainer.test_scores`)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = _settings_json(config, extra_settings)
    write_text_atomic(run_dir / "config.json", settings)
    save_model(run_dir / "model.npz", network, config)
    if plot:
        draw(history, run_dir)
    else:  # charts of an earlier run in this folder must not pass for this one's
        for chart in chart_paths(run_dir):
            chart.unlink(missing_ok=True)
    if test_set is not None:
        write_report(run_dir, _settings(config, extra_settings), history, network, test_set, test_scores)
    else:
        (run_dir / REPORT_NAME).unlink(missing_ok=True)
    history.save(run_dir / "history.json", run_dir / "history.csv")
    return run_dir


class RunSettings(NamedTuple):
    """What a run's config.json holds: the run's settings, and the data folder it read MNIST from (None if it
    does not say)."""

    config: TrainConfig
    data_dir: str | None

    def to_dict(self):
        """The settings as config.json holds them (and the page and `sgdlab compare` show them)."""
        return _settings(self.config, {"data_dir": self.data_dir} if self.data_dir is not None else None)


def read_run_settings(run_dir):
    """The `RunSettings` in `run_dir`'s config.json, every value checked: anything but the settings of a run
    (an unknown or ill-typed setting, a data folder that is no folder's name) is an `SgdlabError` naming it."""
    def settings(values):
        data_dir = stored_data_dir(values.pop("data_dir", None))
        return RunSettings(TrainConfig.from_dict(values), data_dir)

    return read_json_as(Path(run_dir) / "config.json", "run's settings", settings,
                        "it is not a run's settings sgdlab wrote")


def stored_data_dir(value):
    """The data folder a stored file (config.json, sweep.json, experiment.json) names, if it names one: a
    folder's name, or None; anything else is a ValueError."""
    if value is not None and not (isinstance(value, str) and value and "\0" not in value):
        raise ValueError(f"data_dir {value!r} is not a folder's name")
    return value


def check_same_run(folder, config, whose, fix):
    """Refuse to keep or continue the run in `folder` if it was made with other settings than `config` (`whose`:
    the settings of what, such as a sweep's trial): its results would be recorded against settings they did not
    come from. `fix` says what to do instead."""
    if not (Path(folder) / "config.json").exists():
        return
    if read_run_settings(folder).config.resolved() != config.resolved():
        raise SgdlabError(f"{folder} holds a run with other settings than {whose}: {fix}")


def read_run(run_dir):
    """A finished or stopped run's settings (its config.json, as a dict) and its `History`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SgdlabError(f"{run_dir} is not a folder: give a run folder written by 'sgdlab train'")
    if (run_dir / "config.json").exists() and not (run_dir / "history.json").exists():
        raise SgdlabError(f"{run_dir} holds no results yet (config.json, no history.json): a run still training, "
                          "or one that ended before saving (train it again there with --overwrite)")
    return read_run_settings(run_dir).to_dict(), History.load(run_dir / "history.json")


def _write_config_exclusively(run_dir, config, extra_settings):
    """Create config.json exclusively (FileExistsError if a run has one there), then fill it atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    with open(config_path, "x"):
        pass
    try:
        write_text_atomic(config_path, _settings_json(config, extra_settings))
    except BaseException:  # a full disk: no empty config.json left to block the folder
        config_path.unlink(missing_ok=True)
        raise


def _settings(config, extra_settings):
    return {**config.resolved().to_dict(), **(extra_settings or {})}


def _settings_json(config, extra_settings):
    return json.dumps(_settings(config, extra_settings), indent=1) + "\n"
