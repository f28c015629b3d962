"""Reader for IDX, the simple binary format MNIST is distributed in.

An IDX file is big-endian: a 4-byte magic number (two zero bytes, a type code,
the number of dimensions), one 4-byte size per dimension, then the values in
C order. MNIST uses only unsigned bytes (type code 0x08): 0x00000801 for the
1-D label files and 0x00000803 for the 3-D image files, so those are the only
two magic numbers accepted here.
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803
_MAGIC_SIZE = 4
_DIM_SIZE = 4
_FIX = "replace it with an intact copy"


def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzipped or plain IDX file into a uint8 array shaped as its header says."""
    path = Path(path)
    return parse_idx(read_idx_bytes(path), str(path))


def read_idx_bytes(path: str | Path) -> bytes:
    """The file's IDX bytes, gunzipped if the file starts with the gzip magic.

    The content decides, not the name: a file called `.gz` that was already
    decompressed (some browsers do that) still reads.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); check that it exists and is readable") from exc
    return decompress_if_gzip(data, str(path))


def decompress_if_gzip(data: bytes, name: str) -> bytes:
    """Gunzip `data` when it starts with the gzip magic; a damaged stream becomes a DataError."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: corrupt gzip stream ({exc}); {_FIX}") from exc


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
