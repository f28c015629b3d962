import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sgdlab.runs.model_file import load_model, save_model
from sgdlab.training.config import TrainConfig
from sgdlab.errors import ModelFileError
from sgdlab.nn.activations import activation_names
from sgdlab.nn.network import ConvNet, MultiLayerNet, SimpleConvNet, TwoLayerNet


@pytest.fixture
def saved(tmp_path):
    net = TwoLayerNet(6, 5, 3, weight_init_std=1.0, rng=0)
    net.params["b2"] = np.array([0.1, -0.2, 0.3])
    path = tmp_path / "model.npz"
    save_model(path, net, TrainConfig(iters=7))
    return net, path


def test_round_trip_restores_weights_architecture_and_config(saved):
    net, path = saved
    loaded, meta = load_model(path)
    assert type(loaded) is TwoLayerNet and loaded.sizes == net.sizes
    for key in net.params:
        np.testing.assert_array_equal(loaded.params[key], net.params[key])
    x = np.random.default_rng(1).random((4, 6))
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    assert meta["config"]["iters"] == 7


@pytest.mark.parametrize("activation", activation_names())
def test_deeper_networks_of_every_activation_round_trip(tmp_path, activation):
    net = MultiLayerNet(4, [3, 3], 2, activation=activation, weight_init_std="xavier", rng=0, weight_decay_lambda=0.5)
    save_model(tmp_path / "deep.npz", net)
    loaded, meta = load_model(tmp_path / "deep.npz")
    assert loaded.sizes == (4, 3, 3, 2) and loaded.activation == activation and meta["config"] is None
    assert loaded.weight_init_std == "xavier" and loaded.weight_decay_lambda == 0.5
    x = np.random.default_rng(1).random((4, 4))
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


@pytest.mark.parametrize("options", [{"use_dropout": True, "dropout_ratio": 0.2}, {"use_batchnorm": True},
                                     {"use_dropout": True, "use_batchnorm": True, "weight_decay_lambda": 0.1}])
def test_dropout_and_batch_norm_round_trip_with_the_running_statistics(tmp_path, options):
    net = MultiLayerNet(4, [3, 3], 2, rng=0, **options)
    x = np.random.default_rng(1).random((6, 4))
    for _ in range(3):  # training steps move the running statistics
        net.gradient(x, np.array([0, 1, 1, 0, 1, 0]))
    save_model(tmp_path / "model.npz", net)
    loaded, _ = load_model(tmp_path / "model.npz")
    assert loaded.architecture() == net.architecture()
    assert set(loaded.running_statistics) == set(net.running_statistics)
    for key, value in net.running_statistics.items():
        assert np.any(value != 0)
        np.testing.assert_array_equal(loaded.running_statistics[key], value)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))  # test mode: by the running statistics


def test_a_deeper_model_saved_before_the_books_signature_still_loads(tmp_path):
    net = MultiLayerNet(4, [3, 3], 2, activation="tanh", weight_init_std=0.5, rng=0)
    save_model(tmp_path / "deep.npz", net)
    with np.load(tmp_path / "deep.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays["sgdlab_model"]))
    meta["architecture"] = {"class": "MultiLayerNet", "sizes": [4, 3, 3, 2], "activation": "tanh",
                            "weight_init_std": 0.5, "dtype": "float64"}  # as earlier versions recorded it
    arrays["sgdlab_model"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    loaded, _ = load_model(tmp_path / "old.npz")
    assert loaded.architecture() == net.architecture()


def test_a_model_saved_by_sgdlab_0_1_0_still_loads():
    # Written by sgdlab 0.1.0 before the packages were laid out by role: TwoLayerNet(784, 3, 10, rng=0), float32.
    loaded, meta = load_model(Path(__file__).parent / "model-0.1.0.npz")
    expected = TwoLayerNet(784, 3, 10, rng=0, dtype="float32")
    assert type(loaded) is TwoLayerNet and loaded.dtype == np.float32 and meta["config"]["iters"] == 10000
    for key in expected.params:
        np.testing.assert_array_equal(loaded.params[key], expected.params[key])


def test_an_unknown_activation_is_a_damaged_description(saved, tmp_path):
    _, path = saved
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays["sgdlab_model"]))
    meta["architecture"]["activation"] = "softplus"
    arrays["sgdlab_model"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(ModelFileError, match="damaged model description.*activation must be one of .*'softplus'"):
        load_model(tmp_path / "other.npz")


def test_file_is_plain_arrays_readable_without_pickle(saved):
    _, path = saved
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["W1", "W2", "b1", "b2", "sgdlab_model"]
        assert json.loads(str(archive["sgdlab_model"]))["architecture"]["hidden_size"] == 5


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.npz")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ModelFileError, match="is a folder"):
        load_model(tmp_path)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(ModelFileError, match="garbage.npz is not an sgdlab model file"):
        load_model(path)


def test_truncated_file(saved, tmp_path):
    _, path = saved
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="cut.npz is not an sgdlab model file"):
        load_model(cut)


