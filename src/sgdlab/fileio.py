"""Atomic file writes (a reader sees the old file or the new one, never half of one), and run files read back."""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from .errors import SgdlabError

PART_SUFFIX = ".part"  # a temporary file's: `.NAME.<random>.part` beside the file it becomes


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
    """The JSON object in `path`; a missing, unreadable or foreign file is an `SgdlabError` naming it as a `kind`."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except FileNotFoundError:
        raise SgdlabError(f"{path} not found: give a run folder written by 'sgdlab train'") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SgdlabError(f"cannot read {path} as a {kind} ({exc}): it may be damaged; run 'sgdlab train' "
                          "again") from None
    if not isinstance(values, dict):
        raise SgdlabError(f"{path} is not a {kind} written by sgdlab")
    return values


def _default_file_mode():
    """The permissions a plain `open(path, "w")` would give (mkstemp's are owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
