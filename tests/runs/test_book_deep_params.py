"""`sgdlab import-params --net deep-convnet`: the weights of the book's chapter-8 DeepConvNet, pickled as its
save_params does, become an sgdlab model that scores images as the book's network does; another net's pickle is
refused by name and shape."""

import pickle

import numpy as np
import pytest

from sgdlab.data import load_mnist
from sgdlab.nn.network import DeepConvNet
from sgdlab.runs.model_file import load_model
from sgdlab.training.evaluation import count_correct
from tests.cli.commands import run
from tests.nn.book_chapter8 import BookDeepConvNet


def save_params(network, path):
    """The book's DeepConvNet.save_params: its params dict, pickled as the book writes it."""
    params = {}
    for key, val in network.params.items():
        params[key] = val
    with open(path, "wb") as f:
        pickle.dump(params, f)


def test_the_books_deep_convnet_weights_become_a_model_that_scores_as_the_book_does(capsys, tmp_path):
    rng = np.random.default_rng(8)
    book = BookDeepConvNet(randn=lambda *shape: rng.standard_normal(shape))
    save_params(book, tmp_path / "deep_convnet_params.pkl")
    code, out, err = run(capsys, "import-params", tmp_path / "deep_convnet_params.pkl", "--net", "deep-convnet",
                         "--out", tmp_path / "deep.npz")
    assert code == 0, err
    assert out == (f"{tmp_path / 'deep.npz'}: DeepConvNet of 123,552 parameters in float64, from "
                   f"{tmp_path / 'deep_convnet_params.pkl'}\n")
    network, meta = load_model(tmp_path / "deep.npz")
    assert isinstance(network, DeepConvNet) and meta["origin"]["net"] == "deep-convnet"
    x = rng.random((4, 1, 28, 28))
    np.testing.assert_allclose(network.scores(x), book.predict(x), rtol=1e-10, atol=1e-12)


def test_a_narrower_deep_convnet_is_imported_with_its_width_and_another_nets_pickle_is_refused(capsys, tmp_path):
    narrow = DeepConvNet(**{f"conv_param_{k}": {"filter_num": n} for k, n in enumerate((8, 8, 16, 16, 32, 32), 1)},
                         rng=1)
    save_params(narrow, tmp_path / "narrow.pkl")
    code, _, err = run(capsys, "import-params", tmp_path / "narrow.pkl", "--net", "deep-convnet", "--filter-num", 8,
                       "--out", tmp_path / "narrow.npz")
    assert code == 0, err
    for key, value in narrow.params.items():
        np.testing.assert_array_equal(load_model(tmp_path / "narrow.npz")[0].params[key], value)
    code, _, err = run(capsys, "import-params", tmp_path / "narrow.pkl", "--net", "deep-convnet",
                       "--out", tmp_path / "wrong.npz")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "wrong.npz").exists()
    assert "W1 has shape (8, 1, 3, 3), where the deep-convnet net of these settings has (16, 1, 3, 3)" in err
    params = {key: np.zeros_like(value) for key, value in DeepConvNet(rng=0).params.items() if key not in ("W8", "b8")}
    (tmp_path / "short.pkl").write_bytes(pickle.dumps(params))
    code, _, err = run(capsys, "import-params", tmp_path / "short.pkl", "--net", "simple-convnet",
                       "--out", tmp_path / "wrong.npz")
    assert code == 2 and "holds W4, b4, W5, b5, W6, b6, W7, b7 besides" in err


@pytest.mark.slow  # the book's DeepConvNet over the test set, twice
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_imported_deep_convnet_in_either_dtype_classifies_in_float16_too(capsys, data_dir, tmp_path, dtype):
    rng = np.random.default_rng(2)
    save_params(BookDeepConvNet(randn=lambda *shape: rng.standard_normal(shape)), tmp_path / "p.pkl")
    code, _, err = run(capsys, "import-params", tmp_path / "p.pkl", "--net", "deep-convnet", "--dtype", dtype,
                       "--out", tmp_path / "deep.npz")
    assert code == 0, err
    network, _ = load_model(tmp_path / "deep.npz")
    assert network.dtype == np.dtype(dtype)
    (_, _), (x_test, t_test) = load_mnist(normalize=False, data_dir=data_dir)
    x = x_test[:100].reshape(100, -1) / np.float32(255)
    predicted = network.scores(x.astype(network.dtype)).argmax(axis=1)
    predicted_half = network.copy(dtype="float16").scores(x.astype(np.float16)).argmax(axis=1)
    assert np.count_nonzero(predicted == predicted_half) >= 90  # an untrained net's scores lie close together
    assert count_correct(network, x_test[:100], t_test[:100]) == np.count_nonzero(predicted == t_test[:100])
