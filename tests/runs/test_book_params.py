"""`sgdlab import-params`: weights pickled in the book's `save_params` format become sgdlab models; anything else in
a pickle is refused in one line (exit 2), before anything in it runs, and nothing is written."""

import os
import pickle
import pickletools

import numpy as np
import pytest

from sgdlab.nn.network import MultiLayerNet, SimpleConvNet, TwoLayerNet
from sgdlab.runs.model_file import load_model
from tests.cli.commands import run

RNG = np.random.default_rng(3)


def book_params(network):
    """The dict the book's save_params pickles: the parameters by name, float64 as the book trains."""
    return {key: np.asarray(value, dtype=np.float64) for key, value in network.params.items()}


def two_layer_params(hidden=5):
    return book_params(TwoLayerNet(784, hidden, 10, weight_init_std=0.1, rng=1))


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else pickle.dumps(data))
    return path


def refused(capsys, tmp_path, data, *options):
    """`sgdlab import-params` of the pickle `data`: its one-line error; asserts exit 2 and that nothing was written."""
    source = write(tmp_path / "params.pkl", data) if data is not None else tmp_path / "params.pkl"
    out = tmp_path / "model.npz"
    code, stdout, err = run(capsys, "import-params", source, "--out", out, *(options or ("--net", "mlp",
                                                                                        "--hidden-size", "5")))
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("sgdlab import-params: error: ") and "Traceback" not in err, err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["params.pkl"]
    return err


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_a_two_layer_net_pickled_as_the_book_does_becomes_a_model_with_the_same_weights(capsys, tmp_path, protocol):
    params = two_layer_params()
    source = tmp_path / "params.pkl"
    source.write_bytes(pickle.dumps(params, protocol=protocol))
    code, out, err = run(capsys, "import-params", source, "--net", "mlp", "--hidden-size", 5, "--activation", "relu",
                         "--out", tmp_path / "model.npz")
    assert code == 0, err
    network, meta = load_model(tmp_path / "model.npz")
    assert isinstance(network, TwoLayerNet) and network.activation == "relu" and network.dtype == np.float64
    assert meta["origin"] == {"imported_from": "params.pkl", "net": "mlp"} and meta["config"] is None
    for key, value in params.items():
        np.testing.assert_array_equal(network.params[key], value)  # float64 kept: exactly the book's numbers
    assert "TwoLayerNet of 3,985 parameters in float64" in out


def test_numpy_1_spelling_and_fortran_order_and_big_endian_arrays_are_read_as_numpy_pickles_them(tmp_path):
    params = two_layer_params()
    params["W1"] = np.asfortranarray(params["W1"])
    params["b1"] = params["b1"].astype(">f4")
    data = pickle.dumps(params, protocol=3)  # GLOBAL names the modules in text: respelt as NumPy 1 wrote them
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in data
    write(tmp_path / "params.pkl", data)
    from sgdlab.runs.book_params import import_book_params
    from sgdlab.training.config import TrainConfig

    network = import_book_params(tmp_path / "params.pkl", TrainConfig(net="mlp", hidden_size=5), tmp_path / "m.npz")
    assert network.dtype == np.float64  # the file's widest float
    for key, value in params.items():
        np.testing.assert_array_equal(network.params[key], value)


def test_a_simple_convnet_and_a_batch_norm_mlp_with_its_running_statistics_import(capsys, tmp_path):
    conv = SimpleConvNet(conv_param={"filter_num": 4, "filter_size": 5, "pad": 0, "stride": 1}, hidden_size=7,
                         weight_init_std=0.1, rng=2)
    write(tmp_path / "conv.pkl", book_params(conv))
    code, _, err = run(capsys, "import-params", tmp_path / "conv.pkl", "--net", "simple-convnet", "--filter-num", 4,
                       "--hidden-size", 7, "--dtype", "float32", "--out", tmp_path / "conv.npz")
    assert code == 0, err
    imported, _ = load_model(tmp_path / "conv.npz")
    assert isinstance(imported, SimpleConvNet) and imported.dtype == np.float32
    x = RNG.random((3, 1, 28, 28))
    np.testing.assert_allclose(imported.predict(x.astype(np.float32)), conv.predict(x), rtol=1e-4, atol=1e-6)

    norm = MultiLayerNet(784, [6], 10, use_batchnorm=True, rng=4)
    params = {**book_params(norm), **{key: RNG.random(value.shape) + 0.5
                                      for key, value in norm.running_statistics.items()}}
    write(tmp_path / "norm.pkl", params)
    code, _, err = run(capsys, "import-params", tmp_path / "norm.pkl", "--net", "mlp", "--hidden-sizes", 6,
                       "--batch-norm", "--activation", "relu", "--out", tmp_path / "norm.npz")
    assert code == 0, err
    imported, _ = load_model(tmp_path / "norm.npz")
    for key, value in params.items():
        np.testing.assert_array_equal(imported.weights()[key], value)


def test_batch_norm_without_its_running_statistics_is_refused_saying_which_and_how(capsys, tmp_path):
    norm = MultiLayerNet(784, [6], 10, use_batchnorm=True, rng=4)
    err = refused(capsys, tmp_path, book_params(norm), "--net", "mlp", "--hidden-sizes", "6", "--batch-norm")
    assert "lacks running_mean1, running_var1: batch norm's running statistics" in err


