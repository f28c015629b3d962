"""The cores, BLAS threads and memory the fast paths run on."""

import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import ConfigError

GB = 1 << 30


def usable_cores():
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_held = threading.Lock()
_holders = 0  # open one_blas_thread contexts, in any thread: BLAS's thread count is the process's
_limits_in_force = []  # what the first of them set, and what limit_blas_loaded_since added
_modules_when_limited = 0  # how many modules were imported when a limit was last set


@contextlib.contextmanager
def one_blas_thread():
    """A context in which BLAS uses one thread.

    Batch-100 products gain little from more, and results then depend
    neither on the core count nor on what runs on the second core. A limit
    covers the BLAS libraries loaded when it is set; SciPy's, which a
    convolution's shifted products call, may be loaded later, when the
    step's workspaces are made: `limit_blas_loaded_since` then covers it too,
    until the context ends. Contexts nest for free: only the first sets the
    limit and the last restores it, so that a training step that holds one
    (a user calling it directly) pays nothing more inside a run that holds
    one already.
    """
    global _holders
    with _held:
        if not _holders:
            _limit_blas()
        _holders += 1
    try:
        yield
    finally:
        with _held:
            _holders -= 1
            if not _holders:
                for limit in reversed(_limits_in_force):
                    limit.restore_original_limits()
                _limits_in_force.clear()


def limit_blas_loaded_since():
    """Within a `one_blas_thread` context, limit to one thread also the BLAS libraries loaded since it began.

    A library is loaded by the import of the extension module that links it:
    where no module has been imported since the last limit, there is nothing
    new to limit, and nothing is asked of threadpoolctl (which looks through
    every loaded library, a millisecond or more, at each evaluation's pass).
    """
    with _held:
        if _holders and len(sys.modules) != _modules_when_limited:
            _limit_blas()


def _limit_blas():
    global _modules_when_limited
    _modules_when_limited = len(sys.modules)
    _limits_in_force.append(threadpool_limits(limits=1, user_api="blas"))


class CallersErrorsPool(ThreadPoolExecutor):
    """A thread pool whose calls treat floating-point errors as the thread that submits them does.

    `np.errstate` holds for one thread only: without this, a caller that
    silences a diverged net's overflow (its figures say NaN) would still
    hear the warnings of the workers that compute them.
    """

    def submit(self, fn, /, *args, **kwargs):
        settings = np.geterr()

        def as_the_caller_would():
            with np.errstate(**settings):
                return fn(*args, **kwargs)

        return super().submit(as_the_caller_would)


def available_memory():
    """Bytes this process may still allocate without swapping: Linux's MemAvailable, within its cgroup's limit
    (a container's); elsewhere the free physical memory; None where neither is known."""
    known = [room for room in (_meminfo_available(), _cgroup_room()) if room is not None]
    if not known:
        try:
            known = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (AttributeError, ValueError, OSError):
            return None
    return max(min(known), 0)


def _meminfo_available():
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


CGROUP = Path("/sys/fs/cgroup")  # where cgroup v2 shows this process's limits


def _cgroup_room():
    """What this process's cgroup (v2) may still use, or None without a limit: its limit less what it uses,
    the page cache it could drop (`inactive_file`) not counted as used, as container runtimes count it."""
    try:
        limit = (CGROUP / "memory.max").read_text(encoding="ascii").strip()
        if limit == "max":
            return None
        limit, used = int(limit), int((CGROUP / "memory.current").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    try:
        stat = dict(line.split() for line in (CGROUP / "memory.stat").read_text(encoding="ascii").splitlines())
        droppable = int(stat.get("inactive_file", 0))
    except (OSError, ValueError):
        droppable = 0
    return limit - (used - droppable)


def check_workers(workers, what="--workers"):
    """Refuse more worker processes than this process has cores for, in one line."""
    cores = usable_cores()
    if workers > cores:
        raise ConfigError(f"{what} {workers} is more than the {cores} cores this process may use (each worker "
                          f"keeps one busy): give {what} {cores} or fewer")


def check_memory(needed, what, fix):
    """Refuse `what`, needing about `needed` bytes, when this machine has less memory available, before any of
    it is allocated: one line naming the estimate, the memory available and `fix`."""
    available = available_memory()
    if available is not None and needed > available:
        raise ConfigError(f"{what} would need about {needed / GB:.1f} GB of memory, more than the "
                          f"{available / GB:.1f} GB available: {fix}")
