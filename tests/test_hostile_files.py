"""Every reader of a file a user hands to sgdlab, fed damaged and hostile versions of valid files.

The property everywhere: the reader returns a valid object or raises an
`SgdlabError`, never anything else, never unpickles, and never allocates out
of proportion to what a valid file needs (measured with tracemalloc, which
sees NumPy's allocations). Valid files are made by sgdlab itself: a small
model, a checkpoint of a short run, small IDX files, config and history JSON.
"""

import gzip
import io
import json
import re
import shutil
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdlab.data import idx
from sgdlab.errors import SgdlabError
from sgdlab.nn.network import MultiLayerNet, TwoLayerNet
from sgdlab.runs.checkpoint import load_checkpoint, save_checkpoint
from sgdlab.runs.model_file import load_model, save_model
from sgdlab.training.config import TrainConfig
from sgdlab.training.history import History
from sgdlab.training.trainer import Trainer

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DEEP = settings(FUZZ, max_examples=3000)  # `pytest -m slow`: minutes
MEMORY_BOUND = 64 << 20  # far above what the small valid files need, far below what the bombs declare


# --- building and damaging files -------------------------------------------------------------------

class Seed(bytes):
    """A valid file's bytes, shown by name in hypothesis's reports rather than byte by byte."""

    def __new__(cls, data, name):
        seed = super().__new__(cls, data)
        seed.name = name
        return seed

    def __repr__(self):
        return f"<{self.name}: {len(self)} bytes>"


