"""The run folder: everything a training run leaves behind, each file written atomically.

    config.json    the TrainConfig, its dtype resolved (and the data folder used)
    history.json   the History (see sgdlab.history for its keys)
    history.csv    one row per evaluation
    model.npz      the trained weights, reloadable with sgdlab.load_model
    accuracy.png   train and test accuracy per epoch
    loss.png       mini-batch loss per iteration
"""

import contextlib
import itertools
import json
import time
from pathlib import Path

from .checkpoint import save_model
from .fileio import write_text_atomic
from .plotting import chart_paths, plot_history

RUNS_ROOT = Path("runs")
RUN_FILES = ("config.json", "history.json", "history.csv", "model.npz", "accuracy.png", "loss.png")


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


def claim_run_dir(run_dir, config, extra_config=None):
    """Write the run's config.json into `run_dir` before it trains, if no run has written one there.

    The file is created exclusively, so two runs given the same folder at the
    same time never both write there: the second gets FileExistsError.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    with open(config_path, "x"):
        pass
    write_text_atomic(config_path, _settings_json(config, extra_config))


def release_run_dir(run_dir, made, claimed):
    """Give the folder back, for a run that ends before it has anything to save.

    `claimed`: `claim_run_dir` wrote its config.json; `made`: the folder is new.
    """
    if claimed:
        (run_dir / "config.json").unlink(missing_ok=True)
    if made:
        with contextlib.suppress(OSError):  # only if empty
            run_dir.rmdir()


def save_run(run_dir, config, network, history, plot=True, extra_config=None):
    """Write the run folder; returns its path. Without `plot`, the folder is left with no charts."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.json", _settings_json(config, extra_config))
    history.save(run_dir / "history.json", run_dir / "history.csv")
    save_model(run_dir / "model.npz", network, config)
    if plot:
        plot_history(history, run_dir)
    else:  # charts of an earlier run in this folder (replaced with --overwrite) must not pass for this one's
        for chart in chart_paths(run_dir):
            chart.unlink(missing_ok=True)
    return run_dir


def _settings_json(config, extra_config):
    settings = {**config.to_dict(), "dtype": config.network_dtype, **(extra_config or {})}  # the dtype in use
    return json.dumps(settings, indent=1) + "\n"
