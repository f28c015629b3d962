"""The book's figures, drawn from a `History`: accuracy per epoch, and loss per iteration.

Each figure is built once, by `accuracy_figure` and `loss_figure`, as a plain
matplotlib `Figure` (no pyplot): `plot_history` writes them as PNG files, and
`History.plot()` returns them to a notebook, where they display inline.
Building them without pyplot leaves the caller's backend alone (a notebook's
inline one stays) and keeps them out of pyplot's list of open figures; every
other sgdlab figure is made the same way, by `new_figure`, and written by
`save_png`. matplotlib is imported on first use, so training and `sgdlab
--help` never pay for it and no display is needed.
"""

import functools
import io
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..fileio import atomic_write

SMOOTHING_WINDOW = 100  # iterations averaged in the smoothed loss curve (fewer for short runs)
# Fixed margins that fit these charts' labels: automatic layout would cost an extra render of each chart.
MARGINS = {"left": 0.11, "right": 0.95, "bottom": 0.12, "top": 0.92}
FIGURE_SIZE = (6, 4.2)  # inches
DPI = 110


def import_matplotlib():
    """matplotlib itself, also when MPLBACKEND names no backend (sgdlab draws without one, so needs none)."""
    try:
        import matplotlib
    except ValueError as exc:
        if "backend" not in str(exc):
            raise
        os.environ.pop("MPLBACKEND", None)
        for name in [name for name in sys.modules if name.partition(".")[0] == "matplotlib"]:
            del sys.modules[name]  # the failed import's half-made modules: import it afresh
        import matplotlib

    return matplotlib


DRAWN_LIMIT = 1e300  # values beyond it are drawn at it: matplotlib's axis limits and ticks overflow near float's end


def drawable(values):
    """`values` as float64, clipped to +-DRAWN_LIMIT: a diverging run records losses up to float's largest (1.7e308)."""
    return np.clip(np.asarray(values, dtype=np.float64), -DRAWN_LIMIT, DRAWN_LIMIT)


def moving_average(values, window):
    """Mean of each run of `window` consecutive values (shorter output: 'valid' mode), of their `drawable` forms
    (a sum of losses near float's largest would overflow)."""
    values = drawable(values)
    window = max(1, min(window, len(values)))
    cumulative = np.cumsum(np.insert(values / window, 0, 0.0))
    return cumulative[window:] - cumulative[:-window]


class BookFigures(NamedTuple):
    """The book's two figures of a run; a notebook shows both, as PNG images, when this is a cell's value."""

    loss: object  # matplotlib.figure.Figure
    accuracy: object

    def _ipython_display_(self):
        """Both figures, one output each (a tuple would show as its text)."""
        from IPython.display import display

        display(*self)


def book_figures(history):
    """The book's two figures of `history`, loss per iteration and accuracy per epoch (`History.plot()`)."""
    return BookFigures(loss_figure(history), accuracy_figure(history))


def accuracy_figure(history):
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
    return fig


SET_LOSSES = (("train_loss", "train loss", "o", "-"), ("test_loss", "test loss", "s", "--"),
              ("val_loss", "validation loss", "^", ":"))  # key, label, marker, line, as the accuracy figure's


def loss_figure(history):
    """Mini-batch loss of every iteration, raw and smoothed, and the loss on the whole training, test and
    validation sets at each evaluation (where recorded): the overfitting view (the book's 6.4)."""
    fig, ax = _new_chart()
    iterations = np.arange(1, len(history.loss) + 1)
    ax.plot(iterations, drawable(history.loss), linewidth=0.5, alpha=0.4, label="loss")
    window = max(1, min(SMOOTHING_WINDOW, len(history.loss) // 10))
    if len(history.loss) > window > 1:
        smooth = moving_average(history.loss, window)
        ax.plot(iterations[window - 1:], smooth, linewidth=1.5, label=f"moving average ({window} iterations)")
    for key, label, marker, line in SET_LOSSES:
        values = getattr(history, key)
        if any(value is not None for value in values):
            measured = [np.nan if value is None else value for value in values]
            ax.plot(history.iteration, drawable(measured), marker=marker, markersize=3, linestyle=line,
                    linewidth=1, color="black", label=label)
    for change in history.lr_changes:  # the updates after `iteration` use the new rate
        ax.axvline(change["iteration"] + 0.5, color="0.3", linestyle="--", linewidth=0.8)
        ax.annotate(f"lr {change['lr']:g}", (change["iteration"] + 0.5, 1), xycoords=("data", "axes fraction"),
                    xytext=(2, -10), textcoords="offset points", fontsize=8, color="0.3")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title("Mini-batch loss, and the whole sets' at each evaluation" if history.train_loss else
                 "Mini-batch loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return fig


def plot_accuracy(history, path):
    """Write `accuracy_figure(history)` to `path` as a PNG."""
    save_png(accuracy_figure(history), path)


def plot_loss(history, path):
    """Write `loss_figure(history)` to `path` as a PNG."""
    save_png(loss_figure(history), path)


def chart_paths(run_dir):
    """Where `plot_history` puts the two charts."""
    return Path(run_dir) / "accuracy.png", Path(run_dir) / "loss.png"


def plot_history(history, run_dir):
    """Write accuracy.png and loss.png into `run_dir`; returns their paths."""
    paths = chart_paths(run_dir)
    plot_accuracy(history, paths[0])
    plot_loss(history, paths[1])
    return paths


def figure_png(figure, dpi=DPI):
    """`figure` as the bytes of a PNG image, as the run folder's charts are written."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def new_figure(figsize):
    """An empty matplotlib figure of `figsize` inches, outside pyplot (see the module's docstring)."""
    return figure_class()(figsize=figsize)


def save_png(figure, path, dpi=DPI):
    """Write `figure` to `path` as a PNG image, atomically."""
    with atomic_write(path) as handle:
        handle.write(figure_png(figure, dpi))


@functools.cache
def figure_class():
    """matplotlib's `Figure`, showing itself as a PNG in a notebook: IPython shows a figure made without pyplot as
    its text, unless the object offers `_repr_png_` (made here, on first use, to import matplotlib only then)."""
    import_matplotlib()
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        def _repr_png_(self):
            return figure_png(self)

    return NotebookFigure


def _new_chart():
    """A figure of the charts' size and margins with one axes, outside pyplot (see the module's docstring)."""
    fig = new_figure(FIGURE_SIZE)
    fig.subplots_adjust(**MARGINS)
    return fig, fig.subplots()