def npy_bytes(array):
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def npz_members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def npz_bytes(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def with_header(npy, descr, shape, fit_data):
    """`npy` with its header declaring `descr` and `shape`; its data cut or padded to fit them if `fit_data`."""
    source = io.BytesIO(npy)
    np.lib.format.read_magic(source)
    np.lib.format.read_array_header_1_0(source)
    data = npy[source.tell():]
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    size = int(np.prod(shape)) * np.dtype(descr).itemsize
    if fit_data and size <= 1 << 16:
        data = (data * (size // max(len(data), 1) + 1))[:size]
    return out.getvalue() + data


def with_zip_sizes(data, member, compressed, uncompressed):
    """`data` with the central directory's sizes of its `member`-th entry replaced (a zip lying about them)."""
    data = bytearray(data)
    count, _, offset = struct.unpack_from("<HII", data, len(data) - 12)
    for index in range(count):
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, offset + 28)
        if index == member:
            struct.pack_into("<II", data, offset + 20, compressed, uncompressed)
        offset += 46 + name_length + extra_length + comment_length
    return bytes(data)


def zeros_bomb_member(name, shape):
    """A deflated .npy member declaring float64 zeros of `shape`: gigabytes declared, megabytes stored.

    Deflate's output for a run of zeros after a full flush repeats exactly, so
    the stream is assembled from one block instead of compressing it all.
    The CRC is left wrong: a reader that checks shapes first never gets there.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    block = bytes(10_000_000)
    total = int(np.prod(shape)) * 8
    assert total % len(block) == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(header.getvalue()) + compressor.flush(zlib.Z_FULL_FLUSH)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH) == repeated
    stream = start + first + repeated * (total // len(block) - 2) + compressor.flush()
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info, stream, len(header.getvalue()) + total


def npz_with_bomb(path, members, bomb):
    """Write `members` (name: bytes) and the raw deflated `bomb` member, its sizes as the bomb declares."""
    info, stream, size = bomb
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        with archive.open(info, "w", force_zip64=True) as member:
            member._compressor = None  # the stream is deflated already
            member.write(stream)
        info.file_size = size


@st.composite
def damaged(draw, data):
    """`data` truncated, with bits flipped, bytes inserted, deleted or overwritten."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "overwrite"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "truncate":
            del data[at:]
        elif how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            replacement = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(replacement)] = replacement
    return bytes(data)


DESCRS = ["<f8", "<f4", "<f2", ">f8", "<i4", "|u1", "|b1", "<c16", "|O", "<U5", "|S3", "<M8[s]", "|V8"]
SHAPES = [(), (0,), (3,), (5, 3), (6, 5), (3, 5), (50000, 50000), (2**62,), (10**6, 10**6, 10**6), (1, 1, 1, 1)]


@st.composite
def header_edited(draw, data):
    """A member of the .npz `data` with its header's dtype or shape edited, or a zip size changed."""
    members = npz_members(data)
    names = sorted(members)
    name = draw(st.sampled_from(names))
    how = draw(st.sampled_from(["header", "object", "zip sizes"]))
    if how == "header":
        members[name] = with_header(members[name], draw(st.sampled_from(DESCRS)), draw(st.sampled_from(SHAPES)),
                                    fit_data=draw(st.booleans()))
    elif how == "object":
        members[name] = npy_bytes(np.array([{"evil": 1}, None], dtype=object))
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    data = npz_bytes(members, compression)
    if how == "zip sizes":
        size = draw(st.sampled_from([0, 1, 100, 2**31, 2**32 - 1]))
        data = with_zip_sizes(data, names.index(name), draw(st.sampled_from([len(data), size])), size)
    return data


def peak_memory(function, *args):
    """The largest amount allocated while `function(*args)` ran (its exception, if any, is returned too)."""
    tracemalloc.start()
    try:
        function(*args)
        raised = None
    except Exception as exc:  # noqa: BLE001 - returned to the caller, which judges it
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def refused_or_valid(read, *args):
    """Call the reader: an SgdlabError is an answer, any other exception a bug; returns the result or None."""
    try:
        return read(*args)
    except SgdlabError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


# --- model files -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    save_model(folder / "model.npz", MultiLayerNet(6, [5], 3, use_batchnorm=True, rng=0), TrainConfig(iters=3))
    return Seed((folder / "model.npz").read_bytes(), "model.npz")


def load_model_bytes(tmp_path, data):
    path = tmp_path / "model.npz"
    path.write_bytes(data)
    result = refused_or_valid(load_model, path)
    if result is not None:
        network, meta = result
        assert network.predict(np.zeros((2, network.sizes[0]))).shape == (2, network.sizes[-1])
    return result


def test_the_valid_model_loads(tmp_path, model_bytes):
    assert load_model_bytes(tmp_path, model_bytes) is not None


@FUZZ
@given(data=st.data())
def test_a_damaged_model_is_refused_or_loads(tmp_path, model_bytes, data):
    load_model_bytes(tmp_path, data.draw(damaged(model_bytes)))


@FUZZ
@given(data=st.data())
def test_a_model_with_edited_headers_is_refused_in_bounded_memory(tmp_path, model_bytes, data):
    edited = data.draw(header_edited(model_bytes))
    peak, _ = peak_memory(load_model_bytes, tmp_path, edited)
    assert peak < MEMORY_BOUND


@FUZZ
@given(architecture=st.dictionaries(
    st.sampled_from(["class", "input_size", "hidden_size", "hidden_size_list", "output_size", "sizes", "dtype",
                     "activation", "use_batchnorm", "weight_init_std"]),
    st.one_of(st.integers(-2, 10**12), st.floats(), st.text(max_size=8), st.none(), st.booleans(),
              st.lists(st.integers(-1, 10**9), max_size=4), st.sampled_from(["TwoLayerNet", "MultiLayerNet"]),
              st.sampled_from(["float32", "float64", "int32", "object", "complex128", "float16"]))))
def test_any_architecture_in_a_model_is_refused_or_loads_in_bounded_memory(tmp_path, model_bytes, architecture):
    members = npz_members(model_bytes)
    meta = json.loads(str(np.load(io.BytesIO(members["sgdlab_model.npy"]))))
    meta["architecture"] = {**meta["architecture"], **architecture}
    members["sgdlab_model.npy"] = npy_bytes(np.array(json.dumps(meta)))
    peak, raised = peak_memory(load_model_bytes, tmp_path, npz_bytes(members))
    assert raised is None and peak < MEMORY_BOUND


def conv_model_file(path, layers, shapes):
    """A model file of a ConvNet of `layers` on MNIST's images, with zero arrays of `shapes` (name: shape), the
    parameters that network has: a complete file, as a hostile writer would make it."""
    meta = {"format_version": 1, "config": None, "architecture": {
        "class": "ConvNet", "input_dim": [1, 28, 28], "layers": layers, "output_size": 10, "weight_init_std": "he",
        "dtype": "float32"}}
    arrays = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    np.savez(path, **arrays, sgdlab_model=np.array(json.dumps(meta)))
    return path


HEAD = {"W1": (784, 10), "b1": (10,)}  # the output layer on the images themselves


@pytest.mark.parametrize("layers, shapes, message", [
    # 9.5 GB of float32 im2col columns for one image (1000 channels, a 28x28 filter at 55x55 positions), or as many
    # multiply-adds by the shifted products, from 3.2 MB
    ([{"type": "convolution", "filter_num": 1000, "filter_size": 1},
      {"type": "convolution", "filter_num": 1, "filter_size": 28, "pad": 27}],
     {"W1": (1000, 1, 1, 1), "b1": (1000,), "W2": (1, 1000, 28, 28), "b2": (1,), "W3": (3025, 10), "b3": (10,)},
     r"layer 2 of 3, Convolution\(1 filters 1000x28x28, stride 1, pad 27\), on samples of shape \(1000, 28, 28\) "
     r"giving \(1, 55, 55\), writes 2,378,330,050 values per sample, .* more than the 4,194,304"),
    # a million offsets, each a pass of the pooling's loops: minutes
    ([{"type": "pooling", "pool_size": 1000, "stride": 1026, "pad": 999}], {"W1": (4, 10), "b1": (10,)},
     r"Pooling\(1000x1000, stride 1026, pad 999\): a window of 1000x1000 has more than the 1024 offsets"),
    # the forward pass would overwrite the images it is given
    ([{"type": "relu"}], HEAD, r"layer 1 of 2, Relu\(\), works in place"),
    ([{"type": "dropout"}], HEAD, r"layer 1 of 2, Dropout\(0.5\), works in place"),
])
def test_a_convolutional_model_that_evaluate_could_not_run_is_refused_in_one_line(tmp_path, layers, shapes, message):
    from sgdlab.runs.model_file import load_mnist_model

    path = conv_model_file(tmp_path / "hostile.npz", layers, shapes)
    peak, raised = peak_memory(load_mnist_model, path)  # what evaluate and predict read a model with
    assert isinstance(raised, SgdlabError) and peak < MEMORY_BOUND
    assert re.search(f"{path} has a damaged model description.*{message}", str(raised))
    assert "\n" not in str(raised)


def test_a_zeros_bomb_in_a_model_is_refused_before_its_data_is_read(tmp_path, model_bytes):
    members = npz_members(model_bytes)
    del members["W1.npy"]
    path = tmp_path / "bomb.npz"
    npz_with_bomb(path, members, zeros_bomb_member("W1.npy", (50000, 50000)))  # 20 GB declared
    assert path.stat().st_size < 30 << 20
    peak, raised = peak_memory(load_model, path)
    assert isinstance(raised, SgdlabError) and str(path) in str(raised) and peak < MEMORY_BOUND


def test_a_zeros_bomb_matching_its_architecture_is_refused_too(tmp_path):
    net = TwoLayerNet(20000, 1, 1, rng=0)  # W1 is 20000x1: the bomb makes it 20000x20000, 3.2 GB of zeros
    save_model(tmp_path / "small.npz", net)
    members = npz_members((tmp_path / "small.npz").read_bytes())
    meta = json.loads(str(np.load(io.BytesIO(members.pop("sgdlab_model.npy")))))
    meta["architecture"].update(hidden_size=20000)
    members = {"sgdlab_model.npy": npy_bytes(np.array(json.dumps(meta))),
               "b1.npy": npy_bytes(np.zeros(20000)), "W2.npy": npy_bytes(np.zeros((20000, 1))),
               "b2.npy": members["b2.npy"]}
    path = tmp_path / "bomb.npz"
    npz_with_bomb(path, members, zeros_bomb_member("W1.npy", (20000, 20000)))
    peak, raised = peak_memory(load_model, path)
    assert isinstance(raised, SgdlabError) and "decompression bomb" in str(raised) and peak < MEMORY_BOUND


# --- the book's parameter pickles (import-params) ---------------------------------------------------

PICKLE_NET = TrainConfig(net="mlp", hidden_size=5)


@pytest.fixture(scope="module")
def params_pickles():
    """The book's save_params format for a 784-5-10 net, in each protocol Python 3's pickle.dump has written."""
    import pickle

    params = {key: np.asarray(value, np.float64) for key, value in TwoLayerNet(784, 5, 10, rng=0).params.items()}
    return [Seed(pickle.dumps(params, protocol=protocol), f"params.pkl (protocol {protocol})")
            for protocol in (3, 4, 5)]


def import_params_bytes(tmp_path, data):
    """`import_book_params` of the pickle `data`: the model it wrote, or None (refused, and nothing written)."""
    from sgdlab.runs.book_params import import_book_params

    path, out = tmp_path / "params.pkl", tmp_path / "model.npz"
    out.unlink(missing_ok=True)
    path.write_bytes(data)
    peak, raised = peak_memory(import_book_params, path, PICKLE_NET, out)
    assert peak < MEMORY_BOUND, peak
    if raised is not None:
        assert isinstance(raised, SgdlabError) and str(raised) and "\n" not in str(raised), repr(raised)
        assert not out.exists()
        return None
    return load_model(out)[0]


def test_the_valid_pickles_import(tmp_path, params_pickles):
    for data in params_pickles:
        assert import_params_bytes(tmp_path, data) is not None


@FUZZ
@given(data=st.data())
def test_a_damaged_pickle_is_refused_in_one_line_or_imports_in_bounded_memory(tmp_path, params_pickles, data):
    import_params_bytes(tmp_path, data.draw(damaged(data.draw(st.sampled_from(params_pickles)))))


# --- checkpoints -----------------------------------------------------------------------------------

CHECKPOINT_CONFIG = TrainConfig(hidden_size=3, iters=4, batch_size=5, optimizer="adam", eval_every=2,
                                batch_norm=True)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    rng = np.random.default_rng(0)
    x, t = rng.integers(0, 256, (20, 784), dtype=np.uint8), rng.integers(0, 10, 20).astype(np.uint8)
    states = []
    Trainer.from_config(CHECKPOINT_CONFIG, background=False).fit(x, t, x[:10], t[:10], on_checkpoint=states.append)
    path = tmp_path_factory.mktemp("checkpoint") / "checkpoint.npz"
    save_checkpoint(path, states[-1], CHECKPOINT_CONFIG.resolved().to_dict())
    return Seed(path.read_bytes(), "checkpoint.npz")


def load_checkpoint_bytes(tmp_path, data):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(data)
    return refused_or_valid(load_checkpoint, path, CHECKPOINT_CONFIG.resolved().to_dict())


def test_the_valid_checkpoint_loads(tmp_path, checkpoint_bytes):
    assert load_checkpoint_bytes(tmp_path, checkpoint_bytes).iteration == 2


@FUZZ
@given(data=st.data())
def test_a_damaged_checkpoint_is_refused_or_loads(tmp_path, checkpoint_bytes, data):
    load_checkpoint_bytes(tmp_path, data.draw(damaged(checkpoint_bytes)))


@FUZZ
@given(data=st.data())
def test_a_checkpoint_with_edited_headers_is_refused_in_bounded_memory(tmp_path, checkpoint_bytes, data):
    peak, raised = peak_memory(load_checkpoint_bytes, tmp_path, data.draw(header_edited(checkpoint_bytes)))
    assert raised is None and peak < MEMORY_BOUND


def forged(checkpoint, name, array):
    """The checkpoint with the array `name` replaced and its hash recomputed, as anyone can."""
    members = npz_members(checkpoint)
    meta = json.loads(np.load(io.BytesIO(members["meta.npy"])).tobytes().decode())  # UTF-8 bytes
    members[f"{name}.npy"] = npy_bytes(array)
    from sgdlab.runs.checkpoint import _digest

    meta["sha256"][name] = _digest(array)
    members["meta.npy"] = npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return npz_bytes(members)


def test_a_checkpoint_whose_text_is_a_unicode_array_as_earlier_versions_wrote_it_still_reads(tmp_path,
                                                                                             checkpoint_bytes):
    members = npz_members(checkpoint_bytes)
    text = np.load(io.BytesIO(members["meta.npy"])).tobytes().decode()
    members["meta.npy"] = npy_bytes(np.array(text))
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(npz_bytes(members))
    assert load_checkpoint(path, CHECKPOINT_CONFIG.resolved().to_dict()).iteration > 0


@pytest.mark.parametrize("name, array", [
    ("params/W1", np.zeros((784, 4), np.float32)),  # another shape, hash recomputed
    ("params/b1", np.zeros(3, np.float64)),  # another dtype
    ("optimizer/m/W1", np.zeros((5, 5), np.float32)),
    ("optimizer/iter", np.array([1, 2])),
    ("params/W9", np.zeros(3, np.float32)),  # not the network's
])
def test_a_forged_checkpoint_with_arrays_the_run_does_not_have_is_refused(tmp_path, checkpoint_bytes, name, array):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(forged(checkpoint_bytes, name, array))
    with pytest.raises(SgdlabError, match=f"{path} .*{name}"):
        load_checkpoint(path, CHECKPOINT_CONFIG.resolved().to_dict())


def test_a_zeros_bomb_in_a_checkpoint_is_refused_before_its_data_is_read(tmp_path, checkpoint_bytes):
    members = npz_members(checkpoint_bytes)
    del members["params/W1.npy"]
    path = tmp_path / "checkpoint.npz"
    npz_with_bomb(path, members, zeros_bomb_member("params/W1.npy", (50000, 50000)))
    peak, raised = peak_memory(load_checkpoint, path, CHECKPOINT_CONFIG.resolved().to_dict())
    assert isinstance(raised, SgdlabError) and str(path) in str(raised) and peak < MEMORY_BOUND


# --- IDX and gzip ----------------------------------------------------------------------------------

IDX_FILES = [Seed(idx.header_bytes((5,)) + bytes([3, 1, 4, 1, 5]), "labels"),
             Seed(idx.header_bytes((2, 28, 28)) + np.random.default_rng(0).integers(0, 256, 2 * 784, np.uint8).tobytes(),
                  "images")]


@FUZZ
@given(data=st.data(), raw=st.sampled_from(IDX_FILES), gzipped=st.booleans())
def test_damaged_idx_bytes_are_refused_or_parsed(data, raw, gzipped):
    read_damaged_idx(data, raw, gzipped)


def read_damaged_idx(data, raw, gzipped):
    stored = data.draw(damaged(Seed(gzip.compress(raw), f"{raw.name}.gz") if gzipped else raw))
    decoded = refused_or_valid(idx.decompress_if_gzip, stored, "fuzz", len(raw))
    if decoded is not None:
        parsed = refused_or_valid(idx.parse_idx, decoded, "fuzz")
        assert parsed is None or parsed.dtype == np.uint8


def gzip_bomb(size, member=64 << 20):
    """Gzip members of zeros, `size` bytes decompressed: the members are concatenated, so it takes a moment."""
    one = gzip.compress(bytes(member), compresslevel=9)
    return one * (size // member)


def test_a_gzip_bomb_is_refused_in_memory_bounded_by_the_limit():
    bomb = gzip_bomb(6 << 30)  # 6 GB
    peak, raised = peak_memory(idx.decompress_if_gzip, bomb, "bomb.gz", 10_000)
    assert isinstance(raised, SgdlabError) and "decompresses to more than 10000 bytes" in str(raised)
    assert peak < 4 << 20


def test_a_gzip_bomb_in_the_real_data_folder_is_refused(tmp_path):
    from sgdlab.data import load_mnist, mnist

    bomb = gzip_bomb(6 << 30)
    for spec in mnist.FILES:
        (tmp_path / spec.gz_name).write_bytes(bomb)
    peak, raised = peak_memory(load_mnist, True, True, False, tmp_path, False)
    assert isinstance(raised, SgdlabError) and "train-images-idx3-ubyte.gz" in str(raised)
    assert peak < 3 * mnist.FILES[0].idx_size  # a valid file needs one (47 MB) to be decoded: far below 6 GB


# --- the decoded MNIST cache -----------------------------------------------------------------------

def test_an_edited_real_cache_is_never_used(mnist_dir, tmp_path):
    from sgdlab.data import load_mnist, mnist

    for source in mnist_dir.iterdir():
        (tmp_path / source.name).symlink_to(source)
    (_, labels), _ = load_mnist(normalize=False, data_dir=tmp_path)
    cache = tmp_path / mnist.CACHE_NAME
    with np.load(cache) as archive:
        arrays = dict(archive)
    arrays["train_labels"] = (arrays["train_labels"] + 1) % 10  # another data set, stamp kept
    np.savez(cache, **arrays)
    (_, again), _ = load_mnist(normalize=False, data_dir=tmp_path)
    np.testing.assert_array_equal(again, labels)
    with np.load(cache) as archive:  # rebuilt
        np.testing.assert_array_equal(archive["train_labels"], labels)


@FUZZ
@given(data=st.data())
def test_a_damaged_cache_is_rebuilt_silently(small_cache, data):
    from sgdlab.data import load_mnist, mnist

    folder, expected = small_cache
    good = Seed((folder / mnist.CACHE_NAME).read_bytes(), mnist.CACHE_NAME)
    edited = data.draw(st.one_of(damaged(good), header_edited(good)))
    (folder / mnist.CACHE_NAME).write_bytes(edited)
    try:
        (x_train, t_train), _ = load_mnist(normalize=False, data_dir=folder, download=False)
    finally:
        (folder / mnist.CACHE_NAME).write_bytes(good)
    np.testing.assert_array_equal(x_train, expected[0])
    np.testing.assert_array_equal(t_train, expected[1])


@pytest.fixture
def small_cache(tmp_path, monkeypatch):
    """A folder of small synthetic MNIST files made canonical, with its decoded cache written."""
    import dataclasses
    import hashlib

    from sgdlab.data import load_mnist, mnist

    rng = np.random.default_rng(3)
    table = []
    for spec in mnist.FILES:
        shape = (4, 28, 28) if spec.kind == "images" else (4,)
        raw = idx.header_bytes(shape) + rng.integers(0, 10 if spec.kind == "labels" else 256, shape, np.uint8).tobytes()
        (tmp_path / spec.gz_name).write_bytes(gzip.compress(raw))
        table.append(dataclasses.replace(spec, count=4, sha256=hashlib.sha256(raw).hexdigest()))
    monkeypatch.setattr(mnist, "FILES", tuple(table))
    (x_train, t_train), _ = load_mnist(normalize=False, data_dir=tmp_path, download=False)
    assert (tmp_path / mnist.CACHE_NAME).is_file()
    return tmp_path, (x_train, t_train)


# --- config.json and history.json ------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_json():
    history = History(3, loss=[2.3, 2.1, 1.9], iteration=[0, 3], epoch=[0.0, 1.0], train_acc=[0.1, 0.5],
                      test_acc=[0.1, 0.4], seconds=[0.0, 0.5])
    config = json.dumps(TrainConfig(iters=3).resolved().to_dict(), indent=1).encode()
    return {"config": Seed(config, "config.json"),
            "history": Seed(json.dumps(history.to_dict(), indent=1).encode(), "history.json")}


def read_config(path):
    from sgdlab.runs.run_folder import read_run_settings

    assert path.name == "config.json"
    return read_run_settings(path.parent)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["config", "history"]))