class RunsACommand:
    """An object that pickles as a call of os.system: unpickled by `pickle.load`, it runs the command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_that_calls_os_system_is_refused_before_the_call_runs(capsys, tmp_path):
    marker = tmp_path.parent / f"{tmp_path.name}-ran"
    params = {**two_layer_params(), "W2": RunsACommand(f"touch {marker}")}
    err = refused(capsys, tmp_path, params)
    assert f"calls {os.system.__module__}.system, which is no part of a NumPy array (nothing in the file was run)" \
        in err
    assert not marker.exists()
    for protocol in (3, 4):  # the name given as text (GLOBAL: seen before unpickling) or built on the stack
        err = refused(capsys, tmp_path, pickle.dumps((RunsACommand(f"touch {marker}"),), protocol=protocol))
        assert "system, which is no part of a NumPy array" in err and not marker.exists()


@pytest.mark.parametrize("value, found", [
    (np.array([1.0, "text"], dtype=object), "dtype 'O8', an object dtype"),
    (np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4")]), "a structured dtype"),
    (np.zeros(3, dtype=np.int64), "dtype 'i8', no float dtype"),
    (np.float64(1.5), "calls numpy._core.multiarray.scalar"),
    ([1.0, 2.0], "a dict whose b2 is [1.0, 2.0], not an array"),
])
def test_what_is_not_a_float_array_is_refused_naming_it(capsys, tmp_path, value, found):
    err = refused(capsys, tmp_path, {**two_layer_params(), "b2": value})
    assert found in err


@pytest.mark.parametrize("data, found", [
    ([np.zeros(3)], "a pickle of a list, not a dict of arrays by name"),
    ((np.zeros(3),), "a pickle of a tuple, not a dict of arrays by name"),
    ({1: np.zeros(3)}, "a dict with the key 1, not a name"),
    (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.", "a damaged pickle"),  # a frame longer than the file
    (b"not a pickle at all", "a damaged or truncated pickle"),
])
def test_a_pickle_of_anything_but_a_dict_of_arrays_by_name_is_refused(capsys, tmp_path, data, found):
    assert found in refused(capsys, tmp_path, data)


def test_a_pickle_that_builds_an_object_of_a_class_is_refused_by_its_instruction(capsys, tmp_path):
    data = pickle.dumps(two_layer_params(), protocol=4)
    newobj = b"\x80\x04" + b"\x8c\x05numpy\x8c\x07ndarray\x93)\x81."  # numpy.ndarray.__new__(numpy.ndarray)
    assert "NEWOBJ" in {op.name for op, _, _ in pickletools.genops(newobj)} and data
    assert "instruction NEWOBJ at byte" in refused(capsys, tmp_path, newobj)


def test_arrays_of_other_names_or_shapes_than_the_net_are_refused_naming_them(capsys, tmp_path):
    params = two_layer_params()
    err = refused(capsys, tmp_path, {key: value for key, value in params.items() if key != "b2"})
    assert "lacks b2: the mlp net of these settings has W1, b1, W2, b2" in err
    err = refused(capsys, tmp_path, {**params, "W3": np.zeros((5, 10))})
    assert "holds W3 besides" in err and "choose the --net and settings the file was saved from" in err
    err = refused(capsys, tmp_path, two_layer_params(hidden=6))
    assert "W1 has shape (784, 6), where the mlp net of these settings has (784, 5)" in err
    err = refused(capsys, tmp_path, {**params, "b1": np.full(5, np.nan)})
    assert "non-finite values (inf or nan) in b1" in err


def test_huge_declared_sizes_and_files_beyond_the_nets_weights_are_refused_before_any_allocation(capsys, tmp_path):
    declared = b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"\x00" * 16 + b"."  # BINBYTES8 of 2**60 bytes
    assert "a damaged or truncated pickle" in refused(capsys, tmp_path, declared)
    params = two_layer_params()
    err = refused(capsys, tmp_path, {**params, "W1": DeclaresAHugeShape()})
    assert "array of shape (1000000000, 1000000000) whose data holds 8 bytes" in err
    err = refused(capsys, tmp_path, {**params, "W2": np.zeros((5, 10)), "padding": np.zeros(1 << 20)})
    assert "more than" in err and "the most such a file can have" in err and "mlp net (3,985 weights)" in err


class DeclaresAHugeShape:
    """Pickles as NumPy pickles an array, but its state declares 10**18 values beside 8 bytes of data."""

    def __reduce__(self):
        reconstruct, arguments, state = np.zeros(1).__reduce__()
        return reconstruct, arguments, (1, (10 ** 9, 10 ** 9), state[2], False, state[4])


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "folder", "missing"])
def test_a_fifo_a_device_a_folder_or_no_file_is_refused_without_waiting_or_reading(capsys, tmp_path, kind):
    source = tmp_path / "params.pkl"
    if kind == "fifo":
        os.mkfifo(source)
    elif kind == "folder":
        source.mkdir()
    elif kind != "missing":
        source.symlink_to("/dev/zero")
    err = refused(capsys, tmp_path, None) if kind != "missing" else None
    if kind == "missing":
        code, _, err = run(capsys, "import-params", source, "--net", "mlp", "--out", tmp_path / "m.npz")
        assert code == 2 and "no such file" in err and not any(tmp_path.iterdir())
    else:
        assert {"fifo": "a FIFO (named pipe), not a regular file", "link to /dev/zero": "a device, not a regular file",
                "folder": "a folder"}[kind] in err


def test_an_existing_model_is_kept_unless_overwrite_is_given(capsys, tmp_path):
    write(tmp_path / "params.pkl", two_layer_params())
    out = tmp_path / "model.npz"
    out.write_bytes(b"a trained model")
    code, _, err = run(capsys, "import-params", tmp_path / "params.pkl", "--net", "mlp", "--hidden-size", 5,
                       "--out", out)
    assert code == 2 and "exists: give --overwrite" in err and out.read_bytes() == b"a trained model"
    code, _, err = run(capsys, "import-params", tmp_path / "params.pkl", "--net", "mlp", "--hidden-size", 5,
                       "--out", out, "--overwrite")
    assert code == 0, err
    assert isinstance(load_model(out)[0], TwoLayerNet)
