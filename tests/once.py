"""Test data made once for a whole test run, whichever pytest-xdist worker asks first."""

import fcntl
import os
import shutil


def made_once(tmp_path_factory, name, make):
    """The folder `name`, made by `make(folder)` once for the whole test run: the first pytest-xdist worker to ask
    makes it while the others wait for it, then all share it (read it, never change it). Under `-n 0` it is the
    session's own."""
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:  # each worker's temporary folder is in the one of the whole run
        root = root.parent
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the worker dies
        made = root / f"{name}.made"
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker killed while making it left
            folder.mkdir()
            make(folder)
            made.touch()
    return folder
