"""Chapter 8's DeepConvNet through the commands: train (the book's run as its defaults, a narrow one learning the
real MNIST), its refusals, evaluate, predict, compare, a sweep over its width, the experiments' refusal. The net is
narrow (4 filters in its first block, 20 hidden units) and trains on part of the training set, so that its run
takes seconds on a quiet machine; the floors are ones a correct net always clears."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from sgdlab.cli import main
from sgdlab.data import load_mnist
from sgdlab.runs.model_file import load_model
from sgdlab.training.trainer import Trainer
from tests.cli.commands import run


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory, data_dir):
    """The book's DeepConvNet with 4, 8 and 16 filters in its blocks and 20 hidden units, 200 iterations of the
    chapter's Adam."""
    out = tmp_path_factory.mktemp("deep") / "run"
    assert main(["train", "--data-dir", str(data_dir), "--out", str(out), "--net", "deep-convnet", "--filter-num",
                 "4", "--hidden-size", "20", "--iters", "200", "--train-size", "10000", "--eval-every", "0", "--quiet",
                 "--no-plot"]) == 0
    return out


def read_history(run_dir):
    return json.loads((run_dir / "history.json").read_text())


@pytest.mark.slow  # trains a deep net on real MNIST
def test_a_narrow_deep_convnet_learns_mnist_and_records_the_chapters_settings(deep_run):
    history = read_history(deep_run)
    assert history["iteration"] == [200] and history["test_acc"][-1] >= 0.7  # about 0.82 with seed 0
    config = json.loads((deep_run / "config.json").read_text())
    assert {key: config[key] for key in ("net", "filter_num", "hidden_size", "activation", "optimizer", "lr",
                                         "weight_init_std", "batch_size", "iters", "epochs", "dropout")} == {
        "net": "deep-convnet", "filter_num": 4, "hidden_size": 20, "activation": "relu", "optimizer": "adam",
        "lr": 0.001, "weight_init_std": "he", "batch_size": 100, "iters": 200, "epochs": None, "dropout": 0.0}
    network, meta = load_model(deep_run / "model.npz")
    assert network.architecture()["class"] == "DeepConvNet" and meta["config"]["net"] == "deep-convnet"
    assert [network.params[f"W{k}"].shape[0] for k in range(1, 7)] == [4, 4, 8, 8, 16, 16]
    assert network.params["W7"].shape == (16 * 4 * 4, 20)


