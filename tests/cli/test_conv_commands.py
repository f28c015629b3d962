"""Chapter 7's SimpleConvNet through every command: train (the book's run as its defaults), its refusals, resume
after a stop and after a kill, evaluate, predict, compare, gradcheck and a sweep over its filters, on the real
MNIST. The nets are small (a few filters, a narrow hidden layer, a part of the training set) so that each run takes
seconds; the floors are ones a correct net always clears."""

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sgdlab.cli import main
from sgdlab.data import load_mnist
from sgdlab.runs.model_file import load_model
from sgdlab.training.trainer import Trainer
from tests.cli.commands import run
from tests.processes import sgdlab_command, started

SMALL = ("--net", "simple-convnet", "--filter-num", "3", "--hidden-size", "10", "--train-size", "2000",
         "--batch-size", "50")  # 40 iterations an epoch


def read_history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


def assert_same_run(resumed, whole):
    for key in ("loss", "iteration", "epoch", "train_acc", "test_acc", "stopped"):
        assert read_history(resumed)[key] == read_history(whole)[key], key
    with np.load(resumed / "model.npz") as a, np.load(whole / "model.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, data_dir):
    """The book's SimpleConvNet with 4 filters and 20 hidden units, 200 iterations of the chapter's Adam."""
    out = tmp_path_factory.mktemp("conv") / "run"
    assert main(["train", "--data-dir", str(data_dir), "--out", str(out), "--net", "simple-convnet", "--filter-num",
                 "4", "--hidden-size", "20", "--iters", "200", "--train-size", "10000", "--eval-every", "0", "--quiet",
                 "--no-plot"]) == 0
    return out


def test_a_small_simple_convnet_learns_mnist_and_records_the_chapters_settings(conv_run):
    history = read_history(conv_run)
    assert history["iteration"] == [200] and history["test_acc"][-1] >= 0.7  # about 0.84 with seed 0
    config = json.loads((conv_run / "config.json").read_text())
    assert {key: config[key] for key in ("net", "filter_num", "filter_size", "filter_stride", "filter_pad",
                                         "pool_size", "hidden_size", "activation", "optimizer", "lr",
                                         "weight_init_std", "batch_size", "iters", "epochs")} == {
        "net": "simple-convnet", "filter_num": 4, "filter_size": 5, "filter_stride": 1, "filter_pad": 0,
        "pool_size": 2, "hidden_size": 20, "activation": "relu", "optimizer": "adam", "lr": 0.001,
        "weight_init_std": 0.01, "batch_size": 100, "iters": 200, "epochs": None}
    network, meta = load_model(conv_run / "model.npz")
    assert network.architecture()["class"] == "SimpleConvNet" and network.input_shape == (1, 28, 28)
    assert meta["config"]["net"] == "simple-convnet"


def test_net_simple_convnet_alone_is_the_books_chapter_7_run(capsys, data_dir, tmp_path, monkeypatch):
    """Its settings as the run starts and as config.json records them (stopped before its first iteration)."""
    def stopped_at_once(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", stopped_at_once)
    code, out, _ = run(capsys, "train", "--data-dir", data_dir, "--net", "simple-convnet", "--out", tmp_path / "run")
    assert code == 130
    assert out.splitlines()[0] == (
        "training SimpleConvNet([Convolution(30 filters 1x5x5, stride 1, pad 0), Relu(), Pooling(2x2, stride 2, pad 0), "
        "Affine(4320 -> 100), Relu(), Affine(100 -> 10), SoftmaxWithLoss()], params=433890) with Adam(lr=0.001, "
        "beta1=0.9, beta2=0.999) on 60000 images (12000 iterations, batch 100, backprop gradients, float32)")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {key: config[key] for key in ("net", "epochs", "iters", "batch_size", "eval_every", "test_eval", "lr",
                                         "optimizer", "filter_num", "hidden_size", "weight_init_std")} == {
        "net": "simple-convnet", "epochs": 20, "iters": None, "batch_size": 100, "eval_every": None,
        "test_eval": "every", "lr": 0.001, "optimizer": "adam", "filter_num": 30, "hidden_size": 100,
        "weight_init_std": 0.01}


@pytest.mark.parametrize("argv, message", [
    (("--filter-num", "3"), "filter_num is a setting of simple-convnet and deep-convnet, not of mlp: choose net "
                            "simple-convnet or deep-convnet, or leave filter_num out"),
    (("--net", "mlp", "--pool-size", "3"), "pool_size is a setting of simple-convnet, not of mlp"),
    (("--net", "simple-convnet", "--hidden-sizes", "10,10"), "hidden_sizes is a setting of mlp, not of "
                                                              "simple-convnet"),
    (("--net", "simple-convnet", "--filter-size", "29"), "layer 1 of 6: Convolution(30 filters 1x29x29, stride 1, "
                                                         "pad 0) (height): a window of 29 is larger than its input "
                                                         "of 28"),
    (("--net", "simple-convnet", "--filter-size", "4"), "layer 3 of 6: Pooling(2x2, stride 2, pad 0) (height): a "
                                                        "window of 2 at stride 2 does not fit an input of 25"),
    (("--net", "simple-convnet", "--filter-stride", "2"), "layer 1 of 6: Convolution(30 filters 1x5x5, stride 2, "
                                                          "pad 0) (height)"),
    (("--net", "simple-convnet", "--pool-size", "7", "--filter-size", "3"), "layer 3 of 6: Pooling(7x7, stride 7"),
    (("--net", "simple-convnet", "--filter-size", "40", "--filter-pad", "10"),
     "layer 1 of 6: a convolution: a filter of 40x40 has more than the 1024 offsets sgdlab slides (32x32, more than "
     "an MNIST image); with the other settings as they are, these fit: filter_size 1, 3, 5"),
    (("--net", "simple-convnet", "--filter-num", "5000"), "layer 2 of 6, Relu(), on samples of shape (5000, 24, 24) "
                                                          "giving (5000, 24, 24), writes 2,880,000 values per sample, "
                                                          "which brings the network's to 5,774,976, more than the "
                                                          "4,194,304 sgdlab computes"),
    (("--net", "convnet"), "argument --net: invalid choice: 'convnet'"),
])
@pytest.mark.parametrize("command", ["train", "gradcheck"])
def test_settings_that_do_not_make_a_net_of_mnist_are_refused_in_one_line_before_any_data(capsys, tmp_path, argv,
                                                                                         message, command):
    code, out, err = run(capsys, command, "--data-dir", tmp_path / "no-data", *argv)  # no MNIST there to load
    *usage, last = err.splitlines()
    assert (code, out) == (2, "") and last.startswith(f"sgdlab {command}: error: ") and message in last, err
    assert not usage or "invalid choice" in message
    assert not (tmp_path / "no-data").exists()


@pytest.mark.parametrize("extra", [pytest.param((), marks=pytest.mark.slow), ("--batch-norm", "--dropout", "0.2")],
                         ids=["SimpleConvNet", "ConvNet"])  # (the quick loop resumes the one with more to restore)
def test_a_stopped_convolutional_run_resumed_equals_the_run_made_in_one_go(capsys, data_dir, tmp_path, monkeypatch,
                                                                           extra):
    settings = (*SMALL, *extra, "--iters", "60", "--quiet", "--no-plot")  # evaluations at 0, 40 and 60
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "whole", *settings)
    assert code == 0
    fit = Trainer.fit

    def ctrl_c_at_50(self, *args, on_iteration=None, **kwargs):
        def then_stop(iteration, loss):
            on_iteration(iteration, loss)
            if iteration == 50:
                raise KeyboardInterrupt
        return fit(self, *args, on_iteration=then_stop, **kwargs)

    monkeypatch.setattr(Trainer, "fit", ctrl_c_at_50)
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "run", *settings)
    assert code == 130 and read_history(tmp_path / "run")["stopped"] == "interrupted after iteration 50"
    monkeypatch.undo()
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--quiet")
    assert (code, err) == (0, "")
    assert_same_run(tmp_path / "run", tmp_path / "whole")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["net"] == "simple-convnet"


