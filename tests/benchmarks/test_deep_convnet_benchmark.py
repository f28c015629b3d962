"""benchmarks/deep_convnet.py: the book's chapter-8 DeepConvNet transcribed right, the same net in PyTorch and in
sgdlab, and the command on convnet.py's machinery."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from .test_convnet_benchmark import BENCHMARKS, load_benchmark


@pytest.fixture
def deep(monkeypatch):
    """benchmarks/deep_convnet.py imported as its command runs it; its sibling modules forgotten afterwards."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    before = set(sys.modules)
    yield load_benchmark("deep_convnet")
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", None) and str(sys.modules[name].__file__).startswith(str(BENCHMARKS)):
            del sys.modules[name]


def test_the_book_transcription_scores_as_sgdlabs_deep_convnet_with_the_same_weights(deep):
    """The book's DeepConvNet (its im2col, padding 1 and 2, its test-time dropout scaling) and sgdlab's general
    ConvNet of the benchmark's layers give the same scores for the same weights, the book's halved by the
    dropout after its output layer, which ConvNet does not place; and the same parameter count, 123,552."""
    import book_deep_convnet

    import sgdlab

    np.random.seed(0)
    book = book_deep_convnet.DeepConvNet()
    network = sgdlab.ConvNet((1, 28, 28), deep.DEEP_CONVNET_LAYERS, 10, weight_init_std="he", rng=0)
    assert sorted(book.params) == sorted(network.params)
    assert sum(p.size for p in book.params.values()) == sum(p.size for p in network.params.values()) == 123_552
    network.load_weights(book.params)
    x = np.random.default_rng(1).random((3, 1, 28, 28))

    np.testing.assert_allclose(book.predict(x, train_flg=False), 0.5 * network.scores(x), rtol=1e-10, atol=1e-12)


def test_pytorchs_deep_convnet_is_the_books():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (benchmarks only)")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import torch
        import torch_convnet
    finally:
        sys.path.remove(str(BENCHMARKS))
    torch.manual_seed(0)
    model = torch_convnet.deep_convnet()
    assert sum(p.numel() for p in model.parameters()) == 123_552
    assert sum(isinstance(layer, torch.nn.Dropout) for layer in model) == 2
    assert isinstance(model[-1], torch.nn.Dropout)  # the book's dropout after the output affine layer
    first = model[0].weight
    assert first.std().item() == pytest.approx((2 / 9) ** 0.5, rel=0.3)  # He: fan-in 1 x 3 x 3
    model.eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_sgdlabs_contender_is_the_books_net(deep):
    trainer, built_by = deep.sgdlab_trainer(iters=5)
    assert sum(p.size for p in trainer.network.params.values()) == 123_552
    assert trainer.network.dtype == np.float32
    assert "deep-convnet" in built_by
    assert type(trainer.optimizer).__name__ == "Adam" and trainer.optimizer.lr == 0.001


def test_the_command_describes_its_options():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "deep_convnet.py"), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--iters", "--warmup", "--epochs", "--full", "--repeats", "--profile", "--contenders"):
        assert option in result.stdout
    assert "DeepConvNet" in result.stdout and "--child" not in result.stdout


@pytest.mark.slow  # the deep net: 3 iterations and an evaluation of all 70000 images
def test_the_sgdlab_contender_times_its_iterations_inside_fit(deep, data_dir):
    result = deep.sgdlab_child("window", str(data_dir), iters=2, warmup=1, epochs=1)

    assert result["iter_ms"] > 0 and result["eval_s"] > 0
    assert result["test_acc"] > 0.1
    assert result["dtype"] == "float32"
