import numpy as np
import pytest
from PIL import Image

from sgdlab.plots import charts as plotting
from sgdlab.training.history import History


@pytest.fixture
def history():
    history = History(iters_per_epoch=10)
    for i, (train, test) in enumerate([(0.1, 0.1), (0.8, 0.78), (0.9, 0.87)]):
        history.record_evaluation(10 * i, train, test, float(i))
    history.loss = list(np.linspace(2.3, 0.3, 25) + 0.05 * np.sin(np.arange(25)))
    return history


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions save, kept open for inspection."""
    figures = []
    monkeypatch.setattr(plotting, "save_png", lambda fig, path, dpi=None: figures.append(fig))
    return figures


def test_accuracy_chart_has_train_and_test_curves_against_epochs(history, captured):
    plotting.plot_accuracy(history, "unused.png")
    ax = captured[0].axes[0]
    assert ax.get_xlabel() == "epochs" and ax.get_ylabel() == "accuracy"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train acc", "test acc"]
    train_line, test_line = ax.get_lines()
    np.testing.assert_array_equal(train_line.get_xdata(), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(test_line.get_ydata(), [0.1, 0.78, 0.87])


def test_loss_chart_has_raw_and_smoothed_curves(history, captured):
    plotting.plot_loss(history, "unused.png")
    ax = captured[0].axes[0]
    raw, smooth = ax.get_lines()
    assert len(raw.get_xdata()) == 25 and len(smooth.get_xdata()) < 25
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "loss"


def test_loss_chart_draws_the_whole_sets_losses_at_their_evaluations_where_recorded(history, captured):
    history.train_loss, history.test_loss = [2.3, 0.5, 0.3], [2.31, None, 0.4]  # the test set measured at the end
    plotting.plot_loss(history, "unused.png")
    ax = captured[0].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-2:] == ["train loss", "test loss"] and "validation loss" not in labels
    train, test = ax.get_lines()[-2:]
    np.testing.assert_array_equal(train.get_xdata(), [0, 10, 20])
    np.testing.assert_array_equal(test.get_ydata(), [2.31, np.nan, 0.4])


def test_moving_average():
    np.testing.assert_allclose(plotting.moving_average([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(plotting.moving_average([1, 2], 5), [1.5])


def test_plot_history_writes_png_files(history, tmp_path):
    paths = plotting.plot_history(history, tmp_path)
    assert [p.name for p in paths] == ["accuracy.png", "loss.png"]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accuracy.png", "loss.png"]


def test_history_plot_returns_the_two_figures_the_run_folder_gets(history, tmp_path):
    from matplotlib.figure import Figure

    loss, accuracy = history.plot()
    assert isinstance(loss, Figure) and isinstance(accuracy, Figure)
    assert loss.axes[0].get_ylabel() == "loss" and accuracy.axes[0].get_ylabel() == "accuracy"
    accuracy_png, loss_png = plotting.plot_history(history, tmp_path)
    assert plotting.figure_png(accuracy) == accuracy_png.read_bytes()  # one drawing, two uses
    assert plotting.figure_png(loss) == loss_png.read_bytes()


def test_the_figures_show_as_png_in_a_notebook(history, monkeypatch):
    import sys

    shown = []
    display = type(sys)("IPython.display")
    display.display = lambda *objects: shown.extend(objects)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.setitem(sys.modules, "IPython", type(sys)("IPython"))
    figures = history.plot()
    figures._ipython_display_()  # IPython's call for a cell ending in history.plot()
    assert shown == list(figures)
    assert all(figure._repr_png_().startswith(b"\x89PNG") for figure in shown)


def test_the_figures_leave_pyplot_and_its_backend_alone(tmp_path):
    """A notebook's inline backend stays in place, and no figure is left open in pyplot for it to show twice:
    the run's figures, a comparison's, and the experiments'."""
    import subprocess
    import sys

    code = ("import sys, matplotlib; from pathlib import Path; from sgdlab.plots.charts import book_figures; "
            "from sgdlab.plots import comparison, experiment_charts as charts; "
            "from sgdlab.training.history import History; h = History(10, loss=[2.0, 1.0]); "
            "h.record_evaluation(0, 0.1, 0.1, 0.0); book_figures(h); out = Path(sys.argv[1]); "
            "comparison.plot_comparison(['a', 'b'], [h, h], out / 'c.png'); "
            "charts.plot_losses({'sgd': h}, out / 'l.png', 'optimizers'); "
            "charts.plot_batch_norm_grid({'plain-std-0.1': h}, out / 'g.png', 'batch-norm'); "
            "charts.plot_overfitting({'a': h, 'b': h}, out / 'o.png', 'dropout'); "
            "print('matplotlib.pyplot' in sys.modules, dict.__getitem__(matplotlib.rcParams, 'backend'))")
    env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PATH": ""}
    shown = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                           env=env)
    assert shown.stdout.split() == ["False", "module://matplotlib_inline.backend_inline"]
    for name in ("c", "l", "g", "o"):
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.format == "PNG"