@pytest.mark.slow
def test_a_convolutional_run_killed_after_a_checkpoint_and_resumed_equals_the_run_made_in_one_go(capsys, data_dir,
                                                                                                tmp_path):
    settings = (*SMALL, "--batch-norm", "--dropout", "0.2", "--iters", "200", "--checkpoint-every", "10",
                "--quiet", "--no-plot")
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "whole", *settings)
    assert code == 0
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    argv = ("train", "--data-dir", data_dir, "--out", tmp_path / "run", *settings)
    with started(sgdlab_command(*map(str, argv)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():  # the first checkpoint, at iteration 10 of 200
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (tmp_path / "run" / "history.json").exists()  # killed mid-run: nothing but its checkpoint saved
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--quiet")
    assert (code, err) == (0, "")
    assert_same_run(tmp_path / "run", tmp_path / "whole")


def test_evaluate_and_predict_read_a_convolutional_model(capsys, conv_run, data_dir, tmp_path):
    code, out, _ = run(capsys, "evaluate", "--data-dir", data_dir, conv_run / "model.npz")
    test_acc = read_history(conv_run)["test_acc"][-1]
    assert code == 0 and f"test acc  {test_acc:.4f} (10000 images)" in out
    _, (x_test, t_test) = load_mnist(normalize=False, data_dir=data_dir)
    network, _ = load_model(conv_run / "model.npz")
    probabilities = network.predict(x_test[:50].astype(np.float32) / 255)
    sure = [i for i in range(50) if probabilities[i].max() > 0.9 and probabilities[i].argmax() == t_test[i]][:2]
    paths = []
    for i in sure:  # MNIST digits saved as images, read back as a user's would be
        paths.append(tmp_path / f"digit-{i}.png")
        Image.fromarray(x_test[i].reshape(28, 28)).save(paths[-1])
    code, out, err = run(capsys, "predict", conv_run / "model.npz", *paths)
    assert (code, err) == (0, "") and len(sure) == 2
    for i, line in zip(sure, out.splitlines(), strict=True):
        assert line.startswith(f"{tmp_path / f'digit-{i}.png'}: {t_test[i]} (probability ")


def test_compare_labels_runs_of_different_nets_by_the_net_and_what_else_differs(capsys, conv_run, data_dir, tmp_path):
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "mlp", "--iters", "20", "--quiet",
                     "--no-plot", "--hidden-size", "10")
    assert code == 0
    from sgdlab.runs.run_folder import read_run
    from sgdlab.runs.run_labels import difference_labels

    settings = [read_run(conv_run)[0], read_run(tmp_path / "mlp")[0]]
    assert difference_labels(["conv", "mlp"], settings) == [
        "net=simple-convnet, activation=relu, eval_every=0, hidden_size=20, iters=200, lr=0.001, optimizer=adam, "
        "train_size=10000",
        "net=mlp, activation=sigmoid, eval_every=None, hidden_size=10, iters=20, lr=0.1, optimizer=sgd, "
        "train_size=None"]
    code, out, err = run(capsys, "compare", conv_run, tmp_path / "mlp", "--out", tmp_path / "both.png")
    assert (code, err) == (0, "") and (tmp_path / "both.png").stat().st_size > 0


def test_two_convolutional_runs_are_labelled_by_their_filters(capsys):
    from sgdlab.runs.run_labels import difference_labels
    from sgdlab.training.config import TrainConfig

    settings = [TrainConfig(net="simple-convnet", filter_num=n).resolved().to_dict() for n in (10, 30)]
    assert difference_labels(["a", "b"], settings) == ["filter_num=10", "filter_num=30"]


def test_gradcheck_checks_a_small_simple_convnet(capsys, data_dir):
    """As initialised, its biases at 0 sit on relu's kink wherever a window is blank: every nudge of b1 crosses
    it, so b1 is not verified, which fails the check and says how to check it; after a few updates it passes."""
    small = ("--data-dir", data_dir, "--net", "simple-convnet", "--filter-num", "2", "--hidden-size", "5",
             "--batch-size", "2")
    code, out, err = run(capsys, "gradcheck", *small)
    assert (code, err) == (1, "") and "NOT CHECKED (b1)" in out and "add --train-iters 10" in out, out
    assert ("nudging one by h or h/2 moves some relu input across its kink, or changes which input a max pooling "
            "window takes, where the slope jumps") in out  # the kinks its layers declare
    code, out, err = run(capsys, "gradcheck", *small, "--train-iters", "10")
    assert (code, err) == (0, ""), out
    assert " after 10 updates by Adam(lr=0.001" in out.splitlines()[0]
    assert out.startswith("gradient check of SimpleConvNet([Convolution(2 filters 1x5x5, stride 1, pad 0)")
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] in (["W1"], ["b1"], ["W2"],
                                                                                       ["b2"], ["W3"], ["b3"])}
    assert set(rows) == {"W1", "b1", "W2", "b2", "W3", "b3"} and all(row.rstrip().endswith("ok") or "ok (" in row
                                                                     for row in rows.values())


