"""The sgdlab command end to end: every command, what it prints, the files it writes and its exit codes.

Commands run in-process through `sgdlab.cli.main` (a few through `python -m sgdlab`, to check the
real exit status). Training runs are tiny, a few dozen iterations of a small net, on the real MNIST:
links to `mnist_dir` in a writable folder, so the decoded cache written by the first load makes the
others quick. Exit codes: 0 success, 1 error, 2 usage mistake, 130 interrupted.
"""

import contextlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sgdlab import __version__
from sgdlab.runs.model_file import save_model
from sgdlab.training.config import TrainConfig
from sgdlab.cli import main
from tests.cli.commands import run
from tests.processes import PRESS_TIMEOUT, sgdlab_command, started
from sgdlab.data import mnist
from sgdlab.nn.network import TwoLayerNet
from sgdlab.training.trainer import Trainer

RUN_FILES = {"config.json", "history.json", "history.csv", "model.npz", "accuracy.png", "loss.png", "report.html"}
PLOTS = {"accuracy.png", "loss.png"}
PARAMS_784_5_10 = TwoLayerNet(784, 5, 10).num_params
TINY = ("--iters", "25", "--hidden-size", "10")  # batch 100: evaluations at iterations 0 and 25
EVALUATION_LINE = re.compile(r"^epoch +(\d+\.\d\d) \| iteration +(\d+) \| train acc (\d\.\d{4}) \| "
                             r"test acc (\d\.\d{4}) \| loss +(-|\d+\.\d{4}) +\| +\d+\.\d s$")


# --- helpers and fixtures ----------------------------------------------------------------------------

def last_line(text):
    return text.rstrip("\n").split("\n")[-1]


def read_history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


def read_weights(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files if key != "sgdlab_model"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test downloads anything: a fetch fails as an unreachable network does."""
    def unreachable(url, dest):
        raise urllib.error.URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(mnist, "_fetch", unreachable)



def train_capturing(data_dir, out, *options):
    """Run `sgdlab train` inside a fixture (no capsys there), keeping what it prints."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(["train", "--data-dir", str(data_dir), "--out", str(out), *options])
        except SystemExit as exc:
            code = exc.code
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def schedule_run(data_dir, tmp_path_factory):
    """Batch 6000 makes 10 iterations an epoch: 25 iterations are evaluated at 0, 10, 20 and 25."""
    out = tmp_path_factory.mktemp("schedule") / "run"
    code, stdout, stderr = train_capturing(data_dir, out, "--batch-size", "6000", *TINY)
    return out, code, stdout, stderr


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    """One epoch of a small net: about 0.91 test accuracy, enough to read drawn digits."""
    out = tmp_path_factory.mktemp("trained") / "run"
    code, _, stderr = train_capturing(data_dir, out, "--quiet", "--no-plot", "--iters", "600", "--hidden-size", "30",
                                    "--lr", "0.5")
    assert code == 0, stderr
    return out


# --- train -----------------------------------------------------------------------------------------

def test_train_writes_the_whole_run_folder(schedule_run):
    out, code, _, _ = schedule_run
    assert code == 0
    assert {path.name for path in out.iterdir()} == RUN_FILES
    for name in PLOTS:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100
    config = json.loads((out / "config.json").read_text())
    assert config["iters"] == 25 and config["batch_size"] == 6000 and config["hidden_size"] == 10
    assert config["grad"] == "backprop" and config["sampling"] == "random"


def test_train_evaluates_before_training_every_epoch_and_after_the_last_iteration(schedule_run):
    out, _, _, _ = schedule_run
    history = read_history(out)
    assert history["iters_per_epoch"] == 10
    assert history["iteration"] == [0, 10, 20, 25]
    assert history["epoch"] == [0.0, 1.0, 2.0, 2.5]
    assert len(history["loss"]) == 25 and all(math.isfinite(loss) for loss in history["loss"])
    assert history["stopped"] is None
    assert all(0 <= acc <= 1 for acc in history["train_acc"] + history["test_acc"])
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "iteration,epoch,train_acc,test_acc,seconds,lr,train_loss,test_loss"
    assert [int(row.split(",")[0]) for row in rows[1:]] == [0, 10, 20, 25]


def test_train_prints_one_line_per_evaluation(schedule_run):
    out, _, stdout, _ = schedule_run
    history = read_history(out)
    lines = [EVALUATION_LINE.match(line) for line in stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 4 and all(lines)
    for n, line in enumerate(lines):
        epoch, iteration, train_acc, test_acc, loss = line.groups()
        assert int(iteration) == history["iteration"][n]
        assert epoch == f"{history['epoch'][n]:.2f}"
        assert train_acc == f"{history['train_acc'][n]:.4f}" and test_acc == f"{history['test_acc'][n]:.4f}"
        if n == 0:
            assert loss == "-"  # no iteration before the first evaluation
        else:
            recent = history["loss"][history["iteration"][n - 1]:history["iteration"][n]]
            assert loss == f"{sum(recent) / len(recent):.4f}"
    assert stdout.splitlines()[0].startswith("training TwoLayerNet([Affine(784 -> 10), Sigmoid(), Affine(10 -> 10)")
    assert last_line(stdout) == f"final test accuracy {history['test_acc'][-1]:.4f}; results saved in {out}"


@pytest.fixture
def no_chart_process(monkeypatch):
    """Fails any attempt to start the chart-drawing child process."""
    from sgdlab.plots.chart_process import ChartProcess

    def refuse(charts):  # the class itself stays, for modules that import it after this fixture
        raise AssertionError("a chart process was started")
    monkeypatch.setattr(ChartProcess, "__init__", refuse)


def test_no_plot_skips_the_charts(capsys, data_dir, tmp_path, no_chart_process):
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--no-plot", *TINY)
    assert code == 0
    assert {path.name for path in (tmp_path / "run").iterdir()} == RUN_FILES - PLOTS


def test_train_draws_its_charts_in_the_chart_process(capsys, data_dir, tmp_path, monkeypatch):
    from sgdlab.plots.chart_process import ChartProcess

    monkeypatch.setattr("sgdlab.runs.run.usable_cores", lambda: 2)
    monkeypatch.setattr("sgdlab.plots.chart_process.matplotlib_loaded", lambda: False)  # as in `sgdlab train`
    exit_codes = []
    real = ChartProcess.plot_history

    def recording(charts, history, run_dir):
        paths = real(charts, history, run_dir)
        exit_codes.append(charts.process.returncode)
        return paths

    monkeypatch.setattr(ChartProcess, "plot_history", recording)
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", *TINY)
    assert code == 0
    assert exit_codes == [0]  # the child drew them: no fallback
    assert {path.name for path in (tmp_path / "run").iterdir()} == RUN_FILES


def test_a_process_that_has_matplotlib_draws_the_charts_itself(capsys, data_dir, tmp_path, monkeypatch):
    from sgdlab.plots.chart_process import ChartProcess
    from sgdlab.plots.charts import figure_class

    figure_class()  # matplotlib imported, as in a notebook that has drawn a chart
    monkeypatch.setattr("sgdlab.runs.run.usable_cores", lambda: 2)
    monkeypatch.setattr(ChartProcess, "__init__", lambda charts: pytest.fail("a chart process was started"))
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", *TINY)
    assert code == 0
    assert {path.name for path in (tmp_path / "run").iterdir()} == RUN_FILES


def test_one_core_draws_the_charts_in_process(capsys, data_dir, tmp_path, monkeypatch, no_chart_process):
    monkeypatch.setattr("sgdlab.runs.run.usable_cores", lambda: 1)
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", *TINY)
    assert code == 0
    assert {path.name for path in (tmp_path / "run").iterdir()} == RUN_FILES


def test_quiet_prints_nothing(capsys, data_dir, tmp_path):
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", *TINY)
    assert code == 0
    assert out == "" and err == ""
    assert {path.name for path in (tmp_path / "run").iterdir()} == RUN_FILES


def test_default_run_folder_is_under_runs(capsys, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "train", "--data-dir", data_dir, "--no-plot", *TINY)
    assert code == 0
    [run_dir] = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}", run_dir.name)
    assert last_line(out).endswith(f"results saved in {run_dir.relative_to(tmp_path)}")
    assert (run_dir / "model.npz").is_file()


def test_same_seed_gives_the_same_run_bit_for_bit(capsys, data_dir, tmp_path):
    def train(name, seed):
        code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / name, "--seed", seed,
                         "--quiet", "--no-plot", *TINY)
        assert code == 0
        return read_history(tmp_path / name), read_weights(tmp_path / name / "model.npz")

    (history_a, weights_a), (history_b, weights_b) = train("a", 7), train("b", 7)
    assert history_a["loss"] == history_b["loss"]
    assert history_a["train_acc"] == history_b["train_acc"] and history_a["test_acc"] == history_b["test_acc"]
    assert weights_a.keys() == {"W1", "b1", "W2", "b2"}
    for key in weights_a:
        np.testing.assert_array_equal(weights_a[key], weights_b[key])

    history_c, weights_c = train("c", 8)
    assert history_c["loss"] != history_a["loss"]
    assert not np.array_equal(weights_c["W1"], weights_a["W1"])


def test_epoch_sampling_changes_the_batches_but_not_the_initial_weights(capsys, data_dir, tmp_path):
    histories = {}
    for sampling in ("random", "epoch"):
        out = tmp_path / sampling
        code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", out, "--sampling", sampling,
                         "--quiet", "--no-plot", *TINY)
        assert code == 0
        assert json.loads((out / "config.json").read_text())["sampling"] == sampling
        histories[sampling] = read_history(out)
    random, epoch = histories["random"], histories["epoch"]
    assert epoch["iteration"] == [0, 25] and len(epoch["loss"]) == 25
    assert epoch["train_acc"][0] == random["train_acc"][0] and epoch["test_acc"][0] == random["test_acc"][0]
    assert epoch["loss"] != random["loss"]


