"""Reader for IDX, the simple binary format MNIST is distributed in.

An IDX file is big-endian: a 4-byte magic number (two zero bytes, a type code,
the number of dimensions), one 4-byte size per dimension, then the values in
C order. MNIST uses only unsigned bytes (type code 0x08): 0x00000801 for the
1-D label files and 0x00000803 for the 3-D image files, so those are the only
two magic numbers accepted here.
"""

import gzip
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import read_regular_file

GZIP_MAGIC = b"\x1f\x8b"
LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803
_MAGIC_SIZE = 4
_DIM_SIZE = 4
_FIX = "replace it with an intact copy"
_CHUNK_SIZE = 1 << 20
MAX_SIZE = 1 << 26  # bytes an IDX file may have unless the caller knows better: 64 MiB, above MNIST's 47 MB


def read_idx(path: str | Path, limit: int = MAX_SIZE) -> np.ndarray:
    """Read a gzipped or plain IDX file of at most `limit` bytes into a uint8 array shaped as its header says."""
    path = Path(path)
    return parse_idx(read_idx_bytes(path, limit), str(path))


def read_idx_bytes(path: str | Path, limit: int = MAX_SIZE) -> bytes:
    """The file's IDX bytes, gunzipped if the file starts with the gzip magic, refused beyond `limit` bytes.

    The content decides, not the name: a file called `.gz` that was already
    decompressed (some browsers do that) still reads. Neither the file nor
    what it decompresses to is read further than `limit` allows, so a
    decompression bomb is named, never expanded.
    """
    path = Path(path)
    try:
        data = read_regular_file(path, gzip_bound(limit), lambda problem: DataError(f"{path}: {problem}; {_FIX}"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); check that it exists and is readable") from exc
    return decompress_if_gzip(data, str(path), limit)


def decompress_if_gzip(data: bytes, name: str, limit: int = MAX_SIZE) -> bytes:
    """Gunzip `data` when it starts with the gzip magic, at most `limit` bytes; a damaged stream becomes a DataError."""
    if not data.startswith(GZIP_MAGIC):
        if len(data) > limit:
            raise DataError(f"{name}: {len(data)} bytes, more than the {limit} the file can have; {_FIX}")
        return data
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
            while chunk := stream.read(min(_CHUNK_SIZE, limit + 1 - out.tell())):  # a bomb stops past the limit
                out.write(chunk)
                if out.tell() > limit:
                    raise DataError(f"{name}: decompresses to more than {limit} bytes, the size of the file it "
                                    f"should be (a decompression bomb, or another file); {_FIX}")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: corrupt gzip stream ({exc}); {_FIX}") from exc
    return out.getvalue()


def gzip_bound(size: int) -> int:
    """The longest a gzip file of `size` bytes of data can be: deflate's worst case (zlib's `deflateBound`), the
    gzip header and trailer, and room for a file name in the header."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13 + 18 + 1024


def header_bytes(shape: tuple[int, ...]) -> bytes:
    """The IDX header of an array of uint8 of `shape`: what precedes its values in the file."""
    return struct.pack(f">I{len(shape)}I", 0x0800 | len(shape), *shape)


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Decode decompressed IDX bytes into a read-only uint8 array that shares `raw`'s memory.

    `name` only labels error messages. The byte count must match the header
    exactly, so a truncated file and one with bytes appended are both refused.
    """
    magic = _read_magic(raw, name)
    ndim = magic & 0xFF
    header_size = _MAGIC_SIZE + _DIM_SIZE * ndim
    if len(raw) < header_size:
        raise DataError(f"{name}: truncated header: expected at least {header_size} bytes, found {len(raw)}; {_FIX}")
    dims = struct.unpack_from(f">{ndim}I", raw, _MAGIC_SIZE)
    _check_size(len(raw), header_size + math.prod(dims), name)
    return np.frombuffer(raw, dtype=np.uint8, count=math.prod(dims), offset=header_size).reshape(dims)


def _read_magic(raw: bytes, name: str) -> int:
    """The magic number, which must be one of MNIST's two (uint8 labels or uint8 images)."""
    if len(raw) < _MAGIC_SIZE:
        raise DataError(f"{name}: truncated: expected at least {_MAGIC_SIZE} bytes, found {len(raw)}; {_FIX}")
    magic = int.from_bytes(raw[:_MAGIC_SIZE], "big")
    if magic not in (LABELS_MAGIC, IMAGES_MAGIC):
        raise DataError(
            f"{name}: not an MNIST IDX file: magic number 0x{magic:08x}, expected 0x{LABELS_MAGIC:08x} (labels) "
            f"or 0x{IMAGES_MAGIC:08x} (images); {_FIX}"
        )
    return magic


def _check_size(actual: int, expected: int, name: str) -> None:
    """Refuse a byte count that disagrees with the header's dimensions, saying by how much."""
    if actual < expected:
        raise DataError(f"{name}: truncated: expected {expected} bytes, found {actual}; {_FIX}")
    if actual > expected:
        raise DataError(
            f"{name}: {actual - expected} extra bytes after the data: expected {expected} bytes, found {actual}; {_FIX}"
        )
