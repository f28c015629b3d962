"""A disk that fills up while a run trains: one clear error, the files saved before it whole, and the run
continued exactly once there is room again. `sgdlab train` runs in a child process here, under a file-size
limit (anywhere) or on a small tmpfs that the test fills (where it may mount one)."""

import contextlib
import json
import os
import resource
import subprocess
import time

import numpy as np
import pytest

from sgdlab.runs.checkpoint import load_checkpoint
from sgdlab.training.config import TrainConfig
from tests.processes import sgdlab_command, started

SMALL_NET = ("--hidden-size", "10", "--eval-every", "100", "--no-plot", "--quiet")


def running(*argv, file_size_limit=None):
    """`sgdlab ARGV...` in a child process (under a file-size limit in bytes, if given), as `started` runs it."""
    def limit():  # SIGXFSZ is ignored by Python, so a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return started(sgdlab_command(*argv), also=limit if file_size_limit else None, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)


def sgdlab(*argv, file_size_limit=None):
    """`sgdlab ARGV...` run to its end: (exit code, stdout, stderr)."""
    with running(*argv, file_size_limit=file_size_limit) as process:
        out, err = process.communicate(timeout=300)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, data_dir):
    """`whole_run(iters, train_size)`: the folder of the run of SMALL_NET for `iters` iterations (on the first
    `train_size` training images, else all) made in one go (trained once for the module, in this process: what
    `sgdlab train` trains)."""
    from sgdlab.runs.run import train_run

    made = {}

    def whole(iters, train_size=None):
        if (iters, train_size) not in made:
            config = TrainConfig(iters=iters, hidden_size=10, eval_every=100, train_size=train_size)
            made[iters, train_size], _ = train_run(config, out=tmp_path_factory.mktemp("whole") / "run",
                                                   data_dir=data_dir, plot=False)
        return made[iters, train_size]

    return whole


def assert_same_run(run_dir, expected_dir):
    resumed, whole = (json.loads((folder / "history.json").read_text()) for folder in (run_dir, expected_dir))
    for key in ("loss", "iteration", "train_acc", "test_acc", "stopped"):
        assert resumed[key] == whole[key], key
    with np.load(run_dir / "model.npz") as a, np.load(expected_dir / "model.npz") as b:
        for key in b.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def assert_left_whole(run_dir, also=()):
    """What a run stopped by a full disk leaves: its config, its last checkpoint, readable, and nothing else
    (but `also`)."""
    assert {path.name for path in run_dir.iterdir()} == {"config.json", "checkpoint.npz", *also}
    settings = json.loads((run_dir / "config.json").read_text())
    settings.pop("data_dir")
    return load_checkpoint(run_dir / "checkpoint.npz", TrainConfig.from_dict(settings).resolved().to_dict())


def test_a_file_size_limit_reached_mid_run_ends_it_cleanly_and_it_resumes_once_lifted(tmp_path, data_dir, whole_run):
    # 6000 training images: each evaluation measures a tenth of the whole set, and the path is the same.
    settings = ("--iters", "1500", "--train-size", "6000", "--data-dir", data_dir, *SMALL_NET)
    # The checkpoint holds the losses so far, so it grows: past 50 kB after a few hundred iterations.
    code, out, err = sgdlab("train", "--out", tmp_path / "run", *settings, file_size_limit=50_000)
    assert (code, out) == (1, "")
    assert err == (f"sgdlab train: error: cannot write the run's files in {tmp_path / 'run'} (File too large); "
                   f"once there is room, continue it from its last checkpoint: sgdlab train --resume "
                   f"{tmp_path / 'run'}\n")
    state = assert_left_whole(tmp_path / "run")
    assert 100 <= state.iteration < 1500 and state.iteration % 100 == 0
    code, _, err = sgdlab("train", "--resume", tmp_path / "run", "--quiet")
    assert code == 0, err
    assert_same_run(tmp_path / "run", whole_run(1500, train_size=6000))


@contextlib.contextmanager
def small_disk(folder, size="2m"):
    """A tmpfs of `size` mounted on `folder` (the test is skipped where mounting is not allowed)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder):
    """Write a file into `folder` until its disk is full; returns the file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
    return filler


@pytest.mark.slow  # 6000 iterations twice; the file-size limit above takes the same path in the quick loop
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_disk_filled_while_a_run_trains_stops_it_cleanly_and_it_resumes_once_there_is_room(tmp_path, data_dir, whole_run):
    settings = ("--iters", "6000", "--data-dir", data_dir, *SMALL_NET)
    with small_disk(tmp_path / "disk") as disk:
        run_dir = disk / "run"
        with running("train", "--out", run_dir, *settings) as training:
            deadline = time.monotonic() + 60
            while not (run_dir / "checkpoint.npz").exists() and training.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            filler = fill(disk)  # the disk is full from the first checkpoint on
            out, err = training.communicate(timeout=300)
        assert (training.returncode, out) == (1, ""), err
        assert err.startswith(f"sgdlab train: error: cannot write the run's files in {run_dir} (No space left on "
                              "device); once there is room, continue it from its last checkpoint")
        state = assert_left_whole(run_dir)
        assert state.iteration < 6000

        code, _, err = sgdlab("train", "--out", disk / "another", *settings)  # a run started on the full disk
        assert code == 1 and "No space left on device" in err
        assert not (disk / "another" / "config.json").exists()  # nothing there to block the next run

        filler.unlink()
        code, _, err = sgdlab("train", "--resume", run_dir, "--quiet")
        assert code == 0, err
        assert_same_run(run_dir, whole_run(6000))


@pytest.mark.slow  # as the full disk's test
@pytest.mark.skipif(os.geteuid() != 0, reason="remounting a tmpfs read-only needs root")
def test_a_folder_made_read_only_while_a_run_trains_stops_it_cleanly_and_it_resumes_once_writable(tmp_path,
                                                                                                  data_dir, whole_run):
    settings = ("--iters", "6000", "--data-dir", data_dir, *SMALL_NET)
    with small_disk(tmp_path / "disk", size="64m") as disk:  # a mount of the test's own, to mount over
        run_dir = disk / "run"
        with running("train", "--out", run_dir, *settings) as training:
            deadline = time.monotonic() + 60
            while not (run_dir / "checkpoint.npz").exists() and training.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            # The folder cannot be written from now on: a read-only view of it mounted over it (the files the run
            # holds open stay as they were, as on a disk remounted read-only)
            subprocess.run(["mount", "--bind", str(run_dir), str(run_dir)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(run_dir)], check=True)
            out, err = training.communicate(timeout=300)
        assert (training.returncode, out) == (1, ""), err
        assert err.startswith(f"sgdlab train: error: cannot write the run's files in {run_dir} (Read-only file "
                              "system); once there is room, continue it from its last checkpoint")
        subprocess.run(["umount", str(run_dir)], check=True)
        assert_left_whole(run_dir, also={".lock"})  # which it could not remove: it blocks nothing (see the kill tests)
        code, _, err = sgdlab("train", "--resume", run_dir, "--quiet")
        assert code == 0, err
        assert_same_run(run_dir, whole_run(6000))