def test_dtype_chooses_the_float_type_of_the_run(capsys, data_dir, tmp_path):
    code, out, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "default", "--no-plot", *TINY)
    assert code == 0 and "backprop gradients, float32)" in out
    assert {w.dtype for w in read_weights(tmp_path / "default" / "model.npz").values()} == {np.dtype(np.float32)}
    assert json.loads((tmp_path / "default" / "config.json").read_text())["dtype"] == "float32"
    code, out, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "wide", "--no-plot",
                       "--dtype", "float64", *TINY)
    assert code == 0 and "backprop gradients, float64)" in out
    assert {w.dtype for w in read_weights(tmp_path / "wide" / "model.npz").values()} == {np.dtype(np.float64)}
    assert json.loads((tmp_path / "wide" / "config.json").read_text())["dtype"] == "float64"


def test_every_activation_trains_saves_and_reloads_through_the_command_line(capsys, data_dir, tmp_path):
    from sgdlab.nn.activations import activation_names
    from sgdlab.runs.model_file import load_model

    for name in activation_names():
        out = tmp_path / name
        code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", out, "--no-plot", *TINY,
                              "--activation", name, "--weight-init", "xavier")
        assert code == 0
        assert f"Affine(784 -> 10), {name.capitalize()}(), Affine(10 -> 10)" in stdout.splitlines()[0]
        assert json.loads((out / "config.json").read_text())["activation"] == name
        network, _ = load_model(out / "model.npz")
        assert network.activation == name and network.weight_init_std == "xavier"
        history = read_history(out)
        assert history["train_acc"][-1] > history["train_acc"][0]  # 25 iterations already learn something


def test_the_optimizer_and_its_learning_rate_are_chosen_and_recorded(capsys, data_dir, tmp_path):
    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "adam", "--no-plot", *TINY,
                          "--optimizer", "adam")
    assert code == 0 and "with Adam(lr=0.001, beta1=0.9, beta2=0.999) on 60000 images" in stdout.splitlines()[0]
    saved = json.loads((tmp_path / "adam" / "config.json").read_text())
    assert saved["optimizer"] == "adam" and saved["lr"] == 0.001
    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "momentum", "--no-plot", *TINY,
                          "--optimizer", "momentum", "--momentum", "0.5", "--lr", "0.05")
    assert code == 0 and "with Momentum(lr=0.05, momentum=0.5)" in stdout.splitlines()[0]
    assert read_history(tmp_path / "momentum")["train_acc"][-1] > read_history(tmp_path / "momentum")["train_acc"][0]
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "nesterov", "--no-plot", *TINY,
                     "--optimizer", "nesterov")
    from sgdlab.runs.model_file import load_model

    for folder, expected in (("adam", (0.001, None)), ("momentum", (0.05, 0.5)), ("nesterov", (0.01, 0.9))):
        saved = json.loads((tmp_path / folder / "config.json").read_text())
        _, meta = load_model(tmp_path / folder / "model.npz")
        assert (saved["lr"], saved["momentum"]) == expected  # what the run used, defaults resolved
        assert {k: v for k, v in saved.items() if k != "data_dir"} == meta["config"]


def test_a_deeper_net_with_weight_decay_trains_saves_and_checks(capsys, data_dir, tmp_path):
    from sgdlab.runs.model_file import load_model

    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "deep", "--no-plot", *TINY[:2],
                          "--hidden-sizes", "20,10", "--activation", "relu", "--weight-init-std", "he",
                          "--weight-decay", "0.001")
    assert code == 0
    assert stdout.splitlines()[0].startswith("training MultiLayerNet([Affine(784 -> 20), Relu(), Affine(20 -> 10), "
                                             "Relu(), Affine(10 -> 10), SoftmaxWithLoss()]")
    network, meta = load_model(tmp_path / "deep" / "model.npz")
    assert network.sizes == (784, 20, 10, 10) and network.weight_decay_lambda == 0.001
    assert meta["config"]["hidden_sizes"] == [20, 10] and meta["config"]["weight_decay"] == 0.001
    saved = json.loads((tmp_path / "deep" / "config.json").read_text())
    assert (saved["hidden_sizes"], saved["weight_decay"], saved["weight_init_std"]) == ([20, 10], 0.001, "he")
    code, _, err = run(capsys, "gradcheck", "--data-dir", data_dir, "--hidden-sizes", "6,5", "--hidden-size", "7")
    assert code == 2 and "give either hidden_size (one hidden layer) or hidden_sizes" in err
    code, out, _ = run(capsys, "gradcheck", "--data-dir", data_dir, "--hidden-sizes", "6,5", "--weight-decay", "0.1",
                       "--batch-size", "2")
    assert code == 0 and "W3 " in out and "; ok in" in last_line(out)


def test_the_book_overfitting_setup_a_few_images_for_many_epochs(capsys, data_dir, tmp_path):
    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "few", "--no-plot",
                          "--train-size", "300", "--epochs", "4", "--hidden-size", "10")
    assert code == 0
    assert "on 300 images (12 iterations, batch 100," in stdout.splitlines()[0]  # ceil(300 / 100) = 3 an epoch
    history = read_history(tmp_path / "few")
    assert history["iteration"] == [0, 3, 6, 9, 12] and history["iters_per_epoch"] == 3
    saved = json.loads((tmp_path / "few" / "config.json").read_text())
    assert (saved["train_size"], saved["epochs"], saved["iters"]) == (300, 4, None)


def test_eval_every_spaces_the_evaluations(capsys, data_dir, tmp_path):
    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--no-plot",
                          "--train-size", "300", "--epochs", "4", "--hidden-size", "10", "--eval-every", "5")
    assert code == 0 and read_history(tmp_path / "run")["iteration"] == [0, 5, 10, 12]
    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "last", "--no-plot",
                          "--iters", "7", "--hidden-size", "10", "--eval-every", "0")
    assert code == 0 and read_history(tmp_path / "last")["iteration"] == [7]
    assert "iteration      7" in stdout and "iteration      0" not in stdout


def test_the_test_set_can_be_left_for_the_end_and_the_run_reads_back_whole(capsys, data_dir, tmp_path):
    code, stdout, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--train-size", "300",
                            "--epochs", "3", "--hidden-size", "10", "--test-eval", "last")
    assert code == 0, err
    history = read_history(tmp_path / "run")
    assert history["iteration"] == [0, 3, 6, 9] and history["test_acc"][:3] == [None] * 3
    assert 0 < history["test_acc"][-1] <= 1 and None not in history["train_acc"]
    assert stdout.count("| test acc    -   |") == 3 and f"final test accuracy {history['test_acc'][-1]:.4f}" in stdout
    for name in ("accuracy.png", "loss.png", "report.html"):
        (tmp_path / "run" / name).unlink()
    code, _, err = run(capsys, "plot", tmp_path / "run")
    assert code == 0 and (tmp_path / "run" / "accuracy.png").is_file() and (tmp_path / "run" / "report.html").is_file()


def test_iters_and_epochs_together_are_a_usage_error(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", "--iters", "5", "--epochs", "2")
    assert (code, out) == (2, "")
    assert err == "sgdlab train: error: give either iters or epochs, not both: they both say how long the run is\n"


@pytest.mark.parametrize("command", ["train", "gradcheck", "sweep"])
def test_hidden_size_beside_hidden_sizes_is_a_usage_error_even_at_its_default(capsys, tmp_path, command):
    out_folder = () if command == "gradcheck" else ("--out", tmp_path / "run")
    for width in ("50", "30"):  # 50, the default, was silently ignored
        code, out, err = run(capsys, command, *out_folder, "--hidden-size", width, "--hidden-sizes", "20,20")
        assert (code, out) == (2, "")
        assert err == (f"sgdlab {command}: error: give either hidden_size (one hidden layer) or hidden_sizes (any "
                       "number of them), not both\n")
    assert not (tmp_path / "run").exists()


def test_a_validation_set_is_measured_and_shown(capsys, data_dir, tmp_path):
    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "val", "--no-plot",
                          "--train-size", "500", "--validation", "0.2", "--epochs", "2", "--hidden-size", "10")
    assert code == 0  # 400 trained on: 4 iterations an epoch
    assert "on 400 images, 100 more held out for validation (8 iterations" in stdout.splitlines()[0]
    assert re.search(r"\| train acc \d\.\d{4} \| val acc \d\.\d{4} \| test acc", stdout)
    history = read_history(tmp_path / "val")
    assert len(history["val_acc"]) == len(history["test_acc"]) == 3


def test_train_size_beyond_the_training_set_is_a_usage_error(capsys, data_dir, tmp_path):
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--train-size", "60001")
    assert code == 2 and out == ""
    assert err == ("sgdlab train: error: train size 60001 is more than the 60000 training images: choose a train "
                   "size of at most 60000\n")
    assert not (tmp_path / "run").exists()