def test_net_deep_convnet_alone_is_the_books_chapter_8_run(capsys, data_dir, tmp_path, monkeypatch):
    """Its settings as the run starts and as config.json records them (stopped before its first iteration):
    ch08/train_deepnet.py's, but for the evaluations, of the whole sets as in chapter 7's run."""
    def stopped_at_once(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", stopped_at_once)
    code, out, _ = run(capsys, "train", "--data-dir", data_dir, "--net", "deep-convnet", "--out", tmp_path / "run")
    assert code == 130
    assert out.splitlines()[0] == (
        "training DeepConvNet([Convolution(16 filters 1x3x3, stride 1, pad 1), Relu(), Convolution(16 filters 16x3x3, "
        "stride 1, pad 1), Relu(), Pooling(2x2, stride 2, pad 0), Convolution(32 filters 16x3x3, stride 1, pad 1), "
        "Relu(), Convolution(32 filters 32x3x3, stride 1, pad 2), Relu(), Pooling(2x2, stride 2, pad 0), "
        "Convolution(64 filters 32x3x3, stride 1, pad 1), Relu(), Convolution(64 filters 64x3x3, stride 1, pad 1), "
        "Relu(), Pooling(2x2, stride 2, pad 0), Affine(1024 -> 50), Relu(), Dropout(0.5), Affine(50 -> 10), "
        "Dropout(0.5), SoftmaxWithLoss()], params=123552) with Adam(lr=0.001, beta1=0.9, beta2=0.999) on 60000 "
        "images (12000 iterations, batch 100, backprop gradients, float32)")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {key: config[key] for key in ("net", "epochs", "iters", "batch_size", "eval_every", "test_eval", "lr",
                                         "optimizer", "filter_num", "hidden_size", "weight_init_std")} == {
        "net": "deep-convnet", "epochs": 20, "iters": None, "batch_size": 100, "eval_every": None,
        "test_eval": "every", "lr": 0.001, "optimizer": "adam", "filter_num": 16, "hidden_size": 50,
        "weight_init_std": "he"}


@pytest.mark.parametrize("argv, message", [
    (("--dropout", "0.3"), "deep-convnet has the book's dropout 0.5 built in and no batch norm: leave --dropout out, "
                           "or choose simple-convnet"),
    (("--batch-norm",), "deep-convnet has the book's dropout 0.5 built in and no batch norm: leave --batch-norm out"),
    (("--filter-size", "5"), "filter_size is a setting of simple-convnet, not of deep-convnet: choose net "
                             "simple-convnet, or leave filter_size out"),
    (("--pool-size", "2"), "pool_size is a setting of simple-convnet, not of deep-convnet"),
    (("--hidden-sizes", "10,10"), "hidden_sizes is a setting of mlp, not of deep-convnet"),
    (("--filter-num", "400"), "on samples of shape (400, 28, 28) giving (400, 28, 28), writes"),
    (("--filter-num", "400"), "more than the 4,194,304 sgdlab computes; use fewer or smaller filters"),
])
@pytest.mark.parametrize("command", ["train", "gradcheck"])
def test_settings_deep_convnet_does_not_take_are_refused_in_one_line_before_any_data(capsys, tmp_path, argv, message,
                                                                                   command):
    code, out, err = run(capsys, command, "--data-dir", tmp_path / "no-data", "--net", "deep-convnet", *argv)
    assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith(f"sgdlab {command}: error: ") and message in err, err
    assert not (tmp_path / "no-data").exists()


@pytest.mark.slow  # a deep net over all 70000 images
def test_evaluate_and_predict_read_a_deep_convnet(capsys, deep_run, data_dir, tmp_path):
    code, out, _ = run(capsys, "evaluate", "--data-dir", data_dir, deep_run / "model.npz")
    test_acc = read_history(deep_run)["test_acc"][-1]
    assert code == 0 and f"test acc  {test_acc:.4f} (10000 images)" in out
    _, (x_test, t_test) = load_mnist(normalize=False, data_dir=data_dir)
    network, _ = load_model(deep_run / "model.npz")
    predicted = network.predict(x_test[:50].astype(np.float32) / 255).argmax(axis=1)
    right = [i for i in range(50) if predicted[i] == t_test[i]][:2]
    paths = []
    for i in right:  # MNIST digits saved as images, read back as a user's would be
        paths.append(tmp_path / f"digit-{i}.png")
        Image.fromarray(x_test[i].reshape(28, 28)).save(paths[-1])
    code, out, err = run(capsys, "predict", deep_run / "model.npz", *paths)
    assert (code, err) == (0, "") and len(right) == 2
    for i, line in zip(right, out.splitlines(), strict=True):
        assert line.startswith(f"{tmp_path / f'digit-{i}.png'}: {t_test[i]} (probability ")


@pytest.mark.slow  # the trained deep run's fixture
def test_compare_labels_a_deep_convnet_run_by_its_net(capsys, deep_run, data_dir, tmp_path):
    code, _, _ = run(capsys, "train", "--data-dir", data_dir, "--out", tmp_path / "simple", "--net", "simple-convnet",
                     "--filter-num", "4", "--hidden-size", "20", "--iters", "20", "--train-size", "1000",
                     "--eval-every", "0", "--quiet", "--no-plot")
    assert code == 0
    from sgdlab.runs.run_folder import read_run
    from sgdlab.runs.run_labels import difference_labels

    settings = [read_run(deep_run)[0], read_run(tmp_path / "simple")[0]]
    assert difference_labels(["deep", "simple"], settings) == [
        "net=deep-convnet, iters=200, train_size=10000, weight_init_std=he",
        "net=simple-convnet, iters=20, train_size=1000, weight_init_std=0.01"]
    code, out, err = run(capsys, "compare", deep_run, tmp_path / "simple", "--out", tmp_path / "both.png")
    assert (code, err) == (0, "") and (tmp_path / "both.png").stat().st_size > 0


@pytest.mark.usefixtures("shared_local_clusters")  # see tests/conftest.py
def test_a_sweep_searches_the_width_of_a_deep_convnet(capsys, tmp_path, data_dir):
    out = tmp_path / "sweep"
    code, stdout, err = run(capsys, "sweep", "--net", "deep-convnet", "--search", "filter_num=int:2:3", "--trials", 2,
                            "--workers", 1, "--out", out, "--data-dir", data_dir, "--train-size", 300,
                            "--validation", 0.2, "--hidden-size", 10, "--iters", 2)
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())["trials"]
    assert len(rows) == 2 and all(row["status"] == "finished" for row in rows)
    for row in rows:
        trained = json.loads((out / f"trial-{row['trial']}" / "config.json").read_text())
        assert trained["net"] == "deep-convnet" and trained["filter_num"] == row["settings"]["filter_num"] in (2, 3)
        network, _ = load_model(out / f"trial-{row['trial']}" / "model.npz")
        assert network.params["W5"].shape[0] == 4 * trained["filter_num"]


