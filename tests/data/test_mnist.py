"""Tests for the IDX reader and load_mnist.

Most tests write small synthetic IDX files into tmp_path and shrink the
canonical table to match them; none touch the network. Tests on the real
MNIST run when SGDLAB_DATA names a folder holding it.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import re
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgdlab.data import idx, load_mnist, mnist
from sgdlab.errors import DataError

TRAIN_COUNT, TEST_COUNT = 6, 4
ALL_NAMES = [spec.name for spec in mnist.FILES]


# --- helpers ---------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic, one big-endian size per dimension, data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_sources(folder: Path, raws: dict[str, bytes], gzipped: bool = True) -> None:
    """Store each file as the loader finds it: NAME.gz, or plain NAME."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in raws.items():
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


def small_array(spec: mnist.MnistFile, rng: np.random.Generator) -> np.ndarray:
    count = TRAIN_COUNT if spec.split == "train" else TEST_COUNT
    if spec.kind == "images":
        return rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return rng.integers(0, 10, size=count, dtype=np.uint8)


def data_error(*fragments: str) -> str:
    """A `match` pattern requiring every fragment, in any order, literally."""
    return "".join(f"(?=.*{re.escape(fragment)})" for fragment in fragments)


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every download fails unless a test installs its own `_fetch`."""
    def refuse(url, dest):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(mnist, "MIRRORS", ["https://mirror-a.invalid/", "https://mirror-b.invalid/"])
    monkeypatch.setattr(mnist, "_fetch", refuse)


@pytest.fixture(autouse=True)
def new_process(monkeypatch):
    """Each test starts as a new process would, having verified no file yet; calling it forgets them again."""
    def forget():
        monkeypatch.setattr(mnist, "_verified", mnist._VerifiedFiles())

    forget()
    return forget


@pytest.fixture
def small_mnist(monkeypatch):
    """Small synthetic MNIST: returns {name: raw IDX bytes} and makes them the canonical table."""
    rng = np.random.default_rng(0)
    arrays = {spec.name: small_array(spec, rng) for spec in mnist.FILES}
    raws = {name: idx_bytes(array) for name, array in arrays.items()}
    table = tuple(
        dataclasses.replace(spec, count=len(arrays[spec.name]), sha256=sha256(raws[spec.name]))
        for spec in mnist.FILES
    )
    monkeypatch.setattr(mnist, "FILES", table)
    return raws


@pytest.fixture
def small_dir(tmp_path, small_mnist):
    folder = tmp_path / "mnist"
    write_sources(folder, small_mnist)
    return folder


# --- the IDX reader --------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (2, 4, 7)])
def test_parse_idx_round_trips_without_copying(shape):
    array = np.arange(np.prod(shape), dtype=np.uint64).astype(np.uint8).reshape(shape)
    raw = idx_bytes(array)
    parsed = idx.parse_idx(raw, "x")
    assert parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, array)
    assert np.shares_memory(parsed, np.frombuffer(raw, dtype=np.uint8))


@pytest.mark.parametrize("gzipped", [True, False])
@pytest.mark.parametrize("file_name", ["labels.gz", "labels"])
def test_read_idx_detects_gzip_by_content_not_name(tmp_path, gzipped, file_name):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    raw = idx_bytes(labels)
    path = tmp_path / file_name
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    np.testing.assert_array_equal(idx.read_idx(path), labels)


def test_truncated_data_says_expected_and_found_size():
    raw = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=data_error("imgs", "truncated", f"expected {len(raw)} bytes, found {len(raw) - 1}")):
        idx.parse_idx(raw[:-1], "imgs")


def test_truncated_header_is_refused():
    raw = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=data_error("imgs", "truncated header")):
        idx.parse_idx(raw[:10], "imgs")


def test_extra_bytes_are_refused():
    raw = idx_bytes(np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match=data_error("lbls", "3 extra bytes", f"expected {len(raw)} bytes, found {len(raw) + 3}")):
        idx.parse_idx(raw + b"abc", "lbls")


@pytest.mark.parametrize("magic", [0x00000802, 0x00000D03, 0x01000801, 0x1F8B0800])
def test_wrong_magic_is_refused(magic):
    raw = struct.pack(">II", magic, 1) + b"\x00"
    with pytest.raises(DataError, match=data_error("blob", f"magic number 0x{magic:08x}")):
        idx.parse_idx(raw, "blob")


def test_header_count_larger_than_data_is_truncation():
    raw = bytearray(idx_bytes(np.zeros(4, dtype=np.uint8)))
    raw[4:8] = struct.pack(">I", 5)
    with pytest.raises(DataError, match="truncated"):
        idx.parse_idx(bytes(raw), "lbls")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_gzip_becomes_data_error(tmp_path, damage):
    packed = bytearray(gzip.compress(np.random.default_rng(1).bytes(5000)))
    if damage == "flip":
        packed[len(packed) // 2] ^= 0xFF
    else:
        del packed[len(packed) // 2:]
    path = tmp_path / "broken.gz"
    path.write_bytes(packed)
    with pytest.raises(DataError, match=data_error(str(path), "corrupt gzip")):
        idx.read_idx(path)


def test_unreadable_file_becomes_data_error(tmp_path):
    with pytest.raises(DataError, match=data_error("nothing-here", "cannot be read")):
        idx.read_idx(tmp_path / "nothing-here")


@given(st.binary(max_size=64))
def test_parse_idx_never_fails_with_anything_but_data_error(raw):
    try:
        parsed = idx.parse_idx(raw, "fuzz")
    except DataError:
        return
    assert parsed.dtype == np.uint8


@given(st.lists(st.integers(0, 6), min_size=1, max_size=3).filter(lambda dims: len(dims) != 2))
def test_parse_idx_round_trips_any_mnist_shape(dims):
    array = np.full(dims, 7, dtype=np.uint8)
    np.testing.assert_array_equal(idx.parse_idx(idx_bytes(array), "x"), array)


# --- load_mnist on synthetic files -----------------------------------------------------------------

@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot_label", [True, False])
def test_load_mnist_formats_like_the_book(small_dir, small_mnist, normalize, flatten, one_hot_label):
    (x_train, t_train), (x_test, t_test) = load_mnist(normalize, flatten, one_hot_label, data_dir=small_dir)
    for x, t, prefix, count in ((x_train, t_train, "train", TRAIN_COUNT), (x_test, t_test, "t10k", TEST_COUNT)):
        images = idx.parse_idx(small_mnist[f"{prefix}-images-idx3-ubyte"], "images")
        labels = idx.parse_idx(small_mnist[f"{prefix}-labels-idx1-ubyte"], "labels")
        expected_x = images.astype(np.float32) / np.float32(255.0) if normalize else images
        expected_x = expected_x.reshape(count, 784) if flatten else expected_x.reshape(count, 1, 28, 28)
        assert x.dtype == (np.float32 if normalize else np.uint8)
        np.testing.assert_array_equal(x, expected_x)
        if one_hot_label:
            assert t.dtype == np.float32 and t.shape == (count, 10)
            np.testing.assert_array_equal(t.argmax(axis=1), labels)
            np.testing.assert_array_equal(t.sum(axis=1), np.ones(count))
        else:
            assert t.dtype == np.uint8
            np.testing.assert_array_equal(t, labels)
        assert x.flags.writeable and t.flags.writeable


def test_plain_uncompressed_files_are_accepted(tmp_path, small_mnist):
    write_sources(tmp_path, small_mnist, gzipped=False)
    (x_train, _), (x_test, _) = load_mnist(data_dir=tmp_path)
    assert x_train.shape == (TRAIN_COUNT, 784) and x_test.shape == (TEST_COUNT, 784)


def test_data_dir_accepts_a_string(small_dir):
    (x_train, _), _ = load_mnist(data_dir=str(small_dir))
    assert len(x_train) == TRAIN_COUNT


def test_label_out_of_range_is_refused(small_dir, small_mnist):
    labels = idx.parse_idx(small_mnist["train-labels-idx1-ubyte"], "labels").copy()
    labels[2] = 10
    write_sources(small_dir, {"train-labels-idx1-ubyte": idx_bytes(labels)})
    with pytest.raises(DataError, match=data_error("train-labels-idx1-ubyte", "label 10", "0..9")):
        load_mnist(data_dir=small_dir)


def test_images_and_labels_count_mismatch_is_refused(small_dir, small_mnist):
    labels = idx.parse_idx(small_mnist["train-labels-idx1-ubyte"], "labels")
    write_sources(small_dir, {"train-labels-idx1-ubyte": idx_bytes(labels[:-1])})
    with pytest.raises(DataError, match=data_error(f"{TRAIN_COUNT} images", f"{TRAIN_COUNT - 1} labels",
                                                   "train-labels-idx1-ubyte", "train-images-idx3-ubyte")):
        load_mnist(data_dir=small_dir)


def test_count_differing_from_the_canonical_one_is_refused(small_dir, small_mnist):
    subset = {name: idx_bytes(idx.parse_idx(small_mnist[name], name)[:-1])
              for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}
    write_sources(small_dir, subset)
    with pytest.raises(DataError, match=data_error("train-images-idx3-ubyte", f"expected {TRAIN_COUNT}")):
        load_mnist(data_dir=small_dir)


def test_header_count_disagreeing_with_data_names_the_file(small_dir, small_mnist):
    raw = bytearray(small_mnist["t10k-images-idx3-ubyte"])
    raw[4:8] = struct.pack(">I", TEST_COUNT + 1)
    write_sources(small_dir, {"t10k-images-idx3-ubyte": bytes(raw)})
    with pytest.raises(DataError, match=data_error("t10k-images-idx3-ubyte.gz", "truncated", "expected")):
        load_mnist(data_dir=small_dir)


def test_wrong_image_size_is_refused(small_dir):
    write_sources(small_dir, {"t10k-images-idx3-ubyte": idx_bytes(np.zeros((TEST_COUNT, 27, 28), np.uint8))})
    with pytest.raises(DataError, match=data_error("t10k-images-idx3-ubyte", "27x28", "expected 28x28")):
        load_mnist(data_dir=small_dir)


def test_labels_in_place_of_images_are_refused(small_dir, small_mnist):
    write_sources(small_dir, {"t10k-images-idx3-ubyte": small_mnist["t10k-labels-idx1-ubyte"]})
    with pytest.raises(DataError, match=data_error("t10k-images-idx3-ubyte", "holds labels, expected images")):
        load_mnist(data_dir=small_dir)


def test_corrupt_gzip_source_is_refused(small_dir):
    packed = bytearray((small_dir / "train-images-idx3-ubyte.gz").read_bytes())
    packed[len(packed) // 2] ^= 0xFF
    (small_dir / "train-images-idx3-ubyte.gz").write_bytes(packed)
    with pytest.raises(DataError, match=data_error("train-images-idx3-ubyte.gz", "corrupt gzip")):
        load_mnist(data_dir=small_dir)


def test_hash_mismatch_on_a_well_formed_file_is_refused(small_dir, small_mnist):
    images = idx.parse_idx(small_mnist["t10k-images-idx3-ubyte"], "images").copy()
    images[0, 0, 0] ^= 1
    write_sources(small_dir, {"t10k-images-idx3-ubyte": idx_bytes(images)})
    with pytest.raises(DataError, match=data_error("t10k-images-idx3-ubyte.gz", "corrupted or not the canonical MNIST",
                                                   "delete it")):
        load_mnist(data_dir=small_dir)


def test_canonical_table_holds_the_published_facts():
    assert [(spec.name, spec.count, spec.shape) for spec in mnist.FILES] == [
        ("train-images-idx3-ubyte", 60000, (60000, 28, 28)),
        ("train-labels-idx1-ubyte", 60000, (60000,)),
        ("t10k-images-idx3-ubyte", 10000, (10000, 28, 28)),
        ("t10k-labels-idx1-ubyte", 10000, (10000,)),
    ]
    assert all(len(spec.sha256) == 64 for spec in mnist.FILES)


# --- missing files and downloads -------------------------------------------------------------------

@pytest.mark.parametrize("download", [True, False])
def test_missing_files_message_says_where_what_and_how_to_fix(tmp_path, download):
    folder = tmp_path / "empty"
    with pytest.raises(DataError, match=data_error(str(folder), *ALL_NAMES, "--data-dir", "SGDLAB_DATA")) as info:
        load_mnist(data_dir=folder, download=download)
    assert "\n" not in str(info.value)


def test_download_is_not_attempted_when_turned_off(tmp_path, monkeypatch):
    def fail(url, dest):
        pytest.fail("download attempted")

    monkeypatch.setattr(mnist, "_fetch", fail)
    with pytest.raises(DataError, match="turned off"):
        load_mnist(data_dir=tmp_path, download=False)


def serving(raws: dict[str, bytes], calls: list[str], folder: Path, broken_mirror: str, serve_corrupt: bool = False):
    """A fake `_fetch`: the broken mirror fails (or serves damaged data), the others serve `raws` gzipped."""
    def fetch(url, dest):
        calls.append(url)
        name = url.rsplit("/", 1)[-1]
        assert not (folder / name).exists(), "the canonical name must appear only once the file is verified"
        if url.startswith(broken_mirror):
            if not serve_corrupt:
                raise urllib.error.URLError("connection refused")
            dest.write(gzip.compress(b"not mnist"))
            return
        dest.write(gzip.compress(raws[name.removesuffix(".gz")]))

    return fetch


@pytest.mark.parametrize("serve_corrupt", [False, True])
def test_download_falls_back_to_the_next_mirror(tmp_path, monkeypatch, small_mnist, serve_corrupt):
    folder = tmp_path / "fresh" / "mnist"
    calls = []
    monkeypatch.setattr(mnist, "_fetch", serving(small_mnist, calls, folder, "https://mirror-a.invalid/", serve_corrupt))
    (x_train, _), _ = load_mnist(data_dir=folder)
    assert len(x_train) == TRAIN_COUNT
    assert calls == [f"{mirror}{name}.gz" for name in ALL_NAMES
                     for mirror in ("https://mirror-a.invalid/", "https://mirror-b.invalid/")]
    assert sorted(path.name for path in folder.iterdir()) == sorted([f"{name}.gz" for name in ALL_NAMES]
                                                                    + [mnist.CACHE_NAME])


def test_only_missing_files_are_downloaded(small_dir, monkeypatch, small_mnist):
    (small_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    calls = []
    monkeypatch.setattr(mnist, "_fetch", serving(small_mnist, calls, small_dir, "https://mirror-a.invalid/"))
    load_mnist(data_dir=small_dir)
    assert [url.rsplit("/", 1)[-1] for url in calls] == ["t10k-labels-idx1-ubyte.gz"] * 2


def test_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    def half_then_fail(url, dest):
        dest.write(b"\x1f\x8b partial")
        raise TimeoutError("timed out")

    monkeypatch.setattr(mnist, "_fetch", half_then_fail)
    with pytest.raises(DataError, match=data_error("download failed", "timed out")):
        load_mnist(data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_download_names_every_mirrors_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ["https://mirror-a.invalid/", "https://mirror-b.invalid/"])

    def fail(url, dest):
        raise OSError("refused" if "mirror-a" in url else "timed out")

    monkeypatch.setattr(mnist, "_fetch", fail)
    with pytest.raises(DataError, match=data_error("mirror-a.invalid: refused; mirror-b.invalid: timed out")):
        load_mnist(data_dir=tmp_path)


def test_mirrors_failing_alike_are_named_once(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ["https://mirror-a.invalid/", "https://mirror-b.invalid/"])

    def offline(url, dest):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(mnist, "_fetch", offline)
    with pytest.raises(DataError) as raised:
        load_mnist(data_dir=tmp_path / "mistyped" / "deeper")
    assert str(raised.value).count("Name or service not known") == 1
    assert "mirror-a.invalid, mirror-b.invalid: <urlopen error" in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # the folders made for the download are not left behind


# --- where the data folder is ----------------------------------------------------------------------

def test_sgdlab_data_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("SGDLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist.default_data_dir() == tmp_path / "data"


def test_xdg_cache_home_is_next(monkeypatch, tmp_path):
    monkeypatch.delenv("SGDLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist.default_data_dir() == tmp_path / "xdg" / "sgdlab" / "mnist"


@pytest.mark.parametrize("xdg", [None, "", "relative/cache"])
def test_home_cache_is_the_fallback(monkeypatch, tmp_path, xdg):
    monkeypatch.delenv("SGDLAB_DATA", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mnist.default_data_dir() == tmp_path / ".cache" / "sgdlab" / "mnist"


def test_load_mnist_uses_the_default_folder(monkeypatch, small_dir):
    monkeypatch.setenv("SGDLAB_DATA", str(small_dir))
    (x_train, _), _ = load_mnist()
    assert len(x_train) == TRAIN_COUNT


# --- the decoded cache -----------------------------------------------------------------------------

def forbid_reading_sources(monkeypatch):
    def fail(path, limit):
        pytest.fail(f"{path} was read although the decoded cache is current")

    monkeypatch.setattr(mnist, "read_idx_bytes", fail)


def test_second_load_uses_the_decoded_cache(small_dir, monkeypatch, new_process):
    first = load_mnist(data_dir=small_dir, normalize=False)
    assert (small_dir / mnist.CACHE_NAME).is_file()
    new_process()
    forbid_reading_sources(monkeypatch)
    second = load_mnist(data_dir=small_dir, normalize=False)
    for split_before, split_after in zip(first, second):
        for before, after in zip(split_before, split_after):
            np.testing.assert_array_equal(before, after)


def test_cache_is_ignored_when_a_source_changes(small_dir, small_mnist):
    load_mnist(data_dir=small_dir)
    labels = idx.parse_idx(small_mnist["train-labels-idx1-ubyte"], "labels").copy()
    labels[0] = 10
    write_sources(small_dir, {"train-labels-idx1-ubyte": idx_bytes(labels)})
    with pytest.raises(DataError, match="label 10"):
        load_mnist(data_dir=small_dir)


def test_cache_is_rebuilt_after_a_source_is_touched(small_dir, monkeypatch, new_process):
    load_mnist(data_dir=small_dir)
    source = small_dir / "t10k-images-idx3-ubyte.gz"
    touched = source.stat().st_mtime_ns + 10**9
    os.utime(source, ns=(touched, touched))
    read = []
    monkeypatch.setattr(mnist, "read_idx_bytes",
                        lambda path, limit: read.append(path) or idx.read_idx_bytes(path, limit))
    load_mnist(data_dir=small_dir)
    assert len(read) == 4
    new_process()
    forbid_reading_sources(monkeypatch)
    load_mnist(data_dir=small_dir)


def test_damaged_cache_is_ignored_and_rebuilt(small_dir, monkeypatch, new_process):
    load_mnist(data_dir=small_dir)
    cache = small_dir / mnist.CACHE_NAME
    cache.write_bytes(b"PK\x03\x04 damaged")
    (x_train, _), _ = load_mnist(data_dir=small_dir)
    assert len(x_train) == TRAIN_COUNT
    new_process()
    forbid_reading_sources(monkeypatch)
    load_mnist(data_dir=small_dir)


# --- files verified once in a process --------------------------------------------------------------

def forbid_reading_the_cache(monkeypatch):
    def fail(path, stamp, hashed=False):
        pytest.fail(f"{path} was read although this process keeps its arrays")

    monkeypatch.setattr(mnist, "_read_cache", fail)


def forbid_hashing(monkeypatch):
    def fail(array, spec):
        pytest.fail(f"{spec.key} was hashed again although this process verified its file already")

    monkeypatch.setattr(mnist, "_is_canonical", fail)


def count_reads(monkeypatch):
    """The sources and caches read from now on, as a list that grows."""
    read = []
    read_cache = mnist._read_cache
    monkeypatch.setattr(mnist, "read_idx_bytes", lambda path, limit: read.append(path) or idx.read_idx_bytes(path, limit))
    monkeypatch.setattr(mnist, "_read_cache", lambda path, stamp, **how: read.append(path) or read_cache(path, stamp, **how))
    return read


def assert_same_data(loaded, expected):
    for split_loaded, split_expected in zip(loaded, expected, strict=True):
        for array, before in zip(split_loaded, split_expected, strict=True):
            np.testing.assert_array_equal(array, before)


def test_a_cache_verified_in_this_process_is_read_again_unhashed_then_kept(small_dir, monkeypatch):
    load_mnist(data_dir=small_dir)  # verifies the sources and writes the cache
    first = load_mnist(data_dir=small_dir, normalize=False)  # verifies the cache
    assert mnist._verified.arrays == {}  # a command that loads once holds no second copy
    forbid_reading_sources(monkeypatch)
    forbid_hashing(monkeypatch)
    assert_same_data(load_mnist(data_dir=small_dir, normalize=False), first)  # read, not hashed, and kept
    forbid_reading_the_cache(monkeypatch)
    assert_same_data(load_mnist(data_dir=small_dir, normalize=False), first)


def test_sources_verified_in_this_process_are_kept_from_their_second_load(small_dir, monkeypatch):
    small_dir.chmod(0o555)  # no cache
    try:
        first = load_mnist(data_dir=small_dir, normalize=False)
        load_mnist(data_dir=small_dir)
        forbid_reading_sources(monkeypatch)
        forbid_reading_the_cache(monkeypatch)
        again = load_mnist(data_dir=small_dir, normalize=False)
    finally:
        small_dir.chmod(0o755)
    assert_same_data(again, first)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot_label", [True, False])
def test_callers_get_arrays_of_their_own(small_dir, normalize, flatten, one_hot_label):
    load_mnist(data_dir=small_dir)
    load_mnist(data_dir=small_dir)  # the cache, verified: from the next load on, its arrays are kept
    expected = [array.copy() for split in load_mnist(normalize, flatten, one_hot_label, data_dir=small_dir)
                for array in split]
    for split in load_mnist(normalize, flatten, one_hot_label, data_dir=small_dir):
        for array in split:
            array[...] = 7  # the book's code edits what it loads in place (x /= 255.0)
    again = [array for split in load_mnist(normalize, flatten, one_hot_label, data_dir=small_dir) for array in split]
    for array, before in zip(again, expected, strict=True):
        np.testing.assert_array_equal(array, before)


@pytest.mark.parametrize("flatten", [True, False])
def test_callers_that_only_read_share_the_kept_arrays_which_nothing_can_change(small_dir, flatten):
    load_mnist(data_dir=small_dir)
    load_mnist(data_dir=small_dir)  # kept from here on
    own = [array for split in load_mnist(normalize=False, flatten=flatten, data_dir=small_dir) for array in split]
    shared, again = ([array for split in load_mnist(normalize=False, flatten=flatten, copy=False, data_dir=small_dir)
                      for array in split] for _ in range(2))
    for mine, one, other in zip(own, shared, again, strict=True):
        assert one.base is not None and np.shares_memory(one, other) and not np.shares_memory(mine, one)  # no copy
        np.testing.assert_array_equal(one, mine)
        assert mine.flags.writeable and not one.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            one[...] = 7
    floats = load_mnist(normalize=True, one_hot_label=True, copy=False, data_dir=small_dir)
    assert all(array.flags.writeable for split in floats for array in split)  # converted: made for the caller


def test_a_cache_edited_after_it_was_verified_is_checked_again(small_dir, monkeypatch):
    for _ in range(3):  # written, verified, kept
        load_mnist(data_dir=small_dir)
    assert mnist._verified.arrays
    cache = small_dir / mnist.CACHE_NAME
    before = cache.stat()
    with np.load(cache) as archive:
        arrays = dict(archive)
    arrays["train_images"][0, 0, 0] ^= 1  # one pixel, same size; the modification time put back
    with open(cache, "r+b") as handle:  # in place: the same file, as an editor writing over it would leave it
        np.savez(handle, **arrays)
    os.utime(cache, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (cache.stat().st_ino, cache.stat().st_size, cache.stat().st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    read = count_reads(monkeypatch)
    (x_train, _), _ = load_mnist(data_dir=small_dir, normalize=False)
    assert read[0] == cache and len(read) == 5  # the edited cache read and refused, then the four sources
    assert x_train[0, 0] != arrays["train_images"][0, 0, 0]


def test_a_source_edited_after_it_was_verified_is_checked_again_and_refused(small_dir, small_mnist):
    small_dir.chmod(0o555)  # no cache: every load is of the sources
    try:
        load_mnist(data_dir=small_dir)
        load_mnist(data_dir=small_dir)  # kept
        assert mnist._verified.arrays
        labels = idx.parse_idx(small_mnist["train-labels-idx1-ubyte"], "labels").copy()
        labels[0] = 10
        source = small_dir / "train-labels-idx1-ubyte.gz"
        before = source.stat()
        edited = gzip.compress(idx_bytes(labels), mtime=0)
        assert len(edited) == before.st_size
        with open(source, "r+b") as handle:  # the same file, its size and modification time kept
            handle.write(edited)
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
        with pytest.raises(DataError, match="label 10"):
            load_mnist(data_dir=small_dir)
    finally:
        small_dir.chmod(0o755)


def test_read_only_folder_loads_without_writing_a_cache(small_dir):
    small_dir.chmod(0o555)
    try:
        (x_train, _), _ = load_mnist(data_dir=small_dir)
    finally:
        small_dir.chmod(0o755)
    assert len(x_train) == TRAIN_COUNT
    assert sorted(path.name for path in small_dir.iterdir()) == sorted(f"{name}.gz" for name in ALL_NAMES)


def test_failing_cache_write_is_silent(small_dir, monkeypatch):
    def refuse(path, mode="wb"):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mnist, "atomic_write", refuse)
    (x_train, _), _ = load_mnist(data_dir=small_dir)
    assert len(x_train) == TRAIN_COUNT
    assert not (small_dir / mnist.CACHE_NAME).exists()


# --- the real MNIST --------------------------------------------------------------------------------

TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real_copy(mnist_dir, tmp_path_factory):
    """Links to the real files in a writable folder, so the decoded cache makes repeat loads fast."""
    folder = tmp_path_factory.mktemp("real-mnist")
    for source in mnist_dir.iterdir():
        if source.name.removesuffix(".gz") in ALL_NAMES:
            (folder / source.name).symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def real_uint8(real_copy):
    return load_mnist(normalize=False, flatten=False, data_dir=real_copy, download=False)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot_label", [True, False])
def test_real_shapes_dtypes_and_ranges(real_copy, real_uint8, normalize, flatten, one_hot_label):
    loaded = load_mnist(normalize, flatten, one_hot_label, data_dir=real_copy, download=False)
    for (x, t), (raw_x, raw_t), count in zip(loaded, real_uint8, (60000, 10000)):
        assert x.shape == ((count, 784) if flatten else (count, 1, 28, 28))
        assert x.dtype == (np.float32 if normalize else np.uint8)
        assert (x.min(), x.max()) == ((0.0, 1.0) if normalize else (0, 255))
        if one_hot_label:
            assert t.shape == (count, 10) and t.dtype == np.float32
            np.testing.assert_array_equal(t.argmax(axis=1), raw_t)
            np.testing.assert_array_equal(t.sum(axis=1), np.ones(count, dtype=np.float32))
        else:
            assert t.shape == (count,) and t.dtype == np.uint8
            np.testing.assert_array_equal(t, raw_t)


def test_real_normalized_pixels_are_exactly_the_books(real_copy, real_uint8):
    (x_train, _), _ = load_mnist(data_dir=real_copy, download=False)
    expected = real_uint8[0][0].reshape(60000, 784).astype(np.float32)
    expected /= 255.0
    assert np.array_equal(x_train, expected)  # exact; assert_array_equal takes seconds on 47M values


def test_real_label_counts(real_uint8):
    (_, t_train), (_, t_test) = real_uint8
    assert np.bincount(t_train, minlength=10).tolist() == TRAIN_CLASS_COUNTS
    assert np.bincount(t_test, minlength=10).tolist() == TEST_CLASS_COUNTS
    assert sum(TRAIN_CLASS_COUNTS) == 60000 and sum(TEST_CLASS_COUNTS) == 10000


def test_real_train_and_test_are_distinct(real_uint8):
    (x_train, _), (x_test, _) = real_uint8
    assert not np.array_equal(x_train[:10000], x_test)
    train_rows = {row.tobytes() for row in x_train.reshape(60000, -1)[:1000]}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(10000, -1))


def test_real_cached_load_equals_the_idx_files(mnist_dir, real_copy, real_uint8):
    assert (real_copy / mnist.CACHE_NAME).is_file()
    (x_train, t_train), (x_test, t_test) = real_uint8
    for name, loaded in zip(ALL_NAMES, (x_train, t_train, x_test, t_test)):
        path = mnist_dir / f"{name}.gz" if (mnist_dir / f"{name}.gz").is_file() else mnist_dir / name
        decoded = idx.read_idx(path)
        assert np.array_equal(decoded, loaded.reshape(decoded.shape)), name


# --- hostile files: bombs, oversized downloads, edited caches ----------------------------------------

def peak_memory(function, *args, **kwargs):
    """What `function` allocated at most (tracemalloc sees NumPy's allocations too), and what it raised."""
    import tracemalloc

    tracemalloc.start()
    try:
        function(*args, **kwargs)
        raised = None
    except Exception as exc:  # noqa: BLE001 - returned for the test to judge
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def zeros_gzip(size: int, member: int = 16 << 20) -> bytes:
    """A gzip file of `size` zero bytes made of concatenated members (quick to build however large)."""
    return gzip.compress(bytes(member), compresslevel=9) * (size // member)


def test_a_gzip_bomb_in_the_data_folder_is_refused_without_expanding_it(small_dir):
    # 4 KB, as long as the small canonical file may be gzipped, expanding to 4 MB (a bomb's start)
    (small_dir / "train-images-idx3-ubyte.gz").write_bytes(zeros_gzip(1 << 30)[:4 << 10])
    peak, raised = peak_memory(load_mnist, data_dir=small_dir)
    assert isinstance(raised, DataError)
    assert re.search(data_error("train-images-idx3-ubyte.gz", "decompresses to more than"), str(raised))
    assert peak < 3 << 20
    (small_dir / "train-images-idx3-ubyte.gz").write_bytes(zeros_gzip(1 << 30))  # 1 GB of zeros in 1 MB
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: \d+ bytes, more than 5.64 KB, the most such a file can have"):
        load_mnist(data_dir=small_dir)


def test_an_oversized_plain_file_in_the_data_folder_is_refused_unread(small_dir):
    (small_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with open(small_dir / "t10k-labels-idx1-ubyte", "wb") as handle:
        handle.truncate(16 << 30)  # 16 GB, sparse: nothing is written
    peak, raised = peak_memory(load_mnist, data_dir=small_dir)
    assert isinstance(raised, DataError) and "t10k-labels-idx1-ubyte: 17179869184 bytes, more than" in str(raised)
    assert peak < 8 << 20


# The .gz files as yann.lecun.com published them; mirrors may recompress (this machine's copy is smaller).
PUBLISHED_GZ_SIZES = {"train-images-idx3-ubyte": 9912422, "train-labels-idx1-ubyte": 28881,
                      "t10k-images-idx3-ubyte": 1648877, "t10k-labels-idx1-ubyte": 4542}


def test_the_size_limits_take_the_real_files(mnist_dir):
    for spec in mnist.FILES:
        path = mnist_dir / spec.gz_name
        raw = idx.read_idx_bytes(path, spec.idx_size)
        assert len(raw) == spec.idx_size
        assert path.stat().st_size < spec.download_limit and PUBLISHED_GZ_SIZES[spec.name] < spec.download_limit


class FakeResponse:
    """What urlopen returns, serving `size` bytes of `fill` in chunks and counting what was read."""

    def __init__(self, size, fill=b"\x1f\x8b", announce=False):
        self.size, self.fill, self.served = size, fill, 0
        self.headers = {"Content-Length": str(size)} if announce else {}

    def read(self, amount):
        amount = min(amount, self.size - self.served)
        self.served += amount
        return (self.fill * amount)[:amount]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


REAL_FETCH = mnist._fetch


@pytest.mark.parametrize("announce", [False, True])
def test_a_download_longer_than_the_file_can_be_is_stopped_and_its_new_folder_removed(tmp_path, monkeypatch,
                                                                                      small_mnist, announce):
    monkeypatch.setattr(mnist, "_fetch", REAL_FETCH)
    responses = []

    def urlopen(request, timeout):
        responses.append(FakeResponse(1 << 30, announce=announce))  # 1 GB for a file of a few kilobytes
        return responses[-1]

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    folder = tmp_path / "new" / "mnist"
    with pytest.raises(DataError, match="(sends|announces) .*more than the .* bytes the file can have"):
        load_mnist(data_dir=folder)
    limit = mnist.FILES[0].download_limit
    assert len(responses) == 2 and all(response.served <= limit + (1 << 16) for response in responses)
    assert not (tmp_path / "new").exists()


def serve(files: dict[str, bytes]):
    """A web server on 127.0.0.1 serving `files` by name, in a thread; returns (server, its base URL)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path.rsplit("/", 1)[-1])
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            if body is not None:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def test_a_mirror_serving_a_gzip_bomb_is_refused_in_bounded_memory(tmp_path, monkeypatch, small_mnist):
    monkeypatch.setattr(mnist, "_fetch", REAL_FETCH)
    bomb = zeros_gzip(1 << 30)[:4 << 10]  # within the download limit: the first 4 KB of a 1 GB bomb expand to 4 MB
    server, url = serve({spec.gz_name: bomb for spec in mnist.FILES})
    monkeypatch.setattr(mnist, "MIRRORS", [url])
    folder = tmp_path / "fresh"
    try:
        peak, raised = peak_memory(load_mnist, data_dir=folder)
    finally:
        server.shutdown()
    assert isinstance(raised, DataError) and "decompresses to more than" in str(raised)
    assert peak < 3 << 20
    assert not folder.exists()


def test_a_download_interrupted_by_ctrl_c_leaves_no_new_folder(tmp_path, monkeypatch):
    def interrupted(url, dest):
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist, "_fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_mnist(data_dir=tmp_path / "new" / "mnist")
    assert list(tmp_path.iterdir()) == []


def edit_cache(folder: Path, **arrays) -> None:
    """Change arrays of the decoded cache and keep its stamp, as someone editing it would."""
    cache = folder / mnist.CACHE_NAME
    with np.load(cache) as archive:
        contents = dict(archive)
    contents.update(arrays)
    np.savez(cache, **contents)


def test_a_cache_edited_with_its_stamp_kept_is_never_used(small_dir, small_mnist):
    load_mnist(data_dir=small_dir)
    labels = idx.parse_idx(small_mnist["train-labels-idx1-ubyte"], "labels")
    edit_cache(small_dir, train_labels=(labels + 1) % 10)
    (_, t_train), _ = load_mnist(data_dir=small_dir)
    np.testing.assert_array_equal(t_train, labels)


def test_a_cache_holding_a_label_out_of_range_is_rebuilt(small_dir, small_mnist):
    load_mnist(data_dir=small_dir)
    labels = idx.parse_idx(small_mnist["t10k-labels-idx1-ubyte"], "labels").copy()
    edit_cache(small_dir, test_labels=np.full_like(labels, 200))
    _, (_, t_test) = load_mnist(data_dir=small_dir, one_hot_label=True)
    np.testing.assert_array_equal(t_test.argmax(axis=1), labels)


def test_the_cache_of_another_data_set_is_not_used(small_dir, small_mnist):
    load_mnist(data_dir=small_dir, normalize=False)
    images = idx.parse_idx(small_mnist["train-images-idx3-ubyte"], "images")
    edit_cache(small_dir, train_images=255 - images)  # same shapes and stamp, other pictures
    (x_train, _), _ = load_mnist(data_dir=small_dir, normalize=False)
    np.testing.assert_array_equal(x_train, images.reshape(len(images), -1))


@pytest.mark.parametrize("replacement", [np.array([{"evil": 1}], dtype=object), np.zeros((2**20, 28, 28), np.uint8)])
def test_a_cache_with_pickles_or_arrays_of_other_shapes_is_rebuilt(small_dir, small_mnist, replacement):
    load_mnist(data_dir=small_dir)
    edit_cache(small_dir, test_images=replacement)
    _, (x_test, _) = load_mnist(data_dir=small_dir, normalize=False)
    assert x_test.shape == (TEST_COUNT, 784)


def test_a_mirror_announcing_a_length_that_is_no_number_still_serves(tmp_path, monkeypatch, small_mnist):
    monkeypatch.setattr(mnist, "_fetch", REAL_FETCH)

    def urlopen(request, timeout):
        body = gzip.compress(small_mnist[request.full_url.rsplit("/", 1)[-1].removesuffix(".gz")])
        response = FakeResponse(len(body))
        response.read = io.BytesIO(body).read
        response.headers = {"Content-Length": "a lot"}
        return response

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    (x_train, _), _ = load_mnist(data_dir=tmp_path / "fresh")
    assert len(x_train) == TRAIN_COUNT
