"""Atomic file writes (a reader sees the old file or the new one, never half of one), and run files read back."""

import contextlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from .errors import SgdlabError

PART_SUFFIX = ".part"  # a temporary file's: `.NAME.<random>.part` beside the file it becomes
MAX_JSON_BYTES = 256 << 20  # a history of 10 million iterations at ~25 characters a loss, with room to spare


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside `path`, yield it, and rename it over `path` on success.

    On any exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PART_SUFFIX)
    try:
        os.chmod(tmp_name, _default_file_mode())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_text_atomic(path, text):
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def read_json_object(path, kind):
    """The JSON object in `path`; a missing, unreadable, oversized or foreign file is an `SgdlabError` naming it
    as a `kind`."""
    try:
        with open(path, encoding="utf-8") as handle:
            # The size first, then a bounded read all the same: a pipe or /dev/zero has no size on disk.
            too_large = os.fstat(handle.fileno()).st_size > MAX_JSON_BYTES
            text = "" if too_large else handle.read(MAX_JSON_BYTES + 1)
        if too_large or len(text) > MAX_JSON_BYTES:
            raise SgdlabError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MB, far more than any {kind} sgdlab "
                              "writes: it is not one; run 'sgdlab train' again")
        values = parse_json(text)
    except FileNotFoundError:
        raise SgdlabError(f"{path} not found: give a run folder written by 'sgdlab train'") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SgdlabError(f"cannot read {path} as a {kind} ({exc}): it may be damaged; run 'sgdlab train' "
                          "again") from None
    if not isinstance(values, dict):
        raise SgdlabError(f"{path} is not a {kind} written by sgdlab")
    return values


def parse_json(text):
    """The value of the JSON `text`, which must be what sgdlab writes: finite numbers only (no NaN or Infinity, no
    number beyond float range such as 1e400) and no nesting deeper than Python's stack; a ValueError says why."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_finite_int)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number sgdlab writes")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {_shortened(text)} is beyond the range of floats")
    return value


def _finite_int(text):
    value = int(text)  # a ValueError beyond 4300 digits
    if abs(value) > sys.float_info.max:
        raise ValueError(f"the number {_shortened(text)} is beyond the range of floats")
    return value


def _shortened(text, length=24):
    return text if len(text) <= length else f"{text[:length - 3]}..."


def _default_file_mode():
    """The permissions a plain `open(path, "w")` would give (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