def test_momentum_for_an_optimizer_without_one_is_a_usage_error(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", "--optimizer", "adagrad", "--momentum", "0.5")
    assert code == 2 and out == ""
    assert err == ("sgdlab train: error: momentum is a setting of the momentum and nesterov optimizers, not of "
                   "adagrad: choose one of them as the optimizer, or leave momentum out\n")
    assert not (tmp_path / "run").exists()


def test_numerical_gradients_in_float32_are_a_usage_error(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--grad", "numerical",
                       "--dtype", "float32", *TINY)
    assert code == 2
    assert "numerical gradients need float64" in last_line(err)


def test_numerical_gradients_train_and_say_how_long_they_take(capsys, data_dir, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "--data-dir", data_dir, "--out", out, "--grad", "numerical",
                          "--hidden-size", "5", "--batch-size", "10", "--iters", "3", "--no-plot")
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].startswith("training TwoLayerNet([Affine(784 -> 5), Sigmoid(), Affine(5 -> 10), "
                               f"SoftmaxWithLoss()], params={PARAMS_784_5_10}) with SGD(lr=0.1) on 60000 images "
                               "(3 iterations, batch 10, numerical gradients")
    duration = r"\d+(\.\d)? (ms|s|min|h)"
    estimates = [line for line in lines if line.startswith("numerical gradients:")]
    assert len(estimates) == 1  # said once, when the second iteration has been timed
    assert re.fullmatch(rf"numerical gradients: {duration} per iteration, about {duration} for the rest of the run "
                        rf"\(perturbing one parameter at a time through the whole net, as the textbook does, would "
                        rf"take about {duration} per iteration, {duration} for all 3\)", estimates[0]), estimates[0]
    history = read_history(out)
    assert len(history["loss"]) == 3 and all(math.isfinite(loss) for loss in history["loss"])
    assert json.loads((out / "config.json").read_text())["grad"] == "numerical"


# --- evaluate and predict ------------------------------------------------------------------------

def test_evaluate_prints_the_accuracy_the_run_ended_with(capsys, data_dir, trained_run):
    code, out, _ = run(capsys, "evaluate", trained_run / "model.npz", "--data-dir", data_dir)
    assert code == 0
    history = read_history(trained_run)
    assert history["test_acc"][-1] > 0.85
    assert out.splitlines() == [f"train acc {history['train_acc'][-1]:.4f} (60000 images)",
                                f"test acc  {history['test_acc'][-1]:.4f} (10000 images)"]


def draw_digit(digit, ink, paper, size=200):
    """A "1" or a "7" drawn with a thick pen."""
    image = Image.new("L", (size, size), paper)
    strokes = {1: [(0.5, 0.15), (0.48, 0.85)], 7: [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]}[digit]
    ImageDraw.Draw(image).line([(x * size, y * size) for x, y in strokes], fill=ink, width=size // 10,
                               joint="curve")
    return image


def test_predict_reads_drawn_digits_in_any_colours_and_formats(capsys, trained_run, tmp_path):
    paths = []
    for digit in (1, 7):
        for name, ink, paper in (("dark-on-paper", 0, 255), ("light-on-black", 255, 0)):
            for extension in ("png", "jpg"):
                path = tmp_path / f"{digit}-{name}.{extension}"
                draw_digit(digit, ink, paper).save(path)
                paths.append((digit, path))
    code, out, err = run(capsys, "predict", trained_run / "model.npz", *(path for _, path in paths))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == len(paths)
    probabilities = {}
    for (digit, path), line in zip(paths, lines):
        match = re.fullmatch(rf"{re.escape(str(path))}: (\d) \(probability (\d\.\d{{3}})\)", line)
        assert match, line
        assert int(match[1]) == digit
        assert 0.5 < float(match[2]) <= 1.0
        probabilities[path.name] = match[2]
    # Inverting a picture's colours does not change what it shows.
    for digit in (1, 7):
        assert probabilities[f"{digit}-dark-on-paper.png"] == probabilities[f"{digit}-light-on-black.png"]


def test_predict_names_an_unreadable_image_and_still_classifies_the_others(capsys, trained_run, tmp_path):
    good = tmp_path / "seven.png"
    draw_digit(7, 0, 255).save(good)
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture\n")
    missing = tmp_path / "missing.png"
    code, out, err = run(capsys, "predict", trained_run / "model.npz", bad, good, missing)
    assert code == 1
    assert re.fullmatch(rf"{re.escape(str(good))}: 7 \(probability \d\.\d{{3}}\)\n", out), out
    errors = err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"sgdlab predict: error: {bad}: cannot read it as an image")
    assert errors[1] == f"sgdlab predict: error: {missing}: no such image file"


def test_predict_says_when_an_image_holds_no_digit(capsys, trained_run, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (28, 28), 0).save(blank)
    code, out, err = run(capsys, "predict", trained_run / "model.npz", blank)
    assert code == 1 and out == ""
    assert err == f"sgdlab predict: error: {blank}: no digit found (a blank page, or ink only at the image's edges)\n"