@pytest.mark.slow  # two full-width DeepConvNets evaluated on the test set
def test_the_chapter_6_experiments_run_on_the_deep_convnet_where_they_apply(capsys, tmp_path, data_dir):
    code, out, err = run(capsys, "experiment", "weight-decay", "--net", "deep-convnet", "--iters", "3", "--data-dir",
                         data_dir, "--out", tmp_path / "exp", "--quiet")
    assert code == 0, err
    for variant, decay in (("no-decay", 0.0), ("decay-0.1", 0.1)):
        config = json.loads((tmp_path / "exp" / variant / "config.json").read_text())
        assert (config["net"], config["weight_decay"], config["train_size"], config["iters"]) == (
            "deep-convnet", decay, 300, 3)
        assert config["weight_init_std"] == "he" and config["hidden_sizes"] is None  # the net's own
        network, _ = load_model(tmp_path / "exp" / variant / "model.npz")
        assert type(network).__name__ == "DeepConvNet" and network.weight_decay_lambda == decay
    first = [read_history(tmp_path / "exp" / variant)["loss"][0] for variant in ("no-decay", "decay-0.1")]
    assert first[1] > first[0]  # the same weights and batch, the penalty added


@pytest.mark.parametrize("name, varied", [("batch-norm", "batch_norm, weight_init_std"), ("dropout", "dropout")])
def test_the_experiments_that_cannot_apply_to_the_deep_convnet_say_why_and_what_to_use(capsys, tmp_path, name,
                                                                                      varied):
    code, out, err = run(capsys, "experiment", name, "--net", "deep-convnet", "--out", tmp_path / "exp")
    assert (code, out) == (2, "") and err == (
        f"sgdlab experiment: error: the {name} experiment cannot run on deep-convnet: its variants set {varied}, and "
        "deep-convnet has the book's dropout 0.5 built in and no batch norm; run it with --net mlp or "
        "simple-convnet\n")
    assert not (tmp_path / "exp").exists()


def test_gradcheck_samples_the_entries_of_the_full_deep_convnet_and_says_so(capsys, data_dir):
    code, out, err = run(capsys, "gradcheck", "--net", "deep-convnet", "--entries", "3", "--train-iters", "2",
                         "--data-dir", data_dir)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if re.match(r"[Wb]\d ", line)}
    assert len(rows) == 16 and rows["W6"].endswith("ok (sampled: 3 of 36864 entries)")
    assert rows["b8"].endswith("ok (sampled: 3 of 10 entries)")
    assert "sampled: 48 of 123552 entries of W1, b1, W2, " in out  # every parameter, by 3
    code, _, err = run(capsys, "gradcheck", "--entries", "3", "--data-dir", data_dir)
    assert code == 2 and err.strip().endswith("--entries samples a convolutional net's parameters; an mlp's "
                                              "numerical gradient takes all of them in seconds: leave --entries out")
