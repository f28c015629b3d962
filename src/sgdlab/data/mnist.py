"""MNIST as the book loads it: `load_mnist(normalize, flatten, one_hot_label)`.

The four canonical files are found in a data folder (downloaded there from
public mirrors when missing), checked structurally and against their published
SHA-256, and decoded. The decoded uint8 arrays are then kept in
`mnist-decoded.npz` beside them, so later loads skip gunzip (each array is
hashed again as it is read from there: the cache gives canonical MNIST or is
rebuilt). Within a process, files verified once are not read again while
they stay the same files (`_VerifiedFiles`). No file is read, decompressed or
downloaded beyond the size the canonical one has.
"""

import contextlib
import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import numpy as np
from tqdm import tqdm

from ..errors import DataError
from ..fileio import atomic_write
from ..npzfile import NpzFile
from .idx import decompress_if_gzip, gzip_bound, header_bytes, parse_idx, read_idx_bytes

logger = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28)
IMAGE_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]  # 784: the length of a flattened image
SAMPLE_SHAPE = (1, *IMAGE_SHAPE)  # one image as a network takes it, (channels, height, width): a dense net its 784
NUM_CLASSES = 10
CACHE_NAME = "mnist-decoded.npz"
_CACHE_FORMAT = "sgdlab-mnist-decoded-v1"
_REDOWNLOAD = "delete it so it is downloaded again, or replace it with the canonical file"

# Tried in order; each serves the four files as NAME.gz.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
DOWNLOAD_TIMEOUT = 30  # seconds without data before a mirror counts as failed
_CHUNK_SIZE = 1 << 16


def mnist_mismatch(input_shape, output_size):
    """Why a network of samples `input_shape` and `output_size` outputs cannot read MNIST (a phrase such as "takes
    images of shape (4, 14, 14), but MNIST images are (1, 28, 28) ..."), or None if it can: it takes the 784
    pixels as a row or as one (1, 28, 28) image, and tells the ten classes."""
    input_shape = tuple(input_shape)
    if math.prod(input_shape) != IMAGE_PIXELS:
        return f"takes {math.prod(input_shape)} inputs per image, but MNIST images have {IMAGE_PIXELS} pixels"
    if input_shape not in ((IMAGE_PIXELS,), SAMPLE_SHAPE):
        return (f"takes images of shape {input_shape}, but MNIST images are {SAMPLE_SHAPE} (one channel of 28x28 "
                "pixels)")
    if output_size != NUM_CLASSES:
        return f"gives {output_size} outputs, but MNIST has {NUM_CLASSES} classes"
    return None


@dataclass(frozen=True)
class MnistFile:
    """One canonical MNIST file: where it belongs and what it must contain."""

    split: str  # "train" or "test"
    kind: str  # "images" or "labels"
    name: str  # the canonical un-gzipped name; stored as NAME.gz
    sha256: str  # of the decompressed bytes, so NAME and NAME.gz share it
    count: int

    @property
    def key(self) -> str:
        """The array's name in the decoded cache, e.g. `train_images`."""
        return f"{self.split}_{self.kind}"

    @property
    def gz_name(self) -> str:
        return f"{self.name}.gz"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *IMAGE_SHAPE) if self.kind == "images" else (self.count,)

    @property
    def idx_size(self) -> int:
        """The decompressed file's size: its header and its values. Nothing longer is read."""
        return len(header_bytes(self.shape)) + math.prod(self.shape)

    @property
    def download_limit(self) -> int:
        """The most a mirror may send for it: the file gzipped at worst (canonical: a fifth of that), or plain."""
        return gzip_bound(self.idx_size)

    def check_sha256(self, raw: bytes, source: str, fix: str) -> None:
        """Refuse `raw`, the decompressed bytes read from `source`, unless it is this canonical file."""
        actual = hashlib.sha256(raw).hexdigest()
        if actual != self.sha256:
            raise DataError(f"{source}: corrupted or not the canonical MNIST file {self.name} (SHA-256 of its "
                            f"decompressed data is {actual}, expected {self.sha256}); {fix}")