def test_losses_near_the_largest_float_are_drawn(tmp_path):
    from sgdlab.plots.experiment_charts import plot_losses

    huge = History(iters_per_epoch=50, loss=[1.7e308] * 150 + [2.3] * 50, iteration=[0], epoch=[0.0],
                   train_acc=[0.1], test_acc=[0.1], seconds=[0.0])  # a diverging run records such losses
    smooth = plotting.moving_average(huge.loss, 100)
    assert np.all(np.isfinite(smooth)) and smooth[0] == pytest.approx(plotting.DRAWN_LIMIT)
    for path in plotting.plot_history(huge, tmp_path):
        assert path.stat().st_size > 1000
    plot_losses({"huge": huge}, tmp_path / "losses.png", "optimizers")
    assert (tmp_path / "losses.png").stat().st_size > 1000


def test_the_report_leaves_out_a_chart_that_is_no_regular_file(history, tmp_path):
    import os

    from sgdlab.nn.network import TwoLayerNet
    from sgdlab.plots.report import write_report

    plotting.plot_history(history, tmp_path)
    (tmp_path / "accuracy.png").unlink()
    os.mkfifo(tmp_path / "accuracy.png")  # read as a plain open would, the report would wait for a writer forever
    rng = np.random.default_rng(0)
    test_set = rng.integers(0, 256, (20, 784), dtype=np.uint8), rng.integers(0, 10, 20, dtype=np.uint8)
    page = write_report(tmp_path, {"lr": 0.1}, history, TwoLayerNet(784, 5, 10, rng=0), test_set).read_text()
    assert "alt='loss chart'" in page and "alt='accuracy chart'" not in page


def test_the_report_gives_the_loss_on_the_whole_sets_of_the_weights_kept_where_recorded(history, tmp_path):
    from sgdlab.nn.network import TwoLayerNet
    from sgdlab.plots.report import write_report

    rng = np.random.default_rng(0)
    test_set = rng.integers(0, 256, (20, 784), dtype=np.uint8), rng.integers(0, 10, 20, dtype=np.uint8)
    network = TwoLayerNet(784, 5, 10, rng=0)
    older = write_report(tmp_path, {"lr": 0.1}, history, network, test_set).read_text()
    assert "accuracy 0.9000 on the training set and <strong>0.8700</strong> on the test set.</p>" in older
    history.train_loss, history.test_loss = [2.3, 0.5, 0.25], [2.3, 0.6, 0.375]
    page = write_report(tmp_path, {"lr": 0.1}, history, network, test_set).read_text()
    assert ("<strong>0.8700</strong> on the test set; its loss 0.2500 on the training set and 0.3750 on the test "
            "set.</p>") in page


def test_the_report_draws_each_weight_matrixs_spread_at_its_evaluations_where_recorded(history):
    import re

    from sgdlab.plots.report import render_report

    found = {"confusion": [[1]], "per_digit": [1.0], "errors": 0, "gallery": []}
    assert "How the weights spread" not in render_report("run", {}, history, None, found, {})  # an older history
    spread = [-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4]
    history.weight_percentiles = [{"W1": spread, "W2": spread}, {"W1": [2 * v for v in spread], "W2": None},
                                  {"W1": [3 * v for v in spread], "W2": spread}]  # W2 not finite at the second
    page = render_report("run", {}, history, None, found, {})
    charts = re.findall(r"<svg class='spread' role='img' aria-label='(W\d)'.*?</svg>", page)
    assert charts == ["W1", "W2"]
    w1 = re.search(r"aria-label='W1'.*?</svg>", page)[0]
    assert w1.count("<circle") == 3 and w1.count("<polygon") == 4  # a dot an evaluation, the four bands
    assert ">1.2</text>" in w1 and ">-1.2</text>" in w1 and ">iteration 20</text>" in w1  # its range and iterations
    assert re.search(r"aria-label='W2'.*?</svg>", page)[0].count("<circle") == 2


def test_the_report_of_a_convolutional_net_shows_its_first_filters_rather_than_hidden_units(history, tmp_path):
    from sgdlab.nn.network import SimpleConvNet
    from sgdlab.plots.report import write_report

    rng = np.random.default_rng(0)
    test_set = rng.integers(0, 256, (20, 784), dtype=np.uint8), rng.integers(0, 10, 20, dtype=np.uint8)
    network = SimpleConvNet(conv_param={"filter_num": 6}, hidden_size=10, rng=0)
    page = write_report(tmp_path, {"lr": 0.1}, history, network, test_set).read_text()
    assert "alt='first-layer filters' src='data:image/png;base64," in page
    assert "first-layer weights" not in page and "What the first convolution's filters look for" in page


def test_the_report_of_a_deeper_convolutional_net_shows_every_convolutions_filters(history, tmp_path):
    from sgdlab.nn.network import ConvNet
    from sgdlab.plots.report import write_report

    rng = np.random.default_rng(0)
    test_set = rng.integers(0, 256, (20, 784), dtype=np.uint8), rng.integers(0, 10, 20, dtype=np.uint8)
    layers = [{"type": "convolution", "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "relu"},
              {"type": "convolution", "filter_num": 5, "filter_size": 3, "pad": 1}, {"type": "relu"},
              {"type": "pooling", "pool_size": 2}]
    page = write_report(tmp_path, {"lr": 0.1}, history, ConvNet(layers=layers, rng=0), test_set).read_text()
    assert "alt='first-layer filters' src='data:image/png;base64," in page
    assert "alt='filters of convolution 2' src='data:image/png;base64," in page
    assert "Convolution 2: 5 filters of 3x3 over 4 channels, each shown as the 5x5 patch it sees" in page
    assert "convolution 3" not in page