def test_config_records_the_data_folder_found_through_the_environment(capsys, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SGDLAB_DATA", str(data_dir))
    code, _, _ = run(capsys, "train", "--out", tmp_path / "run", "--no-plot", *TINY)
    assert code == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_dir"] == str(data_dir)


def test_evaluation_line_keeps_its_width_for_a_huge_loss():
    from sgdlab.cli.output import evaluation_line as _evaluation_line
    from sgdlab.training.history import History

    history = History(iters_per_epoch=2, loss=[3e30, 5e30])
    history.record_evaluation(0, 0.1, 0.1, 0.0)
    history.record_evaluation(2, 0.1, 0.1, 1.0)
    assert "| loss 4e+30 |" in _evaluation_line(history)
    assert EVALUATION_LINE.match(_evaluation_line(history).replace("4e+30", "4.0000"))


def test_predict_with_a_missing_model(capsys, tmp_path):
    image = tmp_path / "seven.png"
    draw_digit(7, 0, 255).save(image)
    code, out, err = run(capsys, "predict", tmp_path / "nope.npz", image)
    assert code == 1 and out == ""
    assert err == (f"sgdlab predict: error: {tmp_path / 'nope.npz'}: no such model file; give the model.npz "
                   "written by 'sgdlab train'\n")


def test_predict_with_a_model_not_made_for_mnist(capsys, tmp_path):
    model = tmp_path / "small.npz"
    save_model(model, TwoLayerNet(6, 5, 3, rng=0))
    image = tmp_path / "seven.png"
    draw_digit(7, 0, 255).save(image)
    code, out, err = run(capsys, "predict", model, image)
    assert code == 1 and out == ""
    assert f"{model} takes 6 inputs per image, but MNIST images have 784 pixels" in err


def test_evaluate_with_a_model_not_made_for_mnist(capsys, data_dir, tmp_path):
    model = tmp_path / "small.npz"
    save_model(model, TwoLayerNet(6, 5, 3, rng=0))
    code, out, err = run(capsys, "evaluate", model, "--data-dir", data_dir)
    assert code == 1 and out == ""
    assert f"{model} takes 6 inputs per image" in err


# --- model files -------------------------------------------------------------------------------------

def test_evaluate_an_npz_that_is_not_an_sgdlab_model(capsys, tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, weights=np.zeros(3))
    code, out, err = run(capsys, "evaluate", path)
    assert code == 1 and out == ""
    assert err == (f"sgdlab evaluate: error: {path} is a .npz file but not an sgdlab model "
                   "(it has no 'sgdlab_model' entry)\n")


def test_evaluate_a_text_file_named_npz(capsys, tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("W1 = [[0.1, 0.2]]\n")
    code, out, err = run(capsys, "evaluate", path)
    assert code == 1 and out == ""
    assert err == f"sgdlab evaluate: error: {path} is not an sgdlab model file (not a .npz archive)\n"


def test_evaluate_a_missing_model(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", tmp_path / "nope.npz")
    assert code == 1
    assert f"{tmp_path / 'nope.npz'}: no such model file" in err


# --- gradcheck ---------------------------------------------------------------------------------------

def test_gradcheck_passes_on_real_images(capsys, data_dir):
    code, out, _ = run(capsys, "gradcheck", "--data-dir", data_dir, "--hidden-size", "5", "--batch-size", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("gradient check of TwoLayerNet([Affine(784 -> 5), Sigmoid(), Affine(5 -> 10), "
                               f"SoftmaxWithLoss()], params={PARAMS_784_5_10}) on 2 training images")
    assert "the book's layers and" in lines[1] and "the training step" in lines[1]
    rows = {line.split()[0]: line for line in lines[3:7]}
    assert rows.keys() == {"W1", "b1", "W2", "b2"}
    assert all(row.endswith("  ok") for row in rows.values())
    assert all(row.split()[-2] == "0" for row in rows.values())  # a sigmoid net: no entry across a kink
    assert re.fullmatch(r"thresholds: max abs diff 1e-07, max rel error 1e-06 \(give or take 1e-13 \|loss\| / step "
                        r"of rounding\); ok in \d+\.\d\d s", lines[7])


def test_gradcheck_passes_for_every_activation(capsys, data_dir):
    from sgdlab.nn.activations import activation_names

    for name in activation_names():
        code, out, _ = run(capsys, "gradcheck", "--data-dir", data_dir, "--hidden-size", "5", "--batch-size", "2",
                           "--activation", name)
        assert code == 0, out
        assert f"Affine(784 -> 5), {name.capitalize()}(), Affine(5 -> 10)" in out.splitlines()[0]
        assert "; ok in" in last_line(out)


def test_gradcheck_fails_on_a_wrong_backward_pass(capsys, data_dir, monkeypatch):
    # The sigmoid's local derivative without its (1 - out) factor: the classic slip gradcheck exists for.
    monkeypatch.setattr("sgdlab.nn.activations.sigmoid.SigmoidActivation.backward", lambda self, dout, out: dout * out)
    code, out, _ = run(capsys, "gradcheck", "--data-dir", data_dir, "--hidden-size", "5", "--batch-size", "2")
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[3:7]}
    assert rows["W1"].endswith("FAIL") and rows["b1"].endswith("FAIL")
    assert rows["W2"].endswith("ok") and rows["b2"].endswith("ok")  # they sit after the sigmoid
    assert re.search(r"; FAIL \(W1, b1\) in \d+\.\d\d s$", last_line(out))


def test_gradcheck_shows_the_entries_across_a_kink_apart(capsys, data_dir, monkeypatch):
    import dataclasses

    from sgdlab.engine import gradcheck

    checks = gradcheck.gradient_check
    monkeypatch.setattr(gradcheck, "gradient_check", lambda network, x, t, **options: [
        dataclasses.replace(check, kinks=3) if check.name == "W1" else check
        for check in checks(network, x, t, **options)])
    code, out, _ = run(capsys, "gradcheck", "--data-dir", data_dir, "--hidden-size", "5", "--batch-size", "2",
                       "--activation", "relu")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:7]}
    assert rows["W1"][-2:] == ["3", "ok"] and rows["W2"][-2:] == ["0", "ok"]
    assert last_line(out) == (f"3 of {PARAMS_784_5_10} entries were not compared: nudging one by h or h/2 moves some "
                              "relu input across its kink, where the slope jumps, so no difference quotient there is "
                              "a derivative")


def test_gradcheck_batch_larger_than_the_training_set(capsys, data_dir):
    code, out, err = run(capsys, "gradcheck", "--data-dir", data_dir, "--batch-size", "60001")
    assert code == 2 and out == ""
    assert err == ("sgdlab gradcheck: error: batch size 60001 is larger than the training set "
                   "(60000 images)\n")


# --- plot --------------------------------------------------------------------------------------------

def test_plot_redraws_the_charts_of_a_run(capsys, schedule_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(schedule_run[0], run_dir)
    for name in PLOTS:
        (run_dir / name).unlink()
    code, out, _ = run(capsys, "plot", run_dir)
    assert code == 0
    assert out.splitlines() == [f"wrote {run_dir / 'accuracy.png'}", f"wrote {run_dir / 'loss.png'}",
                                f"wrote {run_dir / 'report.html'}"]
    for name in PLOTS:
        with Image.open(run_dir / name) as image:
            assert image.format == "PNG"
    report = (run_dir / "report.html").read_text()
    assert report.count("<img class='chart'") == 2  # the charts, inline


def test_compare_overlays_runs_labelled_by_their_differences(capsys, data_dir, schedule_run, tmp_path):
    first, _, _, _ = schedule_run
    second = tmp_path / "faster"
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", second, "--quiet", "--no-plot",
                     "--batch-size", "6000", *TINY, "--lr", "0.5")
    assert code == 0
    code, out, err = run(capsys, "compare", first, second, "--out", tmp_path / "both.png")
    assert (code, err) == (0, "") and out == f"wrote {tmp_path / 'both.png'}\n"
    with Image.open(tmp_path / "both.png") as image:
        assert image.format == "PNG"


@pytest.mark.parametrize("make, message", [
    (lambda folder: None, "is not a folder"),
    (lambda folder: folder.mkdir(), "config.json not found"),
    (lambda folder: (folder.mkdir(), (folder / "config.json").write_text("{}")), "holds no results yet"),
])
def test_compare_names_a_folder_that_holds_no_run(capsys, tmp_path, make, message):
    make(tmp_path / "run")
    code, out, err = run(capsys, "compare", tmp_path / "run", "--out", tmp_path / "x.png")
    assert code == 1 and out == "" and message in err and err.count("\n") == 1


def test_compare_writes_png_only(capsys, tmp_path):
    code, _, err = run(capsys, "compare", tmp_path, "--out", tmp_path / "x.jpg")
    assert code == 2 and "give a file name ending in .png" in err


def test_plot_on_a_file(capsys, tmp_path):
    path = tmp_path / "history.json"
    path.write_text("{}")
    code, out, err = run(capsys, "plot", path)
    assert code == 1 and out == ""
    assert err == (f"sgdlab plot: error: {path} is not a folder: give a run folder written by "
                   "'sgdlab train'\n")


def test_plot_on_a_folder_without_history(capsys, tmp_path):
    code, _, err = run(capsys, "plot", tmp_path)
    assert code == 1
    assert err == (f"sgdlab plot: error: {tmp_path / 'history.json'} not found: give a run folder "
                   "written by 'sgdlab train'\n")


# --- usage errors: exit 2 ----------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("--iters", "0", "argument --iters: must be a positive integer, got '0'"),
    ("--iters", "2.5", "argument --iters: must be a positive integer, got '2.5'"),
    ("--batch-size", "-1", "argument --batch-size: must be a positive integer, got '-1'"),
    ("--hidden-size", "abc", "argument --hidden-size: must be a positive integer, got 'abc'"),
    ("--lr", "0", "argument --lr: must be a positive number, got '0'"),
    ("--lr", "-0.1", "argument --lr: must be a positive number, got '-0.1'"),
    ("--lr", "nan", "argument --lr: must be a positive number, got 'nan'"),
    ("--lr", "inf", "argument --lr: must be a positive number, got 'inf'"),
    ("--seed", "-3", "argument --seed: must be a non-negative integer, got '-3'"),
    ("--grad", "guess", "argument --grad: invalid choice: 'guess'"),
    ("--activation", "softplus", "argument --activation: invalid choice: 'softplus'"),
    ("--weight-init", "0", "argument --weight-init/--weight-init-std: must be a positive number or one of xavier, "
                           "sigmoid, he, relu, got '0'"),
    ("--weight-init-std", "glorot", "argument --weight-init/--weight-init-std: must be a positive number or one of "
                                    "xavier"),
    ("--dropout", "1", "argument --dropout: must be a number in [0, 1), got '1'"),
    ("--dropout", "-0.2", "argument --dropout: must be a number in [0, 1), got '-0.2'"),
    ("--optimizer", "lbfgs", "argument --optimizer: invalid choice: 'lbfgs'"),
    ("--hidden-sizes", "100,0", "argument --hidden-sizes: must be positive integers separated by commas"),
    ("--hidden-sizes", "100;50", "argument --hidden-sizes: must be positive integers separated by commas"),
    ("--weight-decay", "-1", "argument --weight-decay: must be a non-negative number, got '-1'"),
    ("--epochs", "0", "argument --epochs: must be a positive integer, got '0'"),
    ("--validation", "1", "argument --validation: must be a number in [0, 1), got '1'"),
    ("--train-size", "-3", "argument --train-size: must be a positive integer, got '-3'"),
    ("--out", "", "argument --out: must not be empty: name a file or folder (use . for the current folder)"),
    ("--eval-every", "-1", "argument --eval-every: must be a non-negative integer, got '-1'"),
    ("--momentum", "1", "argument --momentum: must be a number in [0, 1), got '1'"),
])
def test_bad_train_option(capsys, tmp_path, option, value, message):
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", option, value)
    assert code == 2 and out == ""
    assert err.startswith("usage: sgdlab train")
    assert last_line(err).startswith(f"sgdlab train: error: {message}")
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_the_training_set(capsys, data_dir, tmp_path):
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run",
                         "--batch-size", "60001")
    assert code == 2 and out == ""  # refused before the run is announced
    assert err == ("sgdlab train: error: batch size 60001 is larger than the training set (60000 samples): "
                   "choose a batch size of at most 60000\n")
    assert not (tmp_path / "run").exists()


def test_unknown_command(capsys):
    code, out, err = run(capsys, "frobnicate")
    assert code == 2 and out == ""
    assert re.search(r"^sgdlab: error: argument COMMAND: invalid choice: '?frobnicate'?", last_line(err))


def test_no_command(capsys):
    code, _, err = run(capsys)
    assert code == 2
    assert last_line(err) == "sgdlab: error: the following arguments are required: COMMAND"


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"sgdlab {__version__}\n"


# --- data errors: exit 1 -----------------------------------------------------------------------------

def test_missing_data_that_cannot_be_downloaded(capsys, tmp_path):
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    code, out, err = run(capsys, "train", "--data-dir", empty, "--out", tmp_path / "run", *TINY)
    assert code == 1 and out == ""
    assert err.count("\n") == 1  # the one error line, no log of each mirror tried
    message = last_line(err)
    assert message.startswith(f"sgdlab train: error: MNIST files missing from {empty}: ")
    for spec in mnist.FILES:
        assert spec.gz_name in message
    assert "download failed" in message and "Network is unreachable" in message
    assert "--data-dir" in message and "SGDLAB_DATA" in message
    assert list(empty.iterdir()) == []  # no half-downloaded file left behind
    assert not (tmp_path / "run").exists()


def test_a_run_that_fails_before_training_leaves_no_folder_it_made(capsys, tmp_path, monkeypatch):
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept").mkdir()
    for out in ((), ("--out", "new/nested/run"), ("--out", "kept/run")):  # runs/, then --out and its parents
        code, _, err = run(capsys, "train", "--data-dir", empty, *out, *TINY)
        assert code == 1 and "MNIST files missing" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept", "no-mnist-here"]
    assert list((tmp_path / "kept").iterdir()) == []


@pytest.fixture
def data_copy(mnist_dir, tmp_path):
    """A private copy of the real MNIST, each file uncompressed or gzipped as in `mnist_dir`."""
    folder = tmp_path / "mnist-copy"
    folder.mkdir()
    names = {spec.name for spec in mnist.FILES} | {spec.gz_name for spec in mnist.FILES}
    for source in mnist_dir.iterdir():
        if source.name in names:
            shutil.copyfile(source, folder / source.name)
    return folder