def test_damaged_run_json_is_refused_or_read(tmp_path, run_json, data, kind):
    path = tmp_path / f"{kind}.json"
    path.write_bytes(data.draw(damaged(run_json[kind])))
    refused_or_valid(read_config if kind == "config" else History.load, path)


SETTING_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**30), st.floats(allow_nan=False),
                           st.text(max_size=6), st.lists(st.integers(-1, 5), max_size=3),
                           st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@FUZZ
@given(values=st.dictionaries(st.sampled_from([*TrainConfig().to_dict(), "data_dir"]), SETTING_VALUES))
def test_any_setting_of_any_type_in_config_json_is_refused_naming_it_or_read(tmp_path, values):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    refused_or_valid(read_config, path)


# --- what sgdlab writes, it reads back -------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)


@FUZZ
@given(settings=st.fixed_dictionaries({}, optional={
    "iters": st.integers(1, 10**400), "batch_size": st.integers(1, 10**30), "lr": FINITE,
    "hidden_sizes": st.lists(st.integers(1, 10**6), min_size=1, max_size=3), "weight_init_std": st.one_of(
        FINITE, st.sampled_from(["he", "xavier", "relu", "sigmoid"])), "dropout": FINITE, "weight_decay": FINITE,
    "optimizer": st.sampled_from(list(TrainConfig.__dataclass_fields__["optimizer"].metadata["choices"])),
    "momentum": FINITE, "seed": st.integers(0, 10**400), "validation": FINITE}),
    data_dir=st.one_of(st.none(), st.text(min_size=1)))
