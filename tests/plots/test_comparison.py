"""Runs side by side on one figure."""

from PIL import Image

from sgdlab.plots.comparison import plot_comparison
from sgdlab.training.history import History


def test_the_figure_is_written(tmp_path):
    history = History(iters_per_epoch=10, loss=[2.3 - 0.01 * i for i in range(30)])
    for iteration, acc in ((0, 0.1), (10, 0.5), (20, 0.7), (30, 0.8)):
        history.record_evaluation(iteration, acc, acc - 0.01, float(iteration))
    path = plot_comparison(["a", "b"], [history, history], tmp_path / "both.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1210, 462)
