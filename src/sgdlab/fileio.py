"""Atomic file writes (a reader sees the old file or the new one, never half of one), files read as hostile
(regular files only, never beyond a bound given per kind of file), and locks that follow no link.

Every file sgdlab reads goes through `open_regular_file`: a FIFO would hang
a plain `open`, /dev/zero would fill memory, and a folder or a device is no
file of sgdlab's, whatever link leads there and whatever its name says.
"""

import contextlib
import json
import math
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

from .errors import SgdlabError

PART_SUFFIX = ".part"  # a temporary file's: `.NAME.<random>.part` beside the file it becomes
MAX_JSON_BYTES = 256 << 20  # a history of 10 million iterations at ~25 characters a loss, with room to spare
# Flags of every open of a user's file: a FIFO opens at once (and is then refused) instead of waiting for a writer.
# A lock's open follows no link. Each flag where the system has it (O_BINARY: Windows only; the others: POSIX).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_LOCK_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


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


def open_regular_file(path, limit, refuse=None):
    """`path` opened for reading (binary), once the opened descriptor is known to be a regular file of at most
    `limit` bytes.

    The checks are made on what was opened (fstat), not on the name, so no
    link or race can slip a FIFO, a device (/dev/zero, /dev/urandom), a
    socket or a folder past them; a FIFO is opened without waiting for a
    writer. `refuse(problem)` makes the exception raised for anything else
    (default: an `SgdlabError` naming the file); a missing file raises
    `FileNotFoundError`, as `open` does, for the caller to say what to give.
    """
    refuse = refuse or (lambda problem: SgdlabError(f"{path}: {problem}"))
    try:
        descriptor = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except IsADirectoryError:  # Windows cannot open a folder at all
        raise refuse("a folder, not a file") from None
    except OSError as exc:
        raise refuse(f"cannot be read: {exc.strerror or exc}") from None
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise refuse(f"{_file_kind(found.st_mode)}, not a regular file")
        if found.st_size > limit:
            raise refuse(f"{found.st_size} bytes, more than {size_phrase(limit)}, the most such a file can have")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(path, limit, refuse=None):
    """The bytes of the regular file `path`, at most `limit` of them (see `open_regular_file`): read no further, in
    case the file grows as it is read."""
    refuse = refuse or (lambda problem: SgdlabError(f"{path}: {problem}"))
    with open_regular_file(path, limit, refuse) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise refuse(f"more than {size_phrase(limit)}, the most such a file can have")
    return data


_LOCK_ATTEMPTS = 3  # a lock file removed by its holder as it was opened is opened again, this often at most
LOCK_PATIENCE = 0.5  # seconds a lock is waited for before it is said to be held (see `_lock_exclusively`)


@contextlib.contextmanager
def exclusive_lock(path, refuse_held):
    """Hold the lock file `path` while the block runs; `refuse_held()` makes the exception raised if another
    process still holds it after LOCK_PATIENCE seconds. A lock the system drops with its holder, so one left by
    a killed process blocks nothing.

    The file is opened without following a link (a link planted there would
    make the lock create or truncate its target) and must be a regular file;
    it is removed when the block ends. Without `fcntl` (Windows) nothing is
    locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    for _ in range(_LOCK_ATTEMPTS):
        try:
            descriptor = os.open(path, _LOCK_FLAGS, 0o666)
        except OSError as exc:
            link = Path(path).is_symlink()
            raise SgdlabError(f"{path} is a link, not a lock file sgdlab made: remove it" if link else
                              f"cannot open the lock file {path}: {exc.strerror or exc}") from None
        with os.fdopen(descriptor, "rb"):  # closes the descriptor however the block ends
            opened = os.fstat(descriptor)
            if not stat.S_ISREG(opened.st_mode):
                raise SgdlabError(f"{path} is {_file_kind(opened.st_mode)}, not a lock file sgdlab made: remove it")
            try:
                _lock_exclusively(fcntl, descriptor)
            except BlockingIOError:
                raise refuse_held() from None
            if not _names(path, opened):  # its holder removed it between our open and lock: open it anew
                continue
            try:
                yield
            finally:  # a folder made read-only keeps it: harmless, as the lock is the open file's, not the file
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return
    raise refuse_held()


def _lock_exclusively(fcntl, descriptor):
    """Take the open lock file's exclusive lock, waiting LOCK_PATIENCE seconds at most for it: `lock_held` holds
    a shared one for an instant to see whether the file is held (a sweep asks so of its trials' folders as its
    workers start them), and a lock asked in that instant is not held by anyone but the asker."""
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(LOCK_PATIENCE / 50)


def lock_held(path):
    """Whether a process holds the lock file `path` (see `exclusive_lock`) now: a file left by a killed holder is
    not held. Opened without creating it or following a link; without `fcntl` (Windows), whether it exists."""
    try:
        import fcntl
    except ImportError:
        return os.path.lexists(path)
    try:
        descriptor = os.open(path, (_LOCK_FLAGS & ~os.O_CREAT & ~os.O_RDWR) | os.O_RDONLY)
    except OSError:  # none there (or a link: not a lock sgdlab holds)
        return False
    with os.fdopen(descriptor, "rb"):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False  # closing the file lets go of the shared lock just taken


def _names(path, opened):
    """Whether `path` still names the file whose status is `opened`."""
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        return False
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


def size_phrase(size):
    """`size` bytes said shortly: `256 MB`, `4 KB`, `200 bytes`."""
    for unit, shift in (("GB", 30), ("MB", 20), ("KB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.3g} {unit}"
    return f"{size} bytes"


def _file_kind(mode):
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def read_json_object(path, kind):
    """The JSON object in `path`; a missing, unreadable, oversized or foreign file is an `SgdlabError` naming it
    as a `kind`."""
    def refuse(problem):
        return SgdlabError(f"cannot read {path} as a {kind} ({problem}): it is not one sgdlab wrote")

    try:
        data = read_regular_file(path, MAX_JSON_BYTES, refuse)
    except FileNotFoundError:
        raise SgdlabError(f"{path} not found: give a run folder written by 'sgdlab train'") from None
    try:
        values = parse_json(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SgdlabError(f"cannot read {path} as a {kind} ({exc}): it may be damaged; run 'sgdlab train' "
                          "again") from None
    if not isinstance(values, dict):
        raise SgdlabError(f"{path} is not a {kind} written by sgdlab")
    return values


def read_json_as(path, kind, build, consequence):
    """`build(values)` for the JSON object in `path` (read by `read_json_object`): a `kind` of file sgdlab wrote,
    such as a run's settings or a sweep's. Values of the wrong type or range (`build` raises KeyError, TypeError,
    AttributeError or ValueError) make an `SgdlabError` naming the file as damaged, and `consequence`."""
    values = read_json_object(path, kind)
    try:
        return build(values)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # ConfigError is a ValueError
        raise SgdlabError(f"{path} is damaged ({exc}): {consequence}") from None


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