@pytest.mark.usefixtures("shared_local_clusters")  # see tests/conftest.py
def test_a_sweep_searches_the_filters_of_a_convolutional_net(capsys, tmp_path, data_dir):
    out = tmp_path / "sweep"
    code, stdout, err = run(capsys, "sweep", "--net", "simple-convnet", "--search", "filter_num=int:2:4",
                            "--search", "pool_size=choice:2,4", "--trials", 3, "--workers", 1, "--out", out,
                            "--data-dir", data_dir, "--train-size", 300, "--validation", 0.2, "--hidden-size", 10,
                            "--iters", 2)
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())["trials"]
    assert len(rows) == 3 and all(row["status"] == "finished" for row in rows)
    for row in rows:
        trained = json.loads((out / f"trial-{row['trial']}" / "config.json").read_text())
        assert trained["net"] == "simple-convnet" and trained["filter_num"] == row["settings"]["filter_num"] in (2, 3, 4)
        assert trained["pool_size"] == row["settings"]["pool_size"]


@pytest.mark.parametrize("argv, message", [
    (("--search", "filter_size=int:3:5"), "a trial of this sweep would be refused: layer 3 of 6: Pooling(2x2, "
                                          "stride 2, pad 0) (height): a window of 2 at stride 2 does not fit an input "
                                          "of 25"),
    (("--search", "net=choice:mlp,simple-convnet", "--filter-num", "4"), "a trial of this sweep would be refused: "
                                                                         "filter_num is a setting of simple-convnet"),
])
def test_a_sweep_whose_trials_would_not_fit_the_images_is_refused_before_it_starts(capsys, tmp_path, argv, message):
    net = () if "net=choice:mlp,simple-convnet" in argv else ("--net", "simple-convnet")
    code, out, err = run(capsys, "sweep", "--out", tmp_path / "sweep", "--validation", "0.2", *net, *argv)
    assert code == 2 and err.startswith("sgdlab sweep: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="a process's own peak is read from Linux's /proc")
def test_the_books_run_stays_within_its_memory_estimate(tmp_path, data_dir):
    """A run of the book's SimpleConvNet, its evaluations of the whole sets, its report and charts included,
    peaks below what the memory check estimated for it."""
    import sys

    from sgdlab.data.mnist import NUM_CLASSES, SAMPLE_SHAPE
    from sgdlab.training.config import TrainConfig

    estimate = TrainConfig(net="simple-convnet", iters=30).memory_needed(SAMPLE_SHAPE, NUM_CLASSES)
    # The run's own peak is its VmHWM: Linux's ru_maxrss of a process started by exec counts the peak of the
    # process it was forked from (here pytest's, hundreds of MB after other tests); its chart process's is
    # at most the run's own at the time it started.
    code = ("import resource, sys; from sgdlab.cli import main; code = main(sys.argv[1:]); "
            "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')), "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code, "train", "--data-dir", str(data_dir), "--out",
                             str(tmp_path / "run"), "--net", "simple-convnet", "--iters", "30", "--quiet"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    peak = max(int(kilobytes) for kilobytes in result.stdout.split()) * 1024
    assert peak < estimate, (f"peak KB of the run and of its chart process: {result.stdout}", estimate >> 20)


@pytest.mark.slow  # two SimpleConvNets of 30 filters evaluated on the whole sets; the quick loop keeps the batch-norm
# experiment trained on a narrower SimpleConvNet in worker processes and every experiment moved to a convolutional net
# keeping the net's own settings (tests/runs/test_experiments.py), and experiment's --net refused in one line
# (tests/cli/test_deep_convnet_commands.py)
def test_the_chapter_6_experiments_run_on_a_convolutional_net(capsys, tmp_path, data_dir):
    code, out, err = run(capsys, "experiment", "optimizers", "--optimizers", "sgd,adam", "--net", "simple-convnet",
                         "--iters", "2", "--data-dir", data_dir, "--out", tmp_path / "exp", "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert summary["shared_settings"] == {"batch_size": 128, "iters": 2, "eval_every": 0, "net": "simple-convnet"}
    for variant, lr in (("sgd", 0.01), ("adam", 0.001)):
        config = json.loads((tmp_path / "exp" / variant / "config.json").read_text())
        assert (config["net"], config["optimizer"], config["lr"], config["filter_num"]) == ("simple-convnet", variant,
                                                                                           lr, 30)
        network, _ = load_model(tmp_path / "exp" / variant / "model.npz")
        assert type(network).__name__ == "SimpleConvNet"
        assert summary["variants"][variant]["iterations"] == 2 and summary["variants"][variant]["test_acc"] > 0


@pytest.mark.slow  # two numerical gradients of a six-convolution net
def test_gradcheck_passes_a_reduced_deep_convnet_and_fails_one_with_its_padding_cropped_one_off(capsys, data_dir,
                                                                                                monkeypatch):
    """Chapter 8's DeepConvNet at reduced width (4, 4, 8, 8, 16, 16 filters, 10 hidden units; six padded
    convolutions, the fourth by 2, and dropout after the output layer), after a few updates that move its
    biases off relu's kink: it passes; with the book's col2im cropping its padding one pixel off, it fails."""
    from sgdlab.nn import layers

    reduced = ("--data-dir", data_dir, "--net", "deep-convnet", "--filter-num", "4", "--hidden-size", "10",
               "--train-iters", "10")
    code, out, err = run(capsys, "gradcheck", *reduced)
    assert (code, err) == (0, ""), out
    assert out.startswith("gradient check of DeepConvNet(") and "; ok in " in out, out

    def cropped_one_off(col, input_shape, filter_h, filter_w, stride=1, pad=0):
        """The book's col2im, its padding cropped one pixel off (d x shifted by one row and column)."""
        dx = original(col, input_shape, filter_h, filter_w, stride, pad)
        if pad:
            dx[:, :, :-1, :-1] = dx[:, :, 1:, 1:].copy()
            dx[:, :, -1], dx[:, :, :, -1] = 0, 0
        return dx

    original = layers.convolution.col2im
    monkeypatch.setattr(layers.convolution, "col2im", cropped_one_off)
    code, out, err = run(capsys, "gradcheck", *reduced)
    assert (code, err) == (1, "") and "FAIL (" in out, out
