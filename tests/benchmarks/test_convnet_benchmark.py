"""benchmarks/convnet.py and its book contender: the book's conv net transcribed right, the command's options,
the figures it derives and its per-layer profile."""

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name):
    """A benchmark script as a module, without leaving it in sys.modules."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def convnet(monkeypatch):
    """benchmarks/convnet.py imported as its command runs it (its folder on sys.path for its siblings); the
    sibling modules it imported are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    before = set(sys.modules)
    yield load_benchmark("convnet")
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", None) and Path(sys.modules[name].__file__).parent == BENCHMARKS:
            del sys.modules[name]


@pytest.mark.parametrize("pad", [0, 1])
def test_book_transcription_gradient_is_the_numerical_gradient(pad):
    """The book's ch07/gradient_check.py on the transcription: backpropagation through its Convolution,
    Pooling, Affine, Relu and SoftmaxWithLoss (im2col and col2im, padding included) equals the numerical
    gradient of its loss for every parameter, to the 1e-6 of its size that the book's log(y + 1e-7) in the
    cross-entropy leaves between the two (weights of std 0.1: no ReLU or pooling kink within h of this input)."""
    book = load_benchmark("book_convnet")
    np.random.seed(0)
    network = book.SimpleConvNet(input_dim=(1, 10, 10),
                                 conv_param={"filter_num": 3, "filter_size": 3, "pad": pad, "stride": 1},
                                 hidden_size=10, output_size=10, weight_init_std=0.1)
    x = np.random.rand(2, 1, 10, 10)
    t = np.array([1, 7])

    numerical = network.numerical_gradient(x, t)
    backprop = network.gradient(x, t)

    assert set(numerical) == set(backprop) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    for key in numerical:
        assert backprop[key].shape == network.params[key].shape
        assert np.abs(numerical[key]).max() > 1e-2, key  # a gradient worth comparing
        largest_gap = np.abs(backprop[key] - numerical[key]).max()
        assert largest_gap <= 1e-5 * np.abs(numerical[key]).max(), (key, largest_gap)


def test_book_transcription_im2col_rows_are_the_filter_windows():
    book = load_benchmark("book_convnet")
    x = np.arange(2 * 3 * 5 * 5, dtype=float).reshape(2, 3, 5, 5)
    col = book.im2col(x, 3, 3, stride=2, pad=1)
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    assert col.shape == (2 * 3 * 3, 3 * 3 * 3)
    row = 1 * 9 + 2 * 3 + 1  # image 1, output row 2, output column 1
    np.testing.assert_array_equal(col[row], padded[1, :, 4:7, 2:5].ravel())


def test_the_command_describes_its_options():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "convnet.py"), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--iters", "--warmup", "--epochs", "--full", "--repeats", "--profile", "--contenders",
                   "--data-dir"):
        assert option in result.stdout
    assert "--child" not in result.stdout
    assert "extrapolated" in result.stdout


@pytest.mark.parametrize("arguments, message", [
    (["--iters", "0"], "0 is not at least 1"),
    (["--repeats", "two"], "'two' is not a whole number"),
    (["--contenders", "book,keras"], "unknown contender 'keras': choose among book, pytorch, sgdlab"),
])
def test_bad_options_get_one_line_and_exit_2(arguments, message):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "convnet.py"), *arguments], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_options(convnet):
    defaults = convnet.parse_args([])
    assert (defaults.iters, defaults.warmup, defaults.epochs, defaults.repeats) == (300, 5, 20, 3)
    assert (defaults.full, defaults.profile, defaults.contenders) == (False, False, ["book", "pytorch", "sgdlab"])
    full = convnet.parse_args(["--epochs", "20", "--full", "--contenders", "pytorch, book", "--warmup", "0"])
    assert (full.epochs, full.full, full.contenders, full.warmup) == (20, True, ["pytorch", "book"], 0)