def test_truncated_data_file_is_named(capsys, data_copy, tmp_path):
    [damaged] = [path for path in data_copy.iterdir() if path.name.startswith("train-labels")]
    damaged.write_bytes(damaged.read_bytes()[:damaged.stat().st_size // 2])
    code, out, err = run(capsys, "train", "--data-dir", data_copy, "--out", tmp_path / "run", *TINY)
    assert code == 1 and out == ""
    assert last_line(err).startswith(f"sgdlab train: error: {damaged}: ")
    assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_data_file_with_one_changed_label_is_named(capsys, data_copy, tmp_path):
    # Well formed (header, size, labels 0..9) but not the canonical file: only its SHA-256 tells.
    from sgdlab.data.idx import read_idx_bytes

    [source] = [path for path in data_copy.iterdir() if path.name.startswith("t10k-labels")]
    raw = bytearray(read_idx_bytes(source))
    raw[8 + 123] = (raw[8 + 123] + 1) % 10
    source.unlink()
    damaged = data_copy / "t10k-labels-idx1-ubyte"
    damaged.write_bytes(bytes(raw))
    save_model(tmp_path / "model.npz", TwoLayerNet(784, 5, 10, rng=0))
    code, out, err = run(capsys, "evaluate", "--data-dir", data_copy, tmp_path / "model.npz")
    assert code == 1 and out == ""
    assert err.startswith(f"sgdlab evaluate: error: {damaged}: corrupted or not the canonical MNIST file")
    assert err.count("\n") == 1


# --- runs that end early -------------------------------------------------------------------------------

def test_diverging_run_stops_saves_and_suggests_a_smaller_lr(capsys, data_dir, tmp_path, recwarn):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--data-dir", data_dir, "--out", out, "--lr", "1e308", "--quiet", *TINY)
    assert code == 1 and stdout == ""
    # One line on stderr: NumPy's overflow warnings (which pytest collects instead of printing) stay silent.
    assert [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)] == []
    assert err.count("\n") == 1, err
    match = re.fullmatch(r"sgdlab train: error: the loss became (nan|inf) at iteration (\d+): training diverged; "
                         r"try a smaller learning rate than 1e\+308 \(--lr\); "
                         rf"what was recorded is in {re.escape(str(out))} \(to continue it from its last "
                         rf"checkpoint at a smaller rate: sgdlab train --resume {re.escape(str(out))} --lr X\)\n", err)
    assert match, err
    iteration = int(match[2])
    history = read_history(out)
    assert history["stopped"] == f"loss became {match[1]} at iteration {iteration}"
    assert len(history["loss"]) == iteration - 1  # every finite loss before the non-finite one
    assert history["iteration"] == [0]
    assert {path.name for path in out.iterdir()} == RUN_FILES - PLOTS - {"report.html"} | {"checkpoint.npz"}  # its last, from before it diverged


def interrupt_after(monkeypatch, stop_at):
    """Press Ctrl-C right after iteration `stop_at` (through the trainer's on_iteration callback)."""
    fit = Trainer.fit

    def fit_with_ctrl_c(self, *args, on_iteration=None, **kwargs):
        def on_iteration_then_ctrl_c(iteration, loss):
            if on_iteration is not None:
                on_iteration(iteration, loss)
            if iteration == stop_at:
                raise KeyboardInterrupt

        return fit(self, *args, on_iteration=on_iteration_then_ctrl_c, **kwargs)

    monkeypatch.setattr(Trainer, "fit", fit_with_ctrl_c)


def test_ctrl_c_during_training_saves_what_was_recorded(capsys, data_dir, tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 5)
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--data-dir", data_dir, "--out", out, "--quiet", *TINY)
    assert code == 130 and stdout == ""
    assert err == f"sgdlab train: interrupted after iteration 5; results so far saved in {out}\n"
    history = read_history(out)
    assert history["stopped"] == "interrupted after iteration 5"
    assert len(history["loss"]) == 5
    assert history["iteration"] == [0, 5]  # evaluated once more where it stopped
    assert {path.name for path in out.iterdir()} == RUN_FILES | {"checkpoint.npz"}  # to --resume it


def test_ctrl_c_while_loading_the_data_saves_nothing(capsys, tmp_path, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sgdlab.runs.run.load_mnist", ctrl_c)
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", *TINY)
    assert code == 130 and out == ""
    assert err == "sgdlab train: interrupted\n"
    assert not (tmp_path / "run").exists()


# --- run folders that cannot be written ------------------------------------------------------------

def test_out_naming_a_file_is_refused_before_training(capsys, data_dir, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("keep me\n")
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", path, *TINY)
    assert code == 2 and out == ""
    assert err == (f"sgdlab train: error: {path} is a file, not a folder: the run's results need a folder "
                   "(choose one with --out)\n")
    assert path.read_text() == "keep me\n"


def test_an_earlier_run_is_never_replaced_without_overwrite(capsys, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, "--quiet", "--no-plot", *TINY)[0] == 0
    before = {path.name: path.read_bytes() for path in run_dir.iterdir()}
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, "--seed", "1", *TINY)
    assert code == 2 and out == ""
    assert err == (f"sgdlab train: error: {run_dir} already holds a run's files (config.json, history.json, "
                   "history.csv, model.npz, report.html): give another --out, or add --overwrite to replace them\n")
    assert {path.name: path.read_bytes() for path in run_dir.iterdir()} == before
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, "--seed", "1", "--overwrite",
                     "--quiet", "--no-plot", *TINY)
    assert code == 0
    assert (run_dir / "model.npz").read_bytes() != before["model.npz"]


def test_a_run_that_fails_before_training_leaves_an_earlier_run_as_it_was(capsys, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, "--quiet", "--no-plot", *TINY)[0] == 0
    before = {path.name: path.read_bytes() for path in run_dir.iterdir()}
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, "--overwrite", "--batch-size", "60001")
    assert code == 2
    assert {path.name: path.read_bytes() for path in run_dir.iterdir()} == before


def test_a_folder_taken_by_another_run_meanwhile_is_refused(capsys, data_dir, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")  # another run claimed it after the check for earlier runs
    monkeypatch.setattr("sgdlab.runs.run_folder.run_files_in", lambda folder: [])
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, *TINY)
    assert code == 2
    assert err == f"sgdlab train: error: {run_dir} was just taken by another run: give another --out\n"
    assert (run_dir / "config.json").read_text() == "{}"


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    from sgdlab.errors import ConfigError
    from sgdlab.runs.run_folder import claim_run_folder, new_run_dir

    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-120000")
    folders = [new_run_dir(tmp_path) for _ in range(3)]
    assert [folder.name for folder in folders] == ["20260101-120000", "20260101-120000-2", "20260101-120000-3"]
    claim_run_folder(folders[0], False, TrainConfig())
    with pytest.raises(ConfigError, match="holds a run's files"):
        claim_run_folder(folders[0], False, TrainConfig())


def test_the_default_run_folder_is_claimed_before_training(capsys, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--batch-size", "60001")
    assert code == 2
    assert list(tmp_path.iterdir()) == []  # given back: no empty run folder left behind, nor runs/ made for it
    (tmp_path / "runs").write_text("not a folder")
    code, _, err = run(capsys, "train", "--data-dir", data_dir, *TINY)
    assert code == 2
    assert err == ("sgdlab train: error: runs is a file, not a folder: the run's results need a folder "
                   "(choose one with --out)\n")


def test_out_naming_a_broken_link_is_refused_before_training(capsys, data_dir, tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "link", *TINY)
    assert code == 2 and out == ""
    assert err == (f"sgdlab train: error: {tmp_path / 'link'} is a link to nothing: give --out a folder for the "
                   "run's results\n")


def test_overwriting_without_plots_leaves_no_charts_of_the_earlier_run(capsys, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, "--quiet", *TINY)[0] == 0
    assert (run_dir / "accuracy.png").is_file() and (run_dir / "loss.png").is_file()
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", run_dir, "--overwrite", "--quiet", "--no-plot",
                     *TINY)
    assert code == 0
    assert sorted(path.name for path in run_dir.iterdir()) == ["config.json", "history.csv", "history.json",
                                                               "model.npz", "report.html"]


def test_a_folder_without_a_run_is_used_as_it_is(capsys, data_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me\n")
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path, "--quiet", "--no-plot", *TINY)
    assert code == 0
    assert (tmp_path / "notes.txt").read_text() == "keep me\n" and (tmp_path / "model.npz").is_file()


def test_run_folder_inside_a_file_is_refused_before_training(capsys, data_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me\n")
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "notes.txt" / "run", *TINY)
    assert code == 2 and out == ""
    assert err == (f"sgdlab train: error: {tmp_path / 'notes.txt'} is a file, not a folder: the run's results "
                   "need a folder (choose one with --out)\n")
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"


def test_run_folder_that_may_not_be_written_is_refused_before_training(capsys, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: Path(path) != tmp_path)  # as a read-only folder is
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "new" / "run", *TINY)
    assert code == 2 and out == ""
    assert err == f"sgdlab train: error: {tmp_path} is not writable: give --out a folder you may write in\n"


def test_run_folder_that_cannot_be_written_after_training_is_one_line_not_a_traceback(capsys, data_dir, tmp_path,
                                                                                      monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sgdlab.runs.run_folder.write_text_atomic", full_disk)
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", "--no-plot",
                       *TINY)
    assert code == 1
    assert err == "sgdlab train: error: [Errno 28] No space left on device\n"
    assert not (tmp_path / "run" / "config.json").exists()  # no empty config.json blocks the folder
    monkeypatch.undo()
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", "--no-plot", *TINY)
    assert code == 0  # once there is space again


def test_overwriting_keeps_the_earlier_run_until_training_starts_then_replaces_all_of_it(capsys, data_dir, tmp_path,
                                                                                         monkeypatch):
    run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", *TINY)
    earlier = {name: (tmp_path / "run" / name).read_bytes() for name in RUN_FILES}
    (tmp_path / "run" / ".model.npz.x1y2.part").write_bytes(b"left by a killed write")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sgdlab.runs.run.load_mnist", ctrl_c)
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--overwrite", *TINY)
    assert code == 130
    assert {name: (tmp_path / "run" / name).read_bytes() for name in RUN_FILES} == earlier  # untouched
    assert not (tmp_path / "run" / ".model.npz.x1y2.part").exists()  # the leftover is gone
    monkeypatch.undo()
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--overwrite", "--no-plot",
                     "--quiet", "--iters", "3", "--hidden-size", "4")
    assert code == 0
    assert {path.name for path in (tmp_path / "run").iterdir()} == RUN_FILES - PLOTS  # none of the earlier charts
    assert read_history(tmp_path / "run")["iteration"] == [0, 3]