def test_any_settings_sgdlab_takes_are_read_back_from_the_config_json_it_writes(tmp_path, settings, data_dir):
    from sgdlab.errors import ConfigError
    from sgdlab.runs.run_folder import claim_run_folder, read_run_settings

    try:
        config = TrainConfig(**settings)
    except ConfigError:
        return  # refused in one line, never written
    folder = claim_run_folder(tmp_path / f"run-{len(list(tmp_path.iterdir()))}", False, config,
                              {"data_dir": data_dir} if data_dir is not None else None)
    if "\0" in (data_dir or ""):  # a name no folder can have: written, and refused as no folder when read
        with pytest.raises(SgdlabError, match="data_dir"):
            read_run_settings(folder.path)
        return
    assert read_run_settings(folder.path) == (config.resolved(), data_dir)


@st.composite
def recorded_histories(draw):
    """A history as a run records it: losses of any size a float holds, evaluations on the way, how it ended."""
    iters_per_epoch = draw(st.integers(1, 10**6))
    history = History(iters_per_epoch, loss=draw(st.lists(st.floats(0, allow_infinity=False), max_size=50)))
    stopped = draw(st.one_of(st.none(), st.text()))
    accuracies = st.floats(0, 1)
    with_validation = draw(st.booleans())
    for iteration in sorted(draw(st.lists(st.integers(0, len(history.loss)), min_size=stopped is None,
                                          max_size=5))):
        history.record_evaluation(iteration, draw(accuracies), draw(accuracies), draw(st.floats(0, 1e9)),
                                  draw(accuracies) if with_validation else None)
    for iteration in sorted(draw(st.lists(st.integers(0, len(history.loss)), max_size=3))):
        history.lr_changes.append({"iteration": iteration, "lr": draw(st.floats(5e-324, 1.7e308))})
    history.stopped = stopped
    return history