FILES = (
    MnistFile("train", "images", "train-images-idx3-ubyte",
              "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 60000),
    MnistFile("train", "labels", "train-labels-idx1-ubyte",
              "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60000),
    MnistFile("test", "images", "t10k-images-idx3-ubyte",
              "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 10000),
    MnistFile("test", "labels", "t10k-labels-idx1-ubyte",
              "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10000),
)


class _DownloadFailed(Exception):
    """Every mirror failed for one file; the message says how each one failed."""


def default_data_dir() -> Path:
    """`$SGDLAB_DATA`, else `$XDG_CACHE_HOME/sgdlab/mnist`, else `~/.cache/sgdlab/mnist`."""
    override = os.environ.get("SGDLAB_DATA")
    if override:
        return Path(override).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = Path(cache_home) if cache_home and os.path.isabs(cache_home) else Path.home() / ".cache"
    return base / "sgdlab" / "mnist"


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    data_dir: str | Path | None = None,
    download: bool = True,
    copy: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return `(x_train, t_train), (x_test, t_test)` with the book's conventions.

    normalize: float32 pixels in [0, 1] (else uint8 0..255).
    flatten: images shaped (N, 784) (else (N, 1, 28, 28)).
    one_hot_label: labels as float32 (N, 10) one-hot rows (else uint8 digits).
    data_dir: the folder holding the files (default: `default_data_dir()`).
    download: fetch missing files from `MIRRORS`; without it they raise DataError.
    copy: arrays of the caller's own, free to change. With `copy=False`, uint8 pixels and digit labels may be
      the read-only arrays this process keeps for later loads: no copy of 55 MB for a caller that only reads
      them, as sgdlab's commands and runs do.
    """
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    file_in_the_way = next((path for path in (folder, *folder.parents) if path.exists() and not path.is_dir()), None)
    if file_in_the_way is not None:
        raise DataError(f"{file_in_the_way} is a file, not a folder: the MNIST files need a folder (point "
                        "--data-dir or SGDLAB_DATA at the folder that holds them, or at one to download them into)")
    arrays = _decoded_arrays(folder, download)
    train = (_format_images(arrays["train_images"], normalize, flatten, copy),
             _format_labels(arrays["train_labels"], one_hot_label, copy))
    test = (_format_images(arrays["test_images"], normalize, flatten, copy),
            _format_labels(arrays["test_labels"], one_hot_label, copy))
    return train, test


def _decoded_arrays(folder: Path, download: bool) -> dict[str, np.ndarray]:
    """The four uint8 arrays keyed by `MnistFile.key`: kept from an earlier load of these same files in this
    process (read-only then), else from the cache when it is current, else decoded from the sources."""
    sources = _find_sources(folder, download)
    stamp = _stamp(sources)  # taken before reading, so a file changed meanwhile invalidates the cache
    cache_path = folder / CACHE_NAME
    identities = _identities([*sources.values(), cache_path])  # also taken before reading
    kept = _verified.kept(identities)
    if kept is not None:
        return kept
    arrays = _read_cache(cache_path, stamp, hashed=_verified.knows(identities))
    if arrays is None:
        arrays = _read_verified(sources)
        _write_cache(cache_path, stamp, arrays)
    return _verified.remember(identities, arrays)


class _VerifiedFiles:
    """The files this process has verified already, by their identities, and the arrays of those loaded again.

    Loading MNIST again (a test suite, the page's every run, `evaluate` after `train` in a notebook) then
    costs a `stat` per file rather than a SHA-256 of 55 MB. A file replaced, edited, touched or relinked has
    another identity and is read and checked again, as is every file in a process that has not checked it.
    The arrays are kept from the second load on (a command that loads once holds no second copy), read-only
    (the formats below copy them for each caller that may change them); verified files hold exactly the
    canonical contents, so one set serves every folder holding them.
    """

    def __init__(self):
        self.contents: dict[tuple, tuple[str, ...]] = {}  # identities -> the SHA-256s they were verified against
        self.arrays: dict[tuple[str, ...], dict[str, np.ndarray]] = {}  # SHA-256s -> the arrays kept

    def knows(self, identities: tuple) -> bool:
        return self.contents.get(identities) == _canonical_hashes()

    def kept(self, identities: tuple) -> dict[str, np.ndarray] | None:
        return self.arrays.get(_canonical_hashes()) if self.knows(identities) else None

    def remember(self, identities: tuple, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Note these files as verified; from their second load on, keep `arrays` (and return what is kept)."""
        if not self.knows(identities):
            self.contents[identities] = _canonical_hashes()
            return arrays
        for array in arrays.values():
            array.setflags(write=False)  # no caller can change what later loads return
        return self.arrays.setdefault(_canonical_hashes(), arrays)


def _canonical_hashes() -> tuple[str, ...]:
    return tuple(spec.sha256 for spec in FILES)


_verified = _VerifiedFiles()


def _identities(paths: list[Path]) -> tuple:
    """Each path's file as far as `stat` tells it apart (the file a link points to; None for a missing one)."""
    identities = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            identities.append((str(path), None))
            continue
        identities.append((str(path), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
                           status.st_ctime_ns))
    return tuple(identities)


# --- finding and downloading the files ---------------------------------------------------------

def _find_sources(folder: Path, download: bool) -> dict[str, Path]:
    """Each file's path (NAME.gz preferred, plain NAME accepted), downloading missing ones."""
    missing = [spec for spec in FILES if _existing_source(folder, spec) is None]
    if missing and not download:
        raise _missing_files_error(folder, missing, "downloading is turned off")
    new_folders = [path for path in (folder, *folder.parents) if not path.exists()]  # innermost first
    try:
        for position, spec in enumerate(missing):
            try:
                _download(spec, folder)
            except _DownloadFailed as exc:
                raise _missing_files_error(folder, missing[position:], f"download failed: {exc}") from exc
    except BaseException:
        for path in new_folders:  # a mistyped folder name is not left behind, empty
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return {spec.key: _existing_source(folder, spec) for spec in FILES}


def _existing_source(folder: Path, spec: MnistFile) -> Path | None:
    for candidate in (folder / spec.gz_name, folder / spec.name):
        if candidate.is_file():
            return candidate
    return None


def _missing_files_error(folder: Path, missing: list[MnistFile], reason: str) -> DataError:
    names = ", ".join(spec.gz_name for spec in missing)
    return DataError(
        f"MNIST files missing from {folder}: {names} ({reason}); put them there (gzipped or not), "
        f"or point --data-dir or the SGDLAB_DATA environment variable at a folder that holds them"
    )


def _download(spec: MnistFile, folder: Path) -> None:
    """Fetch `spec` from the first mirror that serves it intact, then rename it into place.

    The file is streamed to a temporary name in `folder` and checked before the
    rename, so a half-downloaded or wrong file never takes the canonical name.
    """
    import http.client  # the network modules load only when a download is needed

    failures = {}  # each different error, with the mirrors that gave it (offline, all give the same one)
    for mirror in MIRRORS:
        url = mirror + spec.gz_name
        try:
            with atomic_write(folder / spec.gz_name, "w+b") as handle:
                _fetch(url, _BoundedWriter(handle, spec.download_limit, url))
                handle.seek(0)
                spec.check_sha256(decompress_if_gzip(handle.read(), url, spec.idx_size), url,
                                  "that mirror serves another file")
            return
        except (OSError, http.client.HTTPException, DataError) as exc:
            logger.info("could not download %s: %s", url, exc)
            failures.setdefault(str(exc), []).append(urlsplit(mirror).hostname)
    reasons = [f"{', '.join(hosts)}: {message}" for message, hosts in failures.items()]
    raise _DownloadFailed("; ".join(reasons) or "no mirrors configured")


class _BoundedWriter:
    """The file a download goes to, refusing to grow past `limit` bytes: a mirror cannot fill the disk."""

    def __init__(self, handle: BinaryIO, limit: int, url: str):
        self.handle, self.limit, self.url, self.written = handle, limit, url, 0

    def write(self, chunk: bytes) -> None:
        self.written += len(chunk)
        if self.written > self.limit:
            raise DataError(f"{self.url} sends more than the {self.limit} bytes the file can have")
        self.handle.write(chunk)


def _fetch(url: str, dest: _BoundedWriter) -> None:
    """Stream `url` into `dest` with a progress bar; network failures raise OSError.

    A response longer than `dest` takes is refused before it is read if it
    says so, else as soon as it is.
    """
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "sgdlab"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
        total = _content_length(response)
        if total is not None and total > dest.limit:
            raise DataError(f"{url} announces {total} bytes, more than the {dest.limit} bytes the file can have")
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=url.rsplit("/", 1)[-1], disable=None, leave=False) as progress:
            while chunk := response.read(_CHUNK_SIZE):
                dest.write(chunk)
                progress.update(len(chunk))


def _content_length(response) -> int | None:
    """The length a response announces, if it announces a valid one."""
    try:
        length = int(response.headers.get("Content-Length") or "")
    except ValueError:
        return None
    return length if length > 0 else None


# --- decoding and verifying ----------------------------------------------------------------------

def _read_verified(sources: dict[str, Path]) -> dict[str, np.ndarray]:
    """Decode all four files, failing with the most specific problem found.

    Structure first (header, size, kind, dimensions, label values), then
    counts (images against labels, then against the canonical count), and the
    SHA-256 last, as it can only say "something differs".
    """
    raw = {spec.key: read_idx_bytes(sources[spec.key], spec.idx_size) for spec in FILES}
    arrays = {spec.key: _decode(raw[spec.key], spec, sources[spec.key]) for spec in FILES}
    for split in ("train", "test"):
        _check_pair(arrays, split, sources)
    for spec in FILES:
        _check_count(arrays[spec.key], spec, sources[spec.key])
    for spec in FILES:
        spec.check_sha256(raw[spec.key], str(sources[spec.key]), _REDOWNLOAD)
    return arrays


def _decode(raw: bytes, spec: MnistFile, path: Path) -> np.ndarray:
    array = parse_idx(raw, str(path))
    expected_ndim = len(spec.shape)
    if array.ndim != expected_ndim:
        found = "labels" if array.ndim == 1 else "images"
        raise DataError(f"{path}: holds {found}, expected {spec.kind}; {_REDOWNLOAD}")
    if spec.kind == "images" and array.shape[1:] != IMAGE_SHAPE:
        height, width = array.shape[1:]
        raise DataError(f"{path}: images are {height}x{width} pixels, expected 28x28; {_REDOWNLOAD}")
    if spec.kind == "labels" and array.size and array.max() >= NUM_CLASSES:
        raise DataError(f"{path}: holds label {array.max()}, expected 0..{NUM_CLASSES - 1}; {_REDOWNLOAD}")
    return array


def _check_pair(arrays: dict[str, np.ndarray], split: str, sources: dict[str, Path]) -> None:
    images_key, labels_key = f"{split}_images", f"{split}_labels"
    num_images, num_labels = len(arrays[images_key]), len(arrays[labels_key])
    if num_images != num_labels:
        raise DataError(
            f"{sources[images_key]} holds {num_images} images but {sources[labels_key]} holds {num_labels} labels; "
            f"one of them is not the canonical MNIST file: delete it so it is downloaded again"
        )


def _check_count(array: np.ndarray, spec: MnistFile, path: Path) -> None:
    if len(array) != spec.count:
        raise DataError(f"{path}: holds {len(array)} {spec.kind}, expected {spec.count}; {_REDOWNLOAD}")


# --- the decoded cache ---------------------------------------------------------------------------

def _stamp(sources: dict[str, Path]) -> np.ndarray:
    """What a cache must have been built from: each source's name, size, mtime and expected hash."""
    entries = [_CACHE_FORMAT]
    for spec in FILES:
        path = sources[spec.key]
        status = path.stat()
        entries.append(f"{path.name} {status.st_size} {status.st_mtime_ns} {spec.sha256}")
    return np.array(entries)


def _read_cache(path: Path, stamp: np.ndarray, hashed: bool = False) -> dict[str, np.ndarray] | None:
    """The cached arrays if the cache exists, matches `stamp` and holds exactly the canonical files; else None.
    `hashed`: this very file was hashed already in this process (`_VerifiedFiles`), so it is not hashed again.

    Missing, damaged, edited or another data set's: it is only a cache, so it
    is rebuilt. The stamp alone would take an edited cache whose stamp was
    kept; each array is hashed as the IDX file it came from (its header
    rebuilt from its shape), which is as fast as reading it (see
    `_is_canonical`) and gives canonical MNIST or nothing.
    """
    if not path.is_file():
        return None
    try:
        with NpzFile(path, DataError, _cache_limit()) as archive:
            if not _cache_layout_fits(archive.headers, stamp):
                return None
            if not np.array_equal(archive.read("stamp", stamp.nbytes), stamp):
                return None
            arrays = {spec.key: archive.read(spec.key, spec.idx_size) for spec in FILES}
    except DataError:
        return None
    return arrays if hashed or all(_is_canonical(arrays[spec.key], spec) for spec in FILES) else None


def _cache_limit() -> int:
    """The largest a decoded cache can be: the four files' values, and a megabyte for its stamp and the zip's own."""
    return sum(spec.idx_size for spec in FILES) + (1 << 20)


def _cache_layout_fits(headers: dict, stamp: np.ndarray) -> bool:
    """Whether the cache holds a stamp like `stamp` and the four arrays as uint8 of their shapes, in C order."""
    if set(headers) != {"stamp", *(spec.key for spec in FILES)}:
        return False
    if headers["stamp"].dtype != stamp.dtype or headers["stamp"].shape != stamp.shape:
        return False
    return all(headers[spec.key].dtype == np.uint8 and headers[spec.key].shape == spec.shape
               and not headers[spec.key].fortran_order for spec in FILES)


def _is_canonical(array: np.ndarray, spec: MnistFile) -> bool:
    """Whether `array` is the canonical file's content: the SHA-256 of its IDX header and values is the file's."""
    digest = hashlib.sha256(header_bytes(array.shape))
    digest.update(array)
    return digest.hexdigest() == spec.sha256


def _write_cache(path: Path, stamp: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
    """Save the decoded arrays beside the sources, unless the folder is read-only."""
    if not _is_writable(path.parent):
        return
    try:
        with atomic_write(path) as handle:
            np.savez(handle, stamp=stamp, **arrays)
    except OSError as exc:
        logger.info("not caching decoded MNIST in %s: %s", path.parent, exc)


def _is_writable(folder: Path) -> bool:
    """Whether `folder` may be written to, honouring its mode bits even for root.

    root may write into a folder marked read-only (such as a shared data
    folder), but an optional cache has no business doing so.
    """
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


# --- the book's output formats -------------------------------------------------------------------

def _format_images(images: np.ndarray, normalize: bool, flatten: bool, copy: bool) -> np.ndarray:
    shape = (len(images), -1) if flatten else (len(images), 1, *IMAGE_SHAPE)
    if normalize:
        # Divide (not multiply by 1/255): identical to the book's `x /= 255.0`, and as fast.
        return np.divide(images, np.float32(255), dtype=np.float32).reshape(shape)
    return _own(images.reshape(shape), copy)


def _format_labels(labels: np.ndarray, one_hot: bool, copy: bool) -> np.ndarray:
    if one_hot:
        return np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    return _own(labels, copy)


def _own(array: np.ndarray, copy: bool) -> np.ndarray:
    """`array`, copied if it is one of the arrays kept (read-only) and the caller asked for arrays of its own."""
    return np.require(array, requirements="W") if copy else array
