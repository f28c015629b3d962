"""The figures of the book's chapter-6 experiments, each drawn from the variants' histories (variant -> History)."""

import numpy as np

from .charts import SMOOTHING_WINDOW, drawable, moving_average, new_figure, save_png

TITLES = {"optimizers": "Optimizers on MNIST (784-100-100-100-100-10, ReLU, He weights)",
          "weight-init": "Initial weight scales on MNIST (784-100-100-100-100-10, ReLU, SGD)"}


def plot_losses(histories, path, name):
    """Smoothed mini-batch loss of each variant against iterations: figures 6-9 and 6-15."""
    fig = new_figure((7, 4.5))
    ax = fig.subplots()
    for index, (variant, history) in enumerate(histories.items()):
        window = max(1, min(SMOOTHING_WINDOW, len(history.loss) // 10))
        smooth = moving_average(history.loss, window)
        ax.plot(np.arange(window, len(history.loss) + 1), smooth, color=f"C{index}", linewidth=1.4, label=variant)
    top = max([1.0] + [float(np.max(drawable(h.loss[:50]))) * 1.05 for h in histories.values() if h.loss])
    ax.set(xlabel="iterations", ylabel="loss (moving average)", ylim=(0, min(top, 2.6)), title=TITLES.get(name, name))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    save_png(fig, path, dpi=100)


def plot_batch_norm_grid(histories, path, name):
    """Training accuracy per epoch with batch norm (solid) and without (dashed), one panel per initial weight
    scale: figure 6-19's grid of 16."""
    scales = dict.fromkeys(variant.partition("-std-")[2] for variant in histories  # a pair may be cut short by Ctrl-C
                           if "-std-" in variant)
    fig = new_figure((11, 9))
    axes = fig.subplots(4, 4, sharex=True, sharey=True)
    for ax, scale in zip(axes.flat, scales):
        for kind, label, color, style in (("batch-norm", "batch norm", "C0", "-"), ("plain", "plain", "C1", "--")):
            history = histories.get(f"{kind}-std-{scale}")
            if history is not None:
                ax.plot(history.epoch, history.train_acc, color=color, linestyle=style, label=label)
        ax.set_title(f"W: {scale}", fontsize="small")
        ax.set_ylim(0, 1.0)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epochs")
    for ax in axes[:, 0]:
        ax.set_ylabel("train accuracy")
    axes[0, 0].legend(loc="lower right", fontsize="x-small")
    fig.suptitle("Batch normalization (solid) against none (dashed), by initial weight std, 1000 training images")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.06, top=0.92, hspace=0.3, wspace=0.08)
    save_png(fig, path, dpi=100)


def plot_overfitting(histories, path, name):
    """Train and test accuracy per epoch, one panel per variant: figures 6-20 to 6-23 side by side."""
    fig = new_figure((5.5 * len(histories), 4.2))
    axes = fig.subplots(1, len(histories), sharey=True)
    for ax, (variant, history) in zip(np.atleast_1d(axes), histories.items()):
        ax.plot(history.epoch, history.train_acc, color="C0", label="train")
        ax.plot(history.epoch, history.test_acc, color="C1", linestyle="--", label="test")
        ended = (f"train {history.train_acc[-1]:.3f}, test {history.test_acc[-1]:.3f} (gap "
                 f"{history.train_acc[-1] - history.test_acc[-1]:.3f})" if history.iteration else "never evaluated")
        ax.set(xlabel="epochs", title=f"{variant}: {ended}", ylim=(0, 1.0))
        ax.title.set_fontsize("medium")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("accuracy")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.08)
    save_png(fig, path, dpi=100)


FIGURES = {figure.__name__: figure for figure in (plot_losses, plot_batch_norm_grid, plot_overfitting)}  # by name