def test_the_run_is_extrapolated_from_the_window_and_one_evaluation(convnet):
    def window(iter_ms, eval_s):
        return {"iter_ms": iter_ms, "eval_s": eval_s, "train_acc": 0.9, "test_acc": 0.9, "dtype": "float64",
                "peak_rss_mb": 400.0, "process_s": 1.0, "load_1min": 2.0}

    args = argparse.Namespace(epochs=20)
    summary = convnet.summarize({"book": [window(120, 60), window(100, 50), window(150, 70)],
                                 "pytorch": [window(10, 10)]}, args)
    book, pytorch = summary["book"], summary["pytorch"]
    assert (book["iter_ms_min"], book["iter_ms_median"], book["eval_s_median"]) == (100, 120, 60)
    assert book["run_s_extrapolated"] == pytest.approx(20 * 600 * 0.120 + 20 * 60)
    assert pytorch["speedup_vs_book"] == pytest.approx(12.0)
    assert book["speedup_vs_pytorch"] == pytest.approx(1 / 12)
    assert "run_s_measured_median" not in book
    assert [run["iter_ms"] for run in book["runs"]] == [120, 100, 150]  # in the order they ran


@pytest.mark.slow  # the book's SimpleConvNet, 32 iterations and an evaluation of all 70000 images
def test_the_sgdlab_contender_times_its_iterations_inside_fit(convnet, data_dir):
    """The window is read through Trainer.fit's own callback, and the evaluation after it, of the net
    TrainConfig(net="simple-convnet") builds: the book's chapter-7 run."""
    result = convnet.sgdlab_child("window", str(data_dir), iters=30, warmup=2, epochs=1)

    assert result["iter_ms"] > 0 and result["eval_s"] > 0
    assert result["test_acc"] > 0.5  # measured after the 32 Adam steps, not before them
    assert result["dtype"] == "float32"
    assert result["built_by"] == "TrainConfig(net='simple-convnet')"


def test_the_profile_times_each_layer_of_the_training_step(convnet):
    from sgdlab import Adam, MultiLayerNet

    network = MultiLayerNet(784, [20], 10, activation="relu", rng=np.random.default_rng(0))
    layers, weights = list(network.layers), network.params["W1"].copy()
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (300, 784), dtype=np.uint8), rng.integers(0, 10, 300).astype(np.uint8)

    profile = convnet.profile_step(network, Adam(0.001), images, labels, iters=4, warmup=1)

    rows = profile["layers"]
    assert [row["part"] for row in rows] == [f"{i}: {layer!r}" for i, layer in enumerate(layers)]
    assert all(row["forward_ms"] > 0 and row["backward_ms"] > 0 for row in rows)
    assert list(profile["wall_ms"]) == ["batch", "forward (loss included)", "backward", "update"]
    assert all(ms > 0 for ms in profile["wall_ms"].values())
    # one thread ran this dense net's layers: their time lies within the passes' wall time
    assert sum(row["forward_ms"] for row in rows) <= profile["wall_ms"]["forward (loss included)"]
    assert network.layers == layers  # the step's own list was timed, not the network's
    assert not np.array_equal(network.params["W1"], weights)  # it trained


def test_the_profile_names_the_conv_nets_layers(convnet):
    from sgdlab import Adam, SimpleConvNet

    network = SimpleConvNet(rng=np.random.default_rng(0), dtype=np.float32)
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (200, 784), dtype=np.uint8), rng.integers(0, 10, 200).astype(np.uint8)

    rows = convnet.profile_step(network, Adam(0.001), images, labels, iters=2, warmup=1)["layers"]

    parts = [row["part"] for row in rows]  # in the step's order (ReLU may follow the max)
    assert sorted(part.split(": ")[1].split("(")[0] for part in parts) == [
        "Affine", "Affine", "Convolution", "Pooling", "Relu", "Relu"]
    assert all(row["forward_ms"] > 0 and row["backward_ms"] > 0 for row in rows)