def test_a_model_with_non_finite_weights_is_refused(capsys, data_dir, tmp_path):
    network = TwoLayerNet(784, 5, 10, rng=0)
    network.params["W2"][1, 2] = np.nan
    save_model(tmp_path / "diverged.npz", network)
    image = tmp_path / "seven.png"
    draw_digit(7, 0, 255).save(image)
    for argv in (("predict", tmp_path / "diverged.npz", image), ("evaluate", tmp_path / "diverged.npz")):
        code, out, err = run(capsys, *argv, "--data-dir", data_dir) if argv[0] == "evaluate" else run(capsys, *argv)
        assert (code, out) == (1, "")
        assert "holds non-finite values (inf or nan) in W2: the run that saved it diverged" in err


def test_a_data_folder_that_is_a_file_is_named(capsys, tmp_path):
    (tmp_path / "mnist").write_text("not a folder")
    code, _, err = run(capsys, "train", "--data-dir", tmp_path / "mnist", "--out", tmp_path / "run", *TINY)
    assert code == 1
    assert err.startswith(f"sgdlab train: error: {tmp_path / 'mnist'} is a file, not a folder: the MNIST files need")
    assert not (tmp_path / "run").exists()


# --- the real process ----------------------------------------------------------------------------------

def sgdlab(tmp_path, *argv):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, argv)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_process_help_exits_0(tmp_path):
    result = sgdlab(tmp_path, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: sgdlab")
    for command in ("train", "evaluate", "predict", "gradcheck", "plot"):
        assert command in result.stdout


@contextlib.contextmanager
def started_training(tmp_path, data_dir, *argv):
    """`sgdlab train` as a process, once it has printed its first evaluation line; ended however the test ends."""
    command = sgdlab_command("train", "--data-dir", data_dir, *argv)
    with started(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            if line.startswith("epoch"):
                yield process
                return
        raise AssertionError(f"training never started: {process.stderr.read()}")


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_a_run_as_ctrl_c_does(tmp_path, data_dir, signal_name):
    import signal

    with started_training(tmp_path, data_dir, "--out", tmp_path / "run", "--iters", "1000000", "--hidden-size", "5",
                          "--no-plot") as process:
        process.send_signal(getattr(signal, signal_name))
        _, err = process.communicate(timeout=PRESS_TIMEOUT)
    assert process.returncode == 130 and "Traceback" not in err
    history = read_history(tmp_path / "run")
    assert history["stopped"].startswith(f"interrupted by {signal_name} after iteration")
    assert history["iteration"][-1] == len(history["loss"]) < 1000000  # evaluated where it stopped, and saved
    assert (tmp_path / "run" / "model.npz").exists()


def test_under_nohup_a_hangup_is_ignored_and_sigterm_still_stops_the_run(tmp_path, data_dir):
    import signal

    def as_nohup_starts_it():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    command = sgdlab_command("train", "--data-dir", data_dir, "--out", tmp_path / "run", "--iters", "1000000",
                             "--hidden-size", "5", "--no-plot")
    with started(command, also=as_nohup_starts_it, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout.readline().startswith("training")
        assert process.stdout.readline().startswith("epoch")
        process.send_signal(signal.SIGHUP)  # the terminal closed: what nohup is for
        assert process.stdout.readline().startswith("epoch")  # still training after it
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=PRESS_TIMEOUT)
    assert process.returncode == 130 and "Traceback" not in err
    assert read_history(tmp_path / "run")["stopped"].startswith("interrupted by SIGTERM after iteration")


def test_each_evaluation_line_is_flushed_as_it_is_written(tmp_path, data_dir, monkeypatch):
    """So that it reaches a pipe or a file (| tee, nohup.out) when it happens, not a buffer-full later."""
    class Recorded(io.StringIO):
        def __init__(self):
            super().__init__()
            self.flushed_at = set()

        def flush(self):
            self.flushed_at.add(len(self.getvalue()))

    out = Recorded()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["train", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), "--no-plot", *TINY]) == 0
    text = out.getvalue()
    ends = [match.end() for match in re.finditer(r"^epoch.*\n", text, re.MULTILINE)]
    assert len(ends) == 2 and set(ends) <= out.flushed_at


def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path, data_dir):
    with started_training(tmp_path, data_dir, "--out", tmp_path / "run", "--iters", "1300", "--hidden-size", "5",
                          "--no-plot") as process:
        process.stdout.close()  # as `sgdlab train | head -1` does after its line
        process.wait(timeout=120)
        err = process.stderr.read()
    assert process.returncode == 0 and err == ""
    history = read_history(tmp_path / "run")
    assert history["stopped"] is None and history["iteration"] == [0, 600, 1200, 1300]


