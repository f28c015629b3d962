"""Draw the README's chapter-7 pictures from a finished `sgdlab train --net simple-convnet` run: the first
layer's 30 filters before and after training, as the book's figure 7-24 (ch07/visualize_filter.py) draws them,
and the run's own accuracy chart.

    python docs/make_chapter7_figures.py RUN_DIR

The filters before training are the run's own: its seed rebuilds the very weights it started from.
"""

import argparse
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sgdlab.runs.model_file import load_model  # noqa: E402
from sgdlab.runs.run_folder import read_run_settings  # noqa: E402
from sgdlab.training.trainer import Trainer  # noqa: E402

FIGURES = Path(__file__).parent / "ch7"
COLUMNS = 10


def draw_filters(before, after, trained_for, path):
    """Each filter one small grey image, its largest weight black (the book's `cmap=plt.cm.gray_r`), each
    scaled to its own range; one row of panels per state."""
    count = len(before)
    rows = -(-count // COLUMNS)
    figure, axes = plt.subplots(2 * rows, COLUMNS, figsize=(COLUMNS * 0.6, 2 * rows * 0.6 + 0.8))
    for block, (title, filters) in enumerate((("before training", before), (f"after {trained_for}", after))):
        for i, ax in enumerate(axes[block * rows:(block + 1) * rows].ravel()):
            ax.set_axis_off()
            if i < count:
                ax.imshow(filters[i, 0], cmap=plt.cm.gray_r, interpolation="nearest")
        axes[block * rows, 0].set_title(title, loc="left", fontsize=9, x=0.0)
    figure.tight_layout(h_pad=0.2, w_pad=0.2)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    run_dir = parser.parse_args().run_dir
    config = read_run_settings(run_dir).config
    initial = Trainer.from_config(config).network
    trained, _ = load_model(run_dir / "model.npz")
    FIGURES.mkdir(exist_ok=True)
    trained_for = f"{config.epochs} epochs" if config.epochs else f"{config.iters} iterations"
    draw_filters(initial.params["W1"], trained.params["W1"], trained_for, FIGURES / "filters.png")
    shutil.copyfile(run_dir / "accuracy.png", FIGURES / "accuracy.png")
    print(f"wrote {FIGURES / 'filters.png'} and {FIGURES / 'accuracy.png'}")


if __name__ == "__main__":
    main()
