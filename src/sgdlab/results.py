"""The run folder: everything a training run leaves behind, each file written atomically.

    config.json    the TrainConfig, its dtype resolved (and the data folder used)
    history.json   the History (see sgdlab.history for its keys)
    history.csv    one row per evaluation
    model.npz      the trained weights, reloadable with sgdlab.load_model
    accuracy.png   train and test accuracy per epoch
    loss.png       mini-batch loss per iteration
"""

import json
import time
from pathlib import Path

from .checkpoint import save_model
from .fileio import write_text_atomic
from .plotting import chart_paths, plot_history

RUNS_ROOT = Path("runs")
RUN_FILES = ("config.json", "history.json", "history.csv", "model.npz", "accuracy.png", "loss.png")


def default_run_dir(root=RUNS_ROOT):
    """A new folder name under `root` from the current time, never one that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = Path(root) / stamp, 1
    while candidate.exists():
        n += 1
        candidate = Path(root) / f"{stamp}-{n}"
    return candidate


def run_files_in(run_dir):
    """The names of a run's files that are already in `run_dir`."""
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


def save_run(run_dir, config, network, history, plot=True, extra_config=None):
    """Write the run folder; returns its path. Without `plot`, the folder is left with no charts."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {**config.to_dict(), "dtype": config.network_dtype, **(extra_config or {})}  # the dtype in use
    write_text_atomic(run_dir / "config.json", json.dumps(settings, indent=1) + "\n")
    history.save(run_dir / "history.json", run_dir / "history.csv")
    save_model(run_dir / "model.npz", network, config)
    if plot:
        plot_history(history, run_dir)
    else:  # charts of an earlier run in this folder (replaced with --overwrite) must not pass for this one's
        for chart in chart_paths(run_dir):
            chart.unlink(missing_ok=True)
    return run_dir