def test_predict_into_a_closed_pipe_ends_quietly(tmp_path, trained_run):
    images = []
    for index in range(400):
        images.append(tmp_path / f"seven-{index}.png")
        draw_digit(7, 0, 255, size=40).save(images[-1])
    with started(sgdlab_command("predict", trained_run / "model.npz", *images), stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout.readline().startswith(str(images[0]))
        process.stdout.close()  # `| head -1`
        process.wait(timeout=120)
        err = process.stderr.read()
    assert process.returncode == 0 and err == ""


def test_a_bad_mplbackend_does_not_stop_the_charts(tmp_path, trained_run):
    import os

    run_dir = shutil.copytree(trained_run, tmp_path / "run")
    result = subprocess.run([sys.executable, "-m", "sgdlab", "plot", str(run_dir)], capture_output=True, text=True,
                            env={**os.environ, "MPLBACKEND": "no-such-backend"}, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines() == [f"wrote {run_dir / 'accuracy.png'}", f"wrote {run_dir / 'loss.png'}",
                                          f"wrote {run_dir / 'report.html'}"]


def test_process_usage_error_exits_2(tmp_path):
    result = sgdlab(tmp_path, "train", "--iters", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert last_line(result.stderr) == "sgdlab train: error: argument --iters: must be a positive integer, got '0'"


def test_process_error_exits_1_with_one_line(tmp_path):
    result = sgdlab(tmp_path, "evaluate", "missing.npz")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("sgdlab evaluate: error: missing.npz: no such model file; give the model.npz "
                             "written by 'sgdlab train'\n")


# --- sgdlab experiment ------------------------------------------------------------------------------------

@pytest.fixture
def variants_in_this_process(monkeypatch):
    """The experiment's variants trained one after another in this process, as on a one-core machine, rather than in
    a worker process each: what the test checks is the same (the next test and tests/runs/test_parallel_runs.py
    train in worker processes)."""
    monkeypatch.setattr("sgdlab.runs.experiments.usable_cores", lambda: 1)


def test_experiment_writes_a_run_per_variant_a_summary_and_the_figure(capsys, tmp_path, data_dir):
    code, out, err = run(capsys, "experiment", "optimizers", "--optimizers", "sgd,nesterov", "--iters", "5",
                         "--data-dir", data_dir, "--out", tmp_path / "exp")
    assert code == 0, err
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert list(summary["variants"]) == ["sgd", "nesterov"] and summary["figure"] == "optimizers.png"
    assert summary["variants"]["nesterov"]["settings"] == {"optimizer": "nesterov", "lr": 0.01}
    assert summary["shared_settings"]["iters"] == 5 and "epochs" not in summary["shared_settings"]  # as trained
    for variant in ("sgd", "nesterov"):
        assert RUN_FILES <= {path.name for path in (tmp_path / "exp" / variant).iterdir()}
        assert json.loads((tmp_path / "exp" / variant / "config.json").read_text())["iters"] == 5
    assert re.search(r"^nesterov +\d\.\d{4} +\d\.\d{4} +\d\.\d{4}", out, re.MULTILINE)
    assert last_line(out) == (f"results in {tmp_path / 'exp'}: summary.json, optimizers.png and one run folder "
                              "per variant")
    code, out, _ = run(capsys, "experiment", "--resume", tmp_path / "exp")
    assert (code, last_line(out)) == (0, f"{tmp_path / 'exp'} has finished already: nothing to resume")


def test_an_interrupted_experiment_is_resumed_from_the_command_line(capsys, tmp_path, data_dir,
                                                                   variants_in_this_process):
    fit = Trainer.fit

    def ctrl_c_at_3(self, *args, on_iteration=None, **kwargs):
        def then_stop(iteration, loss):
            on_iteration(iteration, loss)
            if iteration == 3:
                raise KeyboardInterrupt
        return fit(self, *args, on_iteration=then_stop, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "fit", ctrl_c_at_3)
        code, _, err = run(capsys, "experiment", "dropout", "--iters", "5", "--data-dir", data_dir, "--out",
                           tmp_path / "exp", "--quiet")
    assert code == 130 and "not run: dropout-0.2" in err
    code, out, err = run(capsys, "experiment", "--resume", tmp_path / "exp")
    assert code == 0, err
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert "stopped" not in summary and [v["iterations"] for v in summary["variants"].values()] == [5, 5]


@pytest.mark.parametrize("argv, message", [
    (["experiment", "adversarial"], "argument NAME: invalid choice: 'adversarial'"),
    (["experiment", "dropout", "--iters", "0"], "argument --iters: must be a positive integer, got '0'"),
    (["experiment", "dropout", "--iters", "3", "--epochs", "2"], "argument --epochs: not allowed with argument --iters"),
    (["experiment", "dropout", "--optimizers", "sgd"], "--optimizers chooses the variants of the optimizers "
                                                       "experiment, not of dropout"),
    (["experiment", "optimizers", "--optimizers", "sgd,lbfgs"], "unknown optimizers ['lbfgs']"),
    (["experiment", "optimizers", "--optimizers", "sgd,,adam"], "argument --optimizers: must be names separated"),
    (["experiment"], "name the experiment to run (optimizers, weight-init"),
    (["experiment", "dropout", "--resume", "exp", "--seed", "2"], "--resume continues an experiment as its "
                                                                  "experiment.json describes it: leave out NAME, "
                                                                  "--out, --seed"),
])
def test_bad_experiment_options(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, "--out", tmp_path / "exp")
    assert code == 2 and out == ""
    assert message in last_line(err)
    assert not (tmp_path / "exp").exists()


def test_train_with_batch_norm_and_dropout_saves_a_model_evaluate_reads(capsys, tmp_path, data_dir):
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--iters", "20",
                       "--hidden-sizes", "20,10", "--activation", "relu", "--weight-init", "he", "--batch-norm",
                       "--dropout", "0.2", "--no-plot", "--quiet")
    assert code == 0, err
    settings = json.loads((tmp_path / "run" / "config.json").read_text())
    assert settings["batch_norm"] is True and settings["dropout"] == 0.2 and settings["weight_init_std"] == "he"
    final_test = read_history(tmp_path / "run")["test_acc"][-1]
    code, out, _ = run(capsys, "evaluate", "--data-dir", data_dir, tmp_path / "run" / "model.npz")
    assert code == 0 and f"test acc  {final_test:.4f} (10000 images)" in out


# --- checkpoints and --resume ------------------------------------------------------------------------

# 130 iterations over the first 6000 training images: epochs of 60, evaluated (and checkpointed) at 0, 60, 120 and
# 130; a stop at 70 comes after a checkpoint, in the middle of an epoch, and the resumed run crosses an epoch's end.
RESUMED_RUN = ("--iters", "130", "--train-size", "6000")


@pytest.mark.parametrize("settings", [  # the first draws its charts at each step; the others' are the same code
    (*RESUMED_RUN, "--hidden-size", "8", "--optimizer", "adam", "--dropout", "0.1", "--quiet"),
    (*RESUMED_RUN, "--hidden-sizes", "8,6", "--activation", "relu", "--batch-norm", "--quiet", "--no-plot"),
    (*RESUMED_RUN, "--hidden-size", "8", "--augment", "--augment-rotate", "15", "--lr-schedule", "step:1:0.7",
     "--lr", "0.3", "--quiet", "--no-plot"),
    (*RESUMED_RUN, "--hidden-size", "8", "--validation", "0.1", "--early-stop", "1", "--lr-schedule", "cosine",
     "--optimizer", "adam", "--quiet", "--no-plot"),
], ids=["two-layer", "deeper", "augmented-step-schedule", "early-stop-cosine"])
def test_a_stopped_run_resumed_equals_the_run_made_in_one_go(capsys, data_dir, tmp_path, monkeypatch, settings):
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "whole", *settings)
    assert code == 0 and not (tmp_path / "whole" / "checkpoint.npz").exists()  # finished: nothing to resume
    fit = Trainer.fit

    def ctrl_c_at_70(self, *args, on_iteration=None, **kwargs):
        def then_stop(iteration, loss):
            on_iteration(iteration, loss)
            if iteration == 70:
                raise KeyboardInterrupt
        return fit(self, *args, on_iteration=then_stop, **kwargs)

    monkeypatch.setattr(Trainer, "fit", ctrl_c_at_70)
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", *settings)
    assert code == 130 and read_history(tmp_path / "run")["stopped"] == "interrupted after iteration 70"
    assert (tmp_path / "run" / "checkpoint.npz").exists()
    monkeypatch.undo()
    no_plot = [option for option in settings if option == "--no-plot"]  # as the run was started
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--quiet", *no_plot)
    assert (code, err) == (0, "")
    resumed, whole = read_history(tmp_path / "run"), read_history(tmp_path / "whole")
    for key in ("loss", "iteration", "epoch", "train_acc", "test_acc", "val_acc", "lr", "best_iteration",
                "early_stopped", "stopped"):
        assert resumed[key] == whole[key], key
    with np.load(tmp_path / "run" / "model.npz") as a, np.load(tmp_path / "whole" / "model.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "run")
    assert code == 0 and "has finished already" in out  # and nothing changed
    assert read_history(tmp_path / "run") == resumed


def test_a_run_killed_before_its_first_checkpoint_starts_again(capsys, data_dir, tmp_path):
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "whole", "--quiet", *TINY)
    (tmp_path / "run").mkdir()
    shutil.copy(tmp_path / "whole" / "config.json", tmp_path / "run" / "config.json")  # what a kill leaves
    code, stdout, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", *TINY)
    assert code == 2 and "no history.json: a run still training, or one that ended before saving" in err
    code, _, _ = run(capsys, "train", "--resume", tmp_path / "run", "--quiet")
    assert code == 0 and read_history(tmp_path / "run")["loss"] == read_history(tmp_path / "whole")["loss"]


def test_checkpoint_every_is_a_run_option_that_resume_accepts(capsys, data_dir, tmp_path):
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", *TINY,
                     "--checkpoint-every", "10")
    assert code == 0 and "checkpoint_every" not in json.loads((tmp_path / "run" / "config.json").read_text())
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "run", "--checkpoint-every", "5")
    assert code == 0 and "has finished already" in out
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--checkpoint-every", "0")
    assert code == 2 and "argument --checkpoint-every: must be a positive integer, got '0'" in err


def test_resume_of_a_diverged_run_says_how_it_ended(capsys, data_dir, tmp_path):
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", "--iters", "50",
                     "--lr", "1e30", "--activation", "relu", "--hidden-size", "8")
    assert code == 1
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "run")
    assert code == 0 and "has ended: loss became" in out and "nothing to resume" in out
    assert "give --lr to continue it" in out


def test_a_diverged_run_continues_from_its_last_checkpoint_with_a_new_rate(capsys, data_dir, tmp_path, monkeypatch):
    update = Trainer._update

    def diverge_at_150(self, compute_gradient, x, labels):  # as a too large rate makes a run do, at some point
        loss = update(self, compute_gradient, x, labels)
        return float("nan") if len(self.history.loss) == 149 else loss

    monkeypatch.setattr(Trainer, "_update", diverge_at_150)
    settings = ("--iters", "400", "--eval-every", "100", "--lr", "0.3", "--quiet", "--hidden-size", "10")
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", *settings)
    assert code == 1 and f"sgdlab train --resume {tmp_path / 'run'} --lr X" in err
    monkeypatch.undo()
    diverged = read_history(tmp_path / "run")
    assert diverged["stopped"] == "loss became nan at iteration 150"
    checkpointed = 100
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--lr", "0.001", "--quiet")
    assert (code, err) == (0, "")
    history = read_history(tmp_path / "run")
    assert history["stopped"] is None and history["lr_changes"] == [{"iteration": checkpointed, "lr": 0.001}]
    assert history["loss"][:checkpointed] == diverged["loss"][:checkpointed] and len(history["loss"]) == 400
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == 0.3  # the run's settings stay


def test_resume_with_a_new_rate_continues_an_interrupted_run_with_it(capsys, data_dir, tmp_path, monkeypatch):
    fit = Trainer.fit

    def ctrl_c_at(stop):
        def fit_stopped(self, *args, on_iteration=None, **kwargs):
            def then_stop(iteration, loss):
                on_iteration(iteration, loss)
                if iteration == stop:
                    raise KeyboardInterrupt
            return fit(self, *args, on_iteration=then_stop, **kwargs)
        return fit_stopped

    monkeypatch.setattr(Trainer, "fit", ctrl_c_at(15))
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--quiet", *TINY)
    assert code == 130
    monkeypatch.setattr(Trainer, "fit", ctrl_c_at(20))
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "run", "--lr", "0.02")
    assert code == 130 and " with SGD(lr=0.1) (learning rate 0.02 from here on) on " in out.splitlines()[0]
    monkeypatch.undo()
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "run")
    assert code == 0 and " with SGD(lr=0.02) on " in out.splitlines()[0]  # the rate it continues at
    assert read_history(tmp_path / "run")["lr_changes"] == [{"iteration": 15, "lr": 0.02}]
    code, out, _ = run(capsys, "train", "--resume", tmp_path / "run", "--lr", "0.5")
    assert code == 0 and "has finished already" in out


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0.5", "--momentum", "0.5"], "leave out --momentum"),
    (["--batch-norm", "--iters", "3"], "leave out --iters, --batch-norm"),
    (["--out", "elsewhere"], "leave out --out"),
])
def test_resume_refuses_options_that_would_change_the_run(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "train", "--resume", tmp_path / "run", *argv)
    assert (code, out) == (2, "")
    assert err == f"sgdlab train: error: --resume continues a run with the settings in its config.json: {message}\n"


def test_resume_of_a_folder_without_a_run_or_with_a_foreign_checkpoint(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", "--resume", tmp_path / "nothing")
    assert code == 2 and "holds no run to resume (no config.json)" in err
    run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "a", "--quiet", *TINY)
    (tmp_path / "b").mkdir()
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    (tmp_path / "b" / "config.json").write_text(json.dumps({**config, "lr": 0.5}))
    from sgdlab.runs.checkpoint import save_checkpoint
    from sgdlab.training.state import TrainingState
    from sgdlab.training.history import History

    save_checkpoint(tmp_path / "b" / "checkpoint.npz", TrainingState(3, {}, {}, {}, {"given": 0, "rng": None}, [],
                                                                    History(600)), {**config, "lr": 0.1})
    code, _, err = run(capsys, "train", "--resume", tmp_path / "b")
    assert code == 1 and "belongs to a run with other settings" in err
    damaged = bytearray((tmp_path / "b" / "checkpoint.npz").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "b" / "checkpoint.npz").write_bytes(bytes(damaged))
    code, _, err = run(capsys, "train", "--resume", tmp_path / "b")
    assert code == 1 and "checkpoint.npz is damaged" in err and "Traceback" not in err


