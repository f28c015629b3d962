"""Runs side by side: labels that say how their settings differ, and the figure."""

from PIL import Image

from sgdlab.plots.comparison import difference_labels, plot_comparison
from sgdlab.training.history import History


def test_labels_name_only_the_settings_that_differ():
    settings = [{"lr": 0.1, "optimizer": "sgd", "seed": 0, "data_dir": "/a"},
                {"lr": 0.001, "optimizer": "adam", "seed": 0, "data_dir": "/b"}]
    assert difference_labels(["a", "b"], settings) == ["lr=0.1, optimizer=sgd", "lr=0.001, optimizer=adam"]


def test_runs_with_the_same_settings_are_labelled_by_their_folder():
    same = {"lr": 0.1, "data_dir": "/a"}
    assert difference_labels(["first", "second"], [same, {**same, "data_dir": "/b"}]) == ["first", "second"]


def test_a_setting_one_run_lacks_counts_as_a_difference():
    labels = difference_labels(["old", "new"], [{"lr": 0.1}, {"lr": 0.1, "optimizer": "adam"}])
    assert labels == ["optimizer=None", "optimizer=adam"]


def test_the_figure_is_written(tmp_path):
    history = History(iters_per_epoch=10, loss=[2.3 - 0.01 * i for i in range(30)])
    for iteration, acc in ((0, 0.1), (10, 0.5), (20, 0.7), (30, 0.8)):
        history.record_evaluation(iteration, acc, acc - 0.01, float(iteration))
    path = plot_comparison(["a", "b"], [history, history], tmp_path / "both.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1210, 462)
