"""The book's figures, drawn from a `History`: accuracy per epoch, and loss per iteration.

matplotlib is imported through `prepare_matplotlib` only, and with the file-only Agg backend, so
training and `sgdlab --help` never pay for it and no display is needed.
"""

import os
import sys
from pathlib import Path

import numpy as np

from ..fileio import atomic_write

SMOOTHING_WINDOW = 100  # iterations averaged in the smoothed loss curve (fewer for short runs)
# Fixed margins that fit these charts' labels: automatic layout would cost an extra render of each chart.
MARGINS = {"left": 0.11, "right": 0.95, "bottom": 0.12, "top": 0.92}


def prepare_matplotlib():
    """matplotlib's pyplot with the file-only Agg backend (imported on first use: it takes half a second)."""
    try:
        import matplotlib
    except ValueError as exc:  # MPLBACKEND names no backend: sgdlab only writes files, with Agg, so needs none
        if "backend" not in str(exc):
            raise
        os.environ.pop("MPLBACKEND", None)
        for name in [name for name in sys.modules if name.partition(".")[0] == "matplotlib"]:
            del sys.modules[name]  # the failed import's half-made modules: import it afresh
        import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def moving_average(values, window):
    """Mean of each run of `window` consecutive values (shorter output: 'valid' mode)."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(window, len(values)))
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    return (cumulative[window:] - cumulative[:-window]) / window


def plot_accuracy(history, path):
    """Train and test accuracy against epochs on one chart, as in the book's figure 4-12."""
    fig, ax = _new_chart()
    ax.plot(history.epoch, history.train_acc, marker="o", markersize=3, label="train acc")
    ax.plot(history.epoch, history.test_acc, marker="s", markersize=3, linestyle="--", label="test acc")
    if history.val_acc:
        ax.plot(history.epoch, history.val_acc, marker="^", markersize=3, linestyle=":", label="validation acc")
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, max(history.epoch[-1:] + [1]) * 1.02)  # from the start, also when only the end was evaluated
    ax.set_ylim(0, 1.0)
    ax.set_title("Accuracy on the whole training and test sets")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_loss(history, path):
    """Mini-batch loss of every iteration, raw and smoothed."""
    fig, ax = _new_chart()
    iterations = np.arange(1, len(history.loss) + 1)
    ax.plot(iterations, history.loss, linewidth=0.5, alpha=0.4, label="loss")
    window = max(1, min(SMOOTHING_WINDOW, len(history.loss) // 10))
    if len(history.loss) > window > 1:
        smooth = moving_average(history.loss, window)
        ax.plot(iterations[window - 1:], smooth, linewidth=1.5, label=f"moving average ({window} iterations)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title("Mini-batch loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    _save(fig, path)


def chart_paths(run_dir):
    """Where `plot_history` puts the two charts."""
    return Path(run_dir) / "accuracy.png", Path(run_dir) / "loss.png"


def plot_history(history, run_dir):
    """Write accuracy.png and loss.png into `run_dir`; returns their paths."""
    paths = chart_paths(run_dir)
    plot_accuracy(history, paths[0])
    plot_loss(history, paths[1])
    return paths


def _new_chart():
    fig, ax = prepare_matplotlib().subplots(figsize=(6, 4.2))
    fig.subplots_adjust(**MARGINS)
    return fig, ax


def _save(fig, path):
    plt = prepare_matplotlib()
    try:
        with atomic_write(path) as handle:
            fig.savefig(handle, format="png", dpi=110)
    finally:
        plt.close(fig)