@pytest.mark.slow
def test_runs_killed_at_random_instants_and_resumed_equal_the_uninterrupted_run(tmp_path, data_dir):
    import random
    import signal

    settings = ("--data-dir", data_dir, "--iters", "20000", "--hidden-size", "50", "--optimizer", "momentum",
                "--quiet", "--no-plot")
    sgdlab(tmp_path, "train", "--out", tmp_path / "whole", *settings)
    rng, kills = random.Random(0), 0
    argv = ["--out", tmp_path / "run", *settings]

    def checkpoint():  # which one the run holds (each is written beside it, then renamed over it)
        with contextlib.suppress(FileNotFoundError):
            found = (tmp_path / "run" / "checkpoint.npz").stat()
            return found.st_ino, found.st_mtime_ns
        return None

    for start in range(60):
        before = checkpoint()
        with started(sgdlab_command("train", *argv), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     text=True) as process:
            if start % 3 != 2:  # killed after it has saved a new checkpoint: the run gets done however loaded the machine
                deadline = time.monotonic() + 300
                while process.poll() is None and checkpoint() == before:
                    assert time.monotonic() < deadline, "no checkpoint saved in 5 minutes"
                    time.sleep(0.01)
            try:  # a third of the starts at any instant from their start-up on (start-up takes about 1 s)
                process.wait(timeout=rng.uniform(0, 1.5) if start % 3 != 2 else rng.uniform(0.2, 2.2))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                argv = ["--resume", tmp_path / "run", "--quiet", "--no-plot"]
                continue
            err = process.stderr.read()
        assert process.returncode == 0, err
        if argv[0] == "--out":  # finished before the first kill: try again, from scratch
            shutil.rmtree(tmp_path / "run")
            continue
        break
    else:
        raise AssertionError("the run never finished")
    assert kills >= 3
    resumed, whole = read_history(tmp_path / "run"), read_history(tmp_path / "whole")
    for key in ("loss", "iteration", "epoch", "train_acc", "test_acc", "stopped"):
        assert resumed[key] == whole[key], key
    with np.load(tmp_path / "run" / "model.npz") as a, np.load(tmp_path / "whole" / "model.npz") as b:
        for key in ("W1", "b1", "W2", "b2"):
            np.testing.assert_array_equal(a[key], b[key])
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == sorted(RUN_FILES - PLOTS)


@pytest.mark.parametrize("command", [("train", "--iters", "1", "--hidden-size", "2000"),
                                     ("gradcheck", "--hidden-size", "2000")])
def test_a_net_too_large_for_the_memory_available_is_refused_in_one_line(capsys, data_dir, tmp_path, monkeypatch,
                                                                         command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sgdlab.engine.threads.available_memory", lambda: 200 << 20)  # a small machine
    code, out, err = run(capsys, *command, "--data-dir", data_dir)
    dtype = "float32" if command[0] == "train" else "float64"
    assert code == 2 and out == "" and re.fullmatch(
        rf"sgdlab {command[0]}: error: a 784-2000-10 net in {dtype} would need about 0\.\d GB of memory, more than the "
        r"0\.2 GB available: choose smaller hidden layers\n", err), err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_more_sweep_workers_than_cores_are_refused(capsys, data_dir, tmp_path):
    from sgdlab.engine.threads import usable_cores

    cores = usable_cores()
    code, _, err = run(capsys, "sweep", "--search", "lr=log:1e-2:1", "--train-size", "300", "--validation", "0.2",
                       "--hidden-size", "10", "--iters", "3", "--trials", "1", "--workers", cores + 1,
                       "--out", tmp_path / "sweep", "--data-dir", data_dir)
    assert code == 2 and err == (f"sgdlab sweep: error: --workers {cores + 1} is more than the {cores} cores this "
                                 f"process may use (each worker keeps one busy): give --workers {cores} or fewer\n")
    assert not (tmp_path / "sweep").exists()


def test_a_variant_that_diverged_before_its_only_evaluation_is_shown_without_accuracies(capsys, tmp_path, data_dir,
                                                                                      variants_in_this_process):
    code, _, err = run(capsys, "experiment", "dropout", "--iters", "3", "--data-dir", data_dir, "--out",
                       tmp_path / "exp", "--quiet")
    assert code == 0, err
    stored = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    stored["variants"]["boom"] = {"lr": 1000.0, "weight_init_std": 10.0, "eval_every": 0}  # evaluated at its end
    (tmp_path / "exp" / "experiment.json").write_text(json.dumps(stored))
    (tmp_path / "exp" / "summary.json").unlink()
    code, out, err = run(capsys, "experiment", "--resume", tmp_path / "exp")
    assert code == 0, err
    assert re.search(r"^boom +\S+ +- +- +-  \(loss became nan", out, re.MULTILINE), out
    assert (tmp_path / "exp" / "dropout.png").stat().st_size > 10_000


def test_a_folder_name_that_is_not_utf8_is_refused_before_training_and_on_resume(capsys, tmp_path, data_dir):
    import os

    out = Path(os.fsdecode(bytes(tmp_path) + b"/run\xff"))
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", out, *TINY)
    assert code == 2 and err.count("\n") == 1
    assert "the folder name b'" in err and "run\\xff' is not UTF-8 text" in err and "give --out a name in UTF-8" in err
    assert not out.exists()
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", *TINY)
    assert code == 0, err
    (tmp_path / "run" / "history.json").unlink()  # as a run killed before its end leaves it
    (tmp_path / "run").rename(out)
    code, _, err = run(capsys, "train", "--resume", out)
    assert code == 2 and err.count("\n") == 1 and "rename the folder to a UTF-8 name" in err


def test_a_finished_history_without_evaluations_is_refused_on_resume_in_one_line(capsys, tmp_path, data_dir):
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", *TINY)
    assert code == 0, err
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    for key in ("iteration", "epoch", "train_acc", "test_acc", "seconds"):
        history[key] = []
    (tmp_path / "run" / "history.json").write_text(json.dumps(history))
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run")
    assert code == 1 and err.count("\n") == 1
    assert "history.json: history is of a finished run but holds no evaluation" in err


@pytest.mark.parametrize("value", [5, "", ["runs"], {"folder": "x"}, "a\0b"])
def test_a_config_json_whose_data_dir_is_no_folder_name_is_refused_by_plot_and_view(capsys, tmp_path, data_dir,
                                                                                    value):
    code, _, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--no-plot", *TINY)
    assert code == 0, err
    settings = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**settings, "data_dir": value}))
    for argv in (["plot", tmp_path / "run"], ["view", tmp_path / "run", "--no-browser"]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and err.count("\n") == 1 and "config.json is damaged (data_dir" in err, err
    assert not (tmp_path / "run" / "loss.png").exists()  # plot wrote nothing


def test_early_stopping_says_why_and_keeps_the_best_weights_in_the_model_file(capsys, data_dir, tmp_path):
    code, out, err = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", "--train-size", "2000",
                         "--validation", "0.5", "--epochs", "40", "--lr", "3", "--hidden-size", "10",
                         "--activation", "relu", "--eval-every", "2", "--early-stop", "2", "--no-plot")
    history = read_history(tmp_path / "run")
    assert code == 0 and history["early_stopped"] is not None and history["stopped"] is None, err
    best = history["iteration"].index(history["best_iteration"])
    assert history["val_acc"][best] == max(history["val_acc"]) and len(history["iteration"]) == best + 3
    assert f"stopped early: {history['early_stopped']}" in out
    report = (tmp_path / "run" / "report.html").read_text()
    assert (f"kept (the weights of the best validation accuracy, {history['val_acc'][best]:.4f}, at iteration "
            f"{history['best_iteration']}") in report and "It stopped early: the validation accuracy" in report
    assert f"<strong>{history['test_acc'][best]:.4f}</strong> on the test set" in report
    assert (f"its loss {history['train_loss'][best]:.4f} on the training set and {history['val_loss'][best]:.4f} on "
            f"the validation set and {history['test_loss'][best]:.4f} on the test set.") in report  # the kept weights'
    assert (f"final test accuracy {history['test_acc'][best]:.4f} (of the best evaluation's weights, iteration "
            f"{history['best_iteration']}, which model.npz holds)") in out
    code, out, _ = run(capsys, "evaluate", "--data-dir", data_dir, tmp_path / "run" / "model.npz")
    assert code == 0 and f"test acc  {history['test_acc'][best]:.4f} (10000 images)" in out


@pytest.mark.parametrize("argv, message", [
    (["--early-stop", "3"], "early_stop watches the validation accuracy: hold out a validation set too (validation "
                            "0.1, say), or leave early_stop out"),
    (["--augment-shift", "3"], "augment_shift sets a range of augment: give augment too, or leave augment_shift out"),
    (["--lr-schedule", "step:2"], "argument --lr-schedule: step:EPOCHS:FACTOR needs a positive whole number of "
                                  "epochs and a factor in (0, 1], got 'step:2'"),
    (["--augment", "--augment-scale", "1.5"], "argument --augment-scale: must be a number in [0, 1), got '1.5'"),
])
def test_chapter_8_settings_refuse_bad_values_in_one_line(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "train", "--out", tmp_path / "run", *argv)
    assert (code, out) == (2, "") and message in last_line(err)
    assert not (tmp_path / "run").exists()