def test_npz_of_someone_else(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match="not an sgdlab model"):
        load_model(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, sgdlab_model=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="pickled.npz is not an sgdlab model file"):
        load_model(path)


def test_weights_that_do_not_match_the_architecture(saved, tmp_path):
    _, path = saved
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["W2"] = np.zeros((4, 3))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match=r"W2 is float64 of shape \(4, 3\), the architecture needs floats of shape \(5, 3\)"):
        load_model(bad)
    del arrays["W2"]
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match="holds arrays"):
        load_model(bad)


def test_damaged_description(saved, tmp_path):
    _, path = saved
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["sgdlab_model"] = np.array('{"format_version": 1, "architecture": {"class": "Nope"}}')
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ModelFileError, match="damaged model description"):
        load_model(bad)


def test_failed_save_leaves_the_previous_model_intact(saved, monkeypatch):
    net, path = saved
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("sgdlab.runs.model_file.np.savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, net)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]
    assert zipfile.is_zipfile(path)


def test_save_model_with_its_arguments_swapped_says_so(tmp_path):
    with pytest.raises(TypeError, match=r"save_model\(path, network, config=None\) takes the file path first"):
        save_model(TwoLayerNet(4, 3, 2, rng=0), tmp_path / "model.npz")


@pytest.mark.parametrize("sizes, message", [
    ((783, 5, 10), "takes 783 inputs per image, but MNIST images have 784 pixels"),
    ((784, 5, 3), "gives 3 outputs, but MNIST has 10 classes"),
])
def test_a_model_for_mnist_must_read_its_images_and_tell_its_classes(tmp_path, sizes, message):
    from sgdlab.runs.model_file import load_mnist_model

    save_model(tmp_path / "model.npz", MultiLayerNet(sizes[0], list(sizes[1:-1]), sizes[-1], rng=0))
    with pytest.raises(ModelFileError, match=message):
        load_mnist_model(tmp_path / "model.npz")
    save_model(tmp_path / "mnist.npz", MultiLayerNet(784, [5], 10, rng=0))
    assert load_mnist_model(tmp_path / "mnist.npz").sizes == (784, 5, 10)


def test_a_convolutional_model_for_mnist_must_take_its_28x28_images(tmp_path):
    from sgdlab.runs.model_file import load_mnist_model

    conv_param = {"filter_num": 2, "filter_size": 3}
    save_model(tmp_path / "model.npz", SimpleConvNet((4, 14, 14), conv_param, hidden_size=5, rng=0))  # 784 values
    with pytest.raises(ModelFileError, match=r"takes images of shape \(4, 14, 14\), but MNIST images are "
                                             r"\(1, 28, 28\) \(one channel of 28x28 pixels\)"):
        load_mnist_model(tmp_path / "model.npz")
    save_model(tmp_path / "mnist.npz", SimpleConvNet((1, 28, 28), conv_param, hidden_size=5, rng=0))
    assert load_mnist_model(tmp_path / "mnist.npz").input_shape == (1, 28, 28)


# --- hostile files: every header is checked before any data is read (see also tests/test_hostile_files.py) ----

def rewritten(saved_path, tmp_path, architecture=None, arrays=None):
    """A copy of the saved model with its architecture updated and arrays replaced, as np.savez writes them."""
    with np.load(saved_path) as archive:
        contents = dict(archive)
    meta = json.loads(str(contents["sgdlab_model"]))
    meta["architecture"].update(architecture or {})
    contents.update(arrays or {}, sgdlab_model=np.array(json.dumps(meta)))
    path = tmp_path / "edited.npz"
    np.savez(path, **contents)
    return path


@pytest.mark.parametrize("architecture, message", [
    ({"dtype": "int32"}, "dtype must be one of float32, float64, got 'int32'"),
    ({"dtype": "object"}, "dtype must be one of float32, float64, got 'object'"),
    ({"dtype": "complex128"}, "dtype must be one of float32, float64"),
    ({"hidden_size": 10**12}, "describes a network of 10,000,000,000,003 parameters"),
    ({"hidden_size": -5}, r"layer sizes must be positive integers, got \[6, -5, 3\]"),
    ({"hidden_size": 5.0}, r"layer sizes must be positive integers, got \[6, 5.0, 3\]"),
    ({"hidden_size": "5"}, "layer sizes must be positive integers"),
    ({"class": "MultiLayerNet", "sizes": [6] * 100_000 + [3]}, "layer sizes|parameters|holds arrays"),
    ({"class": "MultiLayerNet", "sizes": [6, 10**9, 10**9, 3]}, "parameters"),
])
def test_an_absurd_or_foreign_architecture_is_refused_before_the_network_is_built(saved, tmp_path, architecture,
                                                                                  message):
    path = rewritten(saved[1], tmp_path, architecture)
    with pytest.raises(ModelFileError, match=f"{path}.*({message})"):
        load_model(path)


def test_a_description_of_a_million_layers_is_refused_by_its_size(saved, tmp_path):
    path = rewritten(saved[1], tmp_path, {"class": "MultiLayerNet", "sizes": [6] * 10**6 + [3]})
    with pytest.raises(ModelFileError, match="more than the 4194304 bytes it may have"):
        load_model(path)


@pytest.mark.parametrize("array", [np.zeros((6, 5), complex), np.full((6, 5), "x"), np.zeros((6, 5), np.int64),
                                   np.zeros((6, 5), np.float32).astype(">f4").view([("a", ">f4")])])
def test_weights_that_are_not_floats_are_refused(saved, tmp_path, array):
    path = rewritten(saved[1], tmp_path, arrays={"W1": array})
    with pytest.raises(ModelFileError, match=str(path)):
        load_model(path)


def test_an_npy_file_given_as_a_model_is_named_as_such(tmp_path):
    np.save(tmp_path / "weights.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="weights.npy is not an sgdlab model file .a single .npy array"):
        load_model(tmp_path / "weights.npy")


def test_a_member_whose_data_is_longer_or_shorter_than_its_header_says_is_refused(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    for change in (b"extra bytes", None):
        edited = dict(members, **{"W1.npy": members["W1.npy"] + change if change else members["W1.npy"][:-8]})
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(bad, "w") as archive:
            for name, data in edited.items():
                archive.writestr(name, data)
        with pytest.raises(ModelFileError, match=r"member 'W1.npy' is \d+ bytes long, but its header declares "
                                                 r"float64 of shape \(6, 5\)"):
            load_model(bad)


def test_an_archive_claiming_sizes_far_beyond_the_file_is_refused(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the last member's directory entry: its uncompressed size
    data[central + 24:central + 28] = (2**32 - 1).to_bytes(4, "little")
    (tmp_path / "huge.npz").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="claim .* bytes, more than 16 times the file's size"):
        load_model(tmp_path / "huge.npz")


# --- convolutional nets ------------------------------------------------------------------------------------------

CONV_LAYERS = [{"type": "convolution", "filter_num": 3, "filter_size": 3, "stride": 1, "pad": 1}, {"type": "batch_norm"},
               {"type": "relu"}, {"type": "pooling", "pool_size": 2, "stride": 2, "pad": 0},
               {"type": "dropout", "ratio": 0.25}, {"type": "affine", "output_size": 8}, {"type": "tanh"}]


@pytest.mark.parametrize("make", [
    lambda: SimpleConvNet(rng=0, dtype=np.float32),
    lambda: SimpleConvNet((1, 12, 12), {"filter_num": 4, "filter_size": 3, "pad": 1, "stride": 1}, 7, 5, "he", rng=1),
    lambda: ConvNet((2, 8, 8), CONV_LAYERS, 4, weight_init_std="xavier", weight_decay_lambda=0.01, rng=2),
])
def test_convolutional_nets_round_trip(tmp_path, make):
    net = make()
    rng = np.random.default_rng(3)
    for value in net.running_statistics.values():
        value[...] = rng.random(value.shape)  # statistics as training leaves them
    save_model(tmp_path / "conv.npz", net, TrainConfig(iters=3))
    loaded, meta = load_model(tmp_path / "conv.npz")
    assert type(loaded) is type(net) and loaded.architecture() == net.architecture() and loaded.dtype == net.dtype
    for key, value in net.weights().items():
        np.testing.assert_array_equal(loaded.weights()[key], value)
    x = rng.random((3, *net.input_shape)).astype(net.dtype)
    np.testing.assert_array_equal(loaded.scores(x), net.scores(x))
    with zipfile.ZipFile(tmp_path / "conv.npz") as archive:
        assert not any(name.endswith(".pkl") for name in archive.namelist())


def test_a_simple_convnet_reads_mnist(tmp_path):
    from sgdlab.runs.model_file import load_mnist_model

    save_model(tmp_path / "conv.npz", SimpleConvNet(rng=0))
    assert load_mnist_model(tmp_path / "conv.npz").input_shape == (1, 28, 28)
    save_model(tmp_path / "five.npz", SimpleConvNet(output_size=5, rng=0))
    with pytest.raises(ModelFileError, match="gives 5 outputs, but MNIST has 10 classes"):
        load_mnist_model(tmp_path / "five.npz")


@pytest.fixture
def saved_conv(tmp_path):
    path = tmp_path / "conv.npz"
    save_model(path, ConvNet((1, 8, 8), CONV_LAYERS[:4], 3, rng=0))
    return path


@pytest.mark.parametrize("architecture, message", [
    ({"layers": [{"type": "convolution", "filter_num": 10**5, "filter_size": 8}]}, "describes a network of"),
    ({"layers": [{"type": "convolution", "filter_num": 300_000, "filter_size": 1}]}, "gives 19,200,000 values per "
                                                                                     "sample"),
    ({"layers": [{"type": "relu"}] * 1000}, "fewer than 100 layer specifications"),
    ({"layers": [{"type": "convolution", "filter_num": 2**62, "filter_size": 3}]}, "more than the 1,073,741,824 "
                                                                                   "parameters"),
    ({"layers": [{"type": "affine", "output_size": 10**30}]}, "more than the 1,073,741,824 parameters"),
    ({"layers": [{"type": "convolution", "filter_num": 2, "filter_size": 3, "stride": 2**20, "pad": 2**14}]},
     "padded by 16384 holds more than the 16,777,216 values"),
    ({"layers": [{"type": "pooling", "pool_size": 2**40, "pad": 2**39, "stride": 1}]}, "a window of "
                                                                                     "1099511627776x1099511627776"),
    ({"layers": [{"type": "convolution", "filter_num": 2, "filter_size": 9}]}, "a window of 9 is larger than its "
                                                                              "input of 8"),
    ({"layers": [{"type": "pooling", "pool_size": 3}]}, "does not fit an input of 8"),
    ({"layers": [{"type": "convolution", "filter_num": "2", "filter_size": 3}]}, "filter_num must be a positive "
                                                                                 "integer"),
    ({"layers": [{"type": "os.system"}]}, "a layer's type must be one of"),
    ({"layers": "relu"}, "layers is a list"),
    ({"input_dim": [1, 10**6, 10**6]}, "input_dim is one sample's"),
    ({"input_dim": [1, 8]}, "input_dim is one sample's"),
    ({"output_size": 0}, "output_size must be a positive integer"),
    ({"unknown": 1}, "unknown"),
])
def test_a_hostile_convolutional_architecture_is_refused_before_the_network_is_built(saved_conv, tmp_path,
                                                                                     architecture, message):
    path = rewritten(saved_conv, tmp_path, architecture)
    with pytest.raises(ModelFileError, match=f"{path}.*{message}") as error:
        load_model(path)
    assert "damaged" in str(error.value) and "\n" not in str(error.value)
