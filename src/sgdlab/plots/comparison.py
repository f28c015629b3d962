"""Several runs on one figure: their loss and accuracy curves overlaid, each labelled by how its settings differ
(`sgdlab.runs.run_labels.difference_labels`)."""

import numpy as np

from .charts import SMOOTHING_WINDOW, moving_average, new_figure, save_png

def plot_comparison(labels, histories, path):
    """Write `path` (PNG): smoothed mini-batch loss per iteration, and train (dashed) and test accuracy per epoch."""
    fig = new_figure((11, 4.2))
    loss_ax, accuracy_ax = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.9, wspace=0.18)
    for index, (label, history) in enumerate(zip(labels, histories)):
        colour = f"C{index % 10}"
        window = max(1, min(SMOOTHING_WINDOW, len(history.loss) // 10))
        if history.loss:
            smooth = moving_average(history.loss, window)
            loss_ax.plot(np.arange(window, len(history.loss) + 1), smooth, color=colour, linewidth=1.3, label=label)
        accuracy_ax.plot(history.epoch, history.test_acc, color=colour, marker="s", markersize=3, label=label)
        accuracy_ax.plot(history.epoch, history.train_acc, color=colour, linestyle="--", linewidth=1)
    loss_ax.set(xlabel="iteration", ylabel="loss", title="Mini-batch loss (moving average)")
    accuracy_ax.set(xlabel="epochs", ylabel="accuracy", ylim=(0, 1.0),
                    title="Test accuracy (solid) and train accuracy (dashed)")
    for ax in (loss_ax, accuracy_ax):
        ax.grid(alpha=0.3)
    loss_ax.legend(loc="upper right", fontsize="small")
    accuracy_ax.legend(loc="lower right", fontsize="small")
    save_png(fig, path, dpi=110)
    return path
