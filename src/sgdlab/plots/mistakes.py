"""The book's figure of the test digits a network gets wrong (ch08/misclassified_mnist.py): each digit drawn as the
book draws it, dark ink on white, with its label and the prediction under it; the most confident mistakes first."""

import math

import numpy as np

from .charts import new_figure, save_png

COLUMNS = 5  # the book's grid is 4 rows of 5
TILE_INCHES = 1.3  # a digit's square
CAPTION_INCHES = 0.3  # the line under it
TITLE_INCHES = 0.45


def plot_mistakes(images, mistakes, path, title):
    """Write the figure of `mistakes` (`training.inspection.test_set_errors`'s gallery: each one's index in
    `images`, label, prediction and its probability) to `path` as a PNG, atomically."""
    columns = max(1, min(COLUMNS, len(mistakes)))
    rows = max(1, math.ceil(len(mistakes) / columns))
    height = rows * (TILE_INCHES + CAPTION_INCHES) + TITLE_INCHES
    fig = new_figure((max(columns, 3) * TILE_INCHES, height))
    fig.subplots_adjust(left=0.02, right=0.98, bottom=CAPTION_INCHES / height, top=1 - TITLE_INCHES / height,
                        hspace=CAPTION_INCHES / TILE_INCHES, wspace=0.1)
    fig.suptitle(title, fontsize="medium")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, mistake in zip(axes, mistakes):
        ax.imshow(np.asarray(images[mistake["index"]], dtype=np.float64).reshape(28, 28), cmap="gray_r",
                  interpolation="nearest")
        ax.text(0.5, -0.04, f"{mistake['label']} read as {mistake['predicted']} ({mistake['probability']:.2f})",
                transform=ax.transAxes, ha="center", va="top", fontsize="small")
    save_png(fig, path, dpi=100)