@FUZZ
@given(history=recorded_histories())
def test_any_history_a_run_records_is_read_back_from_the_history_json_it_writes(tmp_path, history):
    history.save(tmp_path / "history.json", tmp_path / "history.csv")
    assert History.load(tmp_path / "history.json") == history


# --- users' images ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_bytes():
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 9), np.uint8))
    files = {}
    for format_name in ("PNG", "JPEG", "BMP", "GIF", "TIFF"):
        out = io.BytesIO()
        image.save(out, format_name)
        files[format_name] = Seed(out.getvalue(), format_name)
    return files


@FUZZ
@given(data=st.data(), format_name=st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF"]))
def test_a_damaged_image_is_refused_or_read(tmp_path, image_bytes, data, format_name):
    from sgdlab.data.digit_images import load_digit_image

    path = tmp_path / "digit.img"
    path.write_bytes(data.draw(damaged(image_bytes[format_name])))
    pixels = refused_or_valid(load_digit_image, path)
    assert pixels is None or (pixels.shape == (784,) and np.all(np.isfinite(pixels)))


# --- longer runs of the same properties (pytest -m slow) ---------------------------------------------

@pytest.mark.slow
@DEEP
@given(data=st.data(), kind=st.sampled_from(["model", "checkpoint"]))
def test_many_damaged_or_edited_npz_files_are_refused_or_read(tmp_path, model_bytes, checkpoint_bytes, data, kind):
    valid = model_bytes if kind == "model" else checkpoint_bytes
    edited = data.draw(st.one_of(damaged(valid), header_edited(valid)))
    load = load_model_bytes if kind == "model" else load_checkpoint_bytes
    peak, raised = peak_memory(load, tmp_path, edited)
    assert raised is None and peak < MEMORY_BOUND


@pytest.mark.slow
@DEEP
@given(data=st.data(), raw=st.sampled_from(IDX_FILES))
def test_many_damaged_gzipped_idx_files_are_refused_or_parsed(data, raw):
    read_damaged_idx(data, raw, gzipped=True)


FINDINGS = Path(__file__).parent.parent / "fuzz" / "findings"


@pytest.mark.parametrize("name", ["digit-image-tiff-float-strip-offsets.tif", "digit-image-tiff-rational-strip-offsets.tif"])
def test_the_images_atheris_found_are_refused(name):
    from sgdlab.data.digit_images import load_digit_image

    with pytest.raises(SgdlabError, match=name):
        load_digit_image(FINDINGS / name)


# --- every entry point, given a FIFO, a device or a folder where a file should be -------------------

# Each case: (entry point, the file made hostile, the folder it is in). A FIFO would hang a plain open, /dev/zero
# (behind a link) would fill memory, a folder is no file: each must end at once in one line naming the file.
ENTRY_POINTS = [
    ("evaluate", "model.npz", "finished"), ("predict", "model.npz", "finished"), ("predict", "digit.png", "finished"),
    ("plot", "config.json", "finished"), ("plot", "history.json", "finished"), ("plot", "model.npz", "finished"),
    ("compare", "config.json", "finished"), ("compare", "history.json", "finished"),
    ("view", "config.json", "finished"),
    ("train --resume", "config.json", "interrupted"), ("train --resume", "history.json", "interrupted"),
    ("train --resume", "checkpoint.npz", "interrupted"), ("train --resume", ".lock", "interrupted"),
    ("sweep --resume", "sweep.json", "sweep"), ("sweep --resume", ".lock", "sweep"),
    ("experiment --resume", "experiment.json", "experiment"), ("experiment --resume", "summary.json", "experiment"),
    ("experiment --resume", ".lock", "experiment"),
    ("/api/runs", "history.json", "finished"), ("/api/runs", "model.npz", "finished"),
    ("/api/runs", "checkpoint.npz", "interrupted"),
]
HOSTILE_KINDS = ("fifo", "device", "folder")
DRIVER_SECONDS = 300  # for all the cases of one kind; each takes well under a second

# Runs the cases given as JSON in argv[1], one line of JSON out per case as it ends, under a 4 GB address-space
# limit: a reader that regressed to reading /dev/zero whole fails here, instead of filling the machine's memory.
DRIVER = r'''
import contextlib, io, json, os, resource, shutil, sys
from pathlib import Path

resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

def make_hostile(path, kind):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    {"fifo": os.mkfifo, "device": lambda p: p.symlink_to("/dev/zero"), "folder": Path.mkdir,
     "dangling link": lambda p: p.symlink_to(p.parent.parent / "link-target")}[kind](path)

def command(argv, path, kind):
    from sgdlab.cli import main

    make_hostile(path, kind)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return {"code": code, "err": err.getvalue()}

def page(folder, path, kind):
    from starlette.testclient import TestClient
    from sgdlab.lab import catalog
    from sgdlab.lab.server import create_app

    catalog.FOLDER_POLL_SECONDS = 0  # every request looks at the folder again
    lab = catalog.folder_lab([folder])
    client = TestClient(create_app(lab, "token"), base_url="http://127.0.0.1", headers={"X-Sgdlab-Token": "token"})
    assert client.get("/api/runs").json()[0]["status"] in ("finished", "in progress")
    make_hostile(path, kind)
    history = folder / "history.json"
    if path != history and history.exists():  # the run saved again: what the page reads with its history changed
        os.utime(history, ns=(history.stat().st_atime_ns, history.stat().st_mtime_ns + 10**9))
    response = client.get("/api/runs")
    return {"code": response.status_code, "err": next(iter(lab.runs.values())).feed.message["text"]}

for case in json.loads(sys.argv[1]):
    try:
        if case["argv"] is None:
            outcome = page(Path(case["folder"]), Path(case["path"]), case["kind"])
        else:
            outcome = command(case["argv"], Path(case["path"]), case["kind"])
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        outcome = {"code": None, "err": f"{type(exc).__name__}: {exc}"}
    print(json.dumps({"id": case["id"], **outcome}), flush=True)
'''


@pytest.fixture(scope="module")
def hostile_folders(tmp_path_factory, data_dir, checkpoint_bytes):
    """A finished run (with a digit image beside it) and an interrupted one (its checkpoint), to copy for each case."""
    import dataclasses

    from PIL import Image

    from sgdlab.runs.experiments import experiments
    from sgdlab.runs.run import train_run
    from sgdlab.runs.search_space import parse_search
    from sgdlab.runs.sweep import BOOK_SEARCHES, BOOK_SETTINGS, Sweep, new_sweep

    root = tmp_path_factory.mktemp("hostile-sources")
    train_run(TrainConfig(hidden_size=3, iters=3, batch_size=5), out=root / "finished", data_dir=data_dir, plot=False,
              background=False)
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(root / "finished" / "digit.png")
    interrupted = root / "interrupted"
    interrupted.mkdir()
    (interrupted / "config.json").write_text(json.dumps({**CHECKPOINT_CONFIG.resolved().to_dict(),
                                                         "data_dir": str(data_dir)}))
    (interrupted / "checkpoint.npz").write_bytes(checkpoint_bytes)
    sweep = Sweep(tuple(parse_search(text) for text in BOOK_SEARCHES), {**BOOK_SETTINGS, "epochs": None, "iters": 1},
                  trials=1)
    new_sweep(sweep, root / "sweep", data_dir=data_dir)
    (root / "experiment").mkdir()
    (root / "experiment" / "experiment.json").write_text(json.dumps({
        **dataclasses.asdict(experiments()["dropout"]), "seed": 0, "length": {"iters": 1}, "data_dir": str(data_dir)}))
    return root


def entry_point_case(root, entry, name, source, kind):
    """The case for the driver: a copy of the `source` folder in which `name` is made `kind`, and the argv."""
    case_id = f"{entry} {name} {kind}"
    folder = root / "".join(c if c.isalnum() else "-" for c in case_id) / "run"
    shutil.copytree(root / "sources" / source, folder)
    argv = {"evaluate": ["evaluate", folder / "model.npz"],
            "predict": ["predict", folder / "model.npz", folder / "digit.png"],
            "plot": ["plot", folder], "compare": ["compare", folder, "--out", folder.parent / "compare.png"],
            "view": ["view", folder, "--no-browser", "--port", "0"],
            "train --resume": ["train", "--resume", folder, "--quiet"],
            "sweep --resume": ["sweep", "--resume", folder, "--quiet"],
            "experiment --resume": ["experiment", "--resume", folder, "--quiet"]}.get(entry)
    return {"id": case_id, "argv": None if argv is None else [str(arg) for arg in argv], "folder": str(folder),
            "path": str(folder / name), "kind": kind}


@pytest.fixture(scope="module")
def entry_point_outcomes(tmp_path_factory, hostile_folders):
    """Every case's outcome by id, each kind's cases run by one driver process; a case that did not end within
    DRIVER_SECONDS (it hung, or one before it did) has none."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("hostile-cases")  # a folder of its own each time: a worker that runs this module's
    shutil.copytree(hostile_folders, root / "sources")  # tests in two batches makes the fixture twice
    outcomes = {}
    for kind in (*HOSTILE_KINDS, "dangling link"):
        cases = [entry_point_case(root, entry, name, source, kind) for entry, name, source in ENTRY_POINTS
                 if kind in HOSTILE_KINDS or name == ".lock"]
        with subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(cases)], stdout=subprocess.PIPE,
                              text=True) as driver:
            try:
                out, _ = driver.communicate(timeout=DRIVER_SECONDS)
            except subprocess.TimeoutExpired:
                driver.kill()
                out, _ = driver.communicate()
        for line in out.splitlines():
            outcome = json.loads(line)
            outcomes[outcome.pop("id")] = outcome
    return outcomes


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
@pytest.mark.parametrize("entry, name, source", ENTRY_POINTS, ids=[f"{e} {n}" for e, n, _ in ENTRY_POINTS])
def test_every_entry_point_refuses_a_fifo_a_device_or_a_folder_at_once_in_one_line(entry_point_outcomes, entry,
                                                                                      name, source, kind):
    outcome = entry_point_outcomes.get(f"{entry} {name} {kind}")
    assert outcome is not None, f"{entry} did not end within {DRIVER_SECONDS} s given a {kind} as {name}"
    if entry == "/api/runs":  # the page answers, and says what is wrong with the run beside its curves
        assert outcome["code"] == 200 and name in outcome["err"] and "\n" not in outcome["err"], outcome
    else:
        assert outcome["code"] in (1, 2), outcome
        assert outcome["err"].count("\n") == 1 and name in outcome["err"], outcome


@pytest.mark.parametrize("entry", ["train --resume", "sweep --resume", "experiment --resume"])
def test_a_lock_that_is_a_link_is_refused_and_its_target_never_made(entry_point_outcomes, tmp_path_factory, entry):
    outcome = entry_point_outcomes.get(f"{entry} .lock dangling link")
    assert outcome is not None and outcome["code"] in (1, 2), outcome
    assert outcome["err"].count("\n") == 1 and ".lock is a link" in outcome["err"], outcome
    cases = tmp_path_factory.getbasetemp()
    assert not list(cases.glob("hostile-cases*/*/link-target"))
