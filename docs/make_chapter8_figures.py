"""Draw the README's chapter-8 picture from a `sgdlab train --net deep-convnet` run: the train and test accuracy
at each evaluation, on a scale that shows the last half point (the whole curve is in the run's own accuracy.png),
with the best test accuracy marked; and print the figures the README quotes.

    python docs/make_chapter8_figures.py RUN_DIR
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(__file__).parent / "ch8"
LOWEST = 0.97  # the bottom of the scale: every evaluation after the first epoch is above it


def draw_accuracy(history, path):
    epochs = history["epoch"]
    trained = [k for k, epoch in enumerate(epochs) if epoch > 0]  # the evaluation before training is off the scale
    figure, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, marker in (("train_acc", "o"), ("test_acc", "s")):
        ax.plot([epochs[k] for k in trained], [history[key][k] for k in trained], marker=marker, markersize=3,
                label=key.split("_")[0])
    best = max(range(len(epochs)), key=lambda k: (history["test_acc"][k], -k))
    ax.annotate(f"best test {history['test_acc'][best]:.4f} (epoch {epochs[best]:g})",
                (epochs[best], history["test_acc"][best]), textcoords="offset points", xytext=(0, -45),
                ha="center", arrowprops={"arrowstyle": "->"})
    ax.axhline(0.993, color="grey", linestyle=":", linewidth=1, label="0.993")
    ax.set_ylim(LOWEST, 1.0)
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    ax.set_title("DeepConvNet, whole train and test sets after each epoch", fontsize=10)
    ax.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    run_dir = parser.parse_args().run_dir
    history = json.loads((run_dir / "history.json").read_text())
    FIGURES.mkdir(exist_ok=True)
    best = draw_accuracy(history, FIGURES / "accuracy.png")
    print(f"wrote {FIGURES / 'accuracy.png'}")
    print(f"final: epoch {history['epoch'][-1]:g}, iteration {history['iteration'][-1]}, train acc "
          f"{history['train_acc'][-1]:.4f}, test acc {history['test_acc'][-1]:.4f}, {history['seconds'][-1]:.0f} s")
    print(f"best test acc {history['test_acc'][best]:.4f} at epoch {history['epoch'][best]:g}")
    reached = next((history["epoch"][k] for k, acc in enumerate(history["test_acc"]) if acc >= 0.993), None)
    print(f"first at or above 0.993: epoch {reached}" if reached is not None else "never at or above 0.993")
    if history.get("stopped"):
        print(f"stopped: {history['stopped']}")


if __name__ == "__main__":
    main()
