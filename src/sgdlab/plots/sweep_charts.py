"""A sweep's two figures: the book's panels of the best trials, and validation accuracy against each searched setting.

Both are plain matplotlib Figures (no pyplot), saved atomically as PNG.
"""

import math

import numpy as np

from .charts import new_figure, save_png

BEST_SHOWN = 20  # the book's graph_draw_num
COLUMNS = 5  # the book's col_num


def plot_best_trials(best, path):
    """Validation (solid) and training (dashed) accuracy per epoch of the best trials, one small panel each, best
    first, as chapter 6.5's figure 6-24 draws them. `best`: `(row, history)` pairs, best first."""
    best = best[:BEST_SHOWN]
    rows = max(1, math.ceil(len(best) / COLUMNS))
    fig = new_figure((11, 2.1 * rows + 0.6))
    axes = fig.subplots(rows, COLUMNS, sharex=True, sharey=True, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(best):
            ax.set_visible(False)
            continue
        row, history = best[index]
        epochs = history.epoch[:len(history.val_acc)]
        ax.plot(epochs, history.val_acc, color="C0", linewidth=1.2)
        ax.plot(history.epoch, history.train_acc, color="C1", linestyle="--", linewidth=1.2)
        ax.set_title(f"Best-{index + 1} (trial {row['trial']}): val {row['val_acc']:.3f}", fontsize="small")
        ax.text(0.97, 0.05, _settings_text(row["settings"]), transform=ax.transAxes, ha="right", va="bottom",
                fontsize="x-small", color="0.3")
        ax.set_ylim(0, 1.0)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epochs")
    fig.suptitle("The best trials: validation accuracy (solid) and training accuracy (dashed) per epoch")
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12 / rows + 0.04, top=1 - 0.75 / (2.1 * rows + 0.6),
                        hspace=0.45, wspace=0.06)
    save_png(fig, path, dpi=100)


def plot_search(rows, searches, path):
    """Validation accuracy of every trial against each searched setting (a log axis for a log range), coloured
    by round: where the good values lie, and how the rounds closed in on them."""
    fig = new_figure((4.2 * len(searches) + 0.6, 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(searches), sharey=True, squeeze=False)[0])
    rounds = sorted({row["round"] for row in rows})
    for ax, search in zip(axes, searches):
        for round_ in rounds:
            scored = [row for row in rows if row["round"] == round_ and row.get("val_acc") is not None]
            values = [_position(search, row["settings"][search.name]) for row in scored]
            ax.scatter(values, [row["val_acc"] for row in scored], s=18, color=f"C{(round_ - 1) % 10}", alpha=0.8,
                       label=f"round {round_}")
        if search.kind == "log":
            ax.set_xscale("log")
        if search.kind == "choice":
            ax.set_xticks(range(len(search.choices)), [str(choice) for choice in search.choices])
        ax.set_xlabel(search.name.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy")
    axes[0].set_ylim(0, 1.0)
    if len(rounds) > 1:
        axes[0].legend(loc="upper left", fontsize="small")
    fig.subplots_adjust(left=0.6 / (4.2 * len(searches) + 0.6) + 0.02, right=0.98, bottom=0.15, top=0.95,
                        wspace=0.08)
    save_png(fig, path, dpi=100)


def _position(search, value):
    """Where a value goes on its axis: itself, or a choice's index."""
    return search.choices.index(value) if search.kind == "choice" else value


def _settings_text(settings):
    return "\n".join(f"{name} {value:.2g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in settings.items())
