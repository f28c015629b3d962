"""Runs trained side by side in worker processes: the same results as one after another, progress, Ctrl-C."""

import json

import pytest

from sgdlab.engine.threads import usable_cores
from sgdlab.runs.parallel_runs import train_runs
from sgdlab.training.config import TrainConfig
from tests.processes import ctrl_c_where_python_drops_exceptions


def jobs(tmp_path, data_dir, iters, names=("sgd", "adam", "momentum"), train_size=None):
    return {name: (TrainConfig(iters=iters, batch_size=50, hidden_size=20, optimizer=name, eval_every=10,
                               train_size=train_size), tmp_path / name, False, data_dir, False) for name in names}


def test_side_by_side_runs_equal_the_same_runs_one_after_another(tmp_path, data_dir):
    reports = []
    # on 6000 training images: each evaluation measures a tenth of the whole set
    alone, interrupted = train_runs(jobs(tmp_path / "alone", data_dir, 25, train_size=6000), workers=1)
    assert not interrupted
    side_by_side, interrupted = train_runs(jobs(tmp_path / "pool", data_dir, 25, train_size=6000), workers=2,
                                           progress=lambda *report: reports.append(report))
    assert not interrupted and list(side_by_side) == ["sgd", "adam", "momentum"]
    for name, history in alone.items():
        other = side_by_side[name]
        assert other.loss == history.loss and other.iteration == [0, 10, 20, 25]
        assert other.train_acc == history.train_acc and other.test_acc == history.test_acc
        saved = json.loads((tmp_path / "pool" / name / "history.json").read_text())
        assert saved["loss"] == history.loss
        assert (name, 25, 25) in reports and (name, 0, 25) in reports  # every run reported its start and its end


@pytest.mark.parametrize("workers", [pytest.param(1, marks=pytest.mark.slow), 2])  # the same stop, one worker or two
@pytest.mark.parametrize("ctrl_c", ["raised", pytest.param("dropped", marks=pytest.mark.slow)])  # the caller's
# KeyboardInterrupt, or the signal where Python drops what its handler raises (see tests/processes.py; the quick
# loop's sweep test takes the same path)
def test_ctrl_c_stops_the_running_runs_saves_them_and_skips_the_rest(tmp_path, data_dir, workers, ctrl_c,
                                                                      terminal_signals):
    pressed = []

    def progress(name, done, total):
        if done >= 30 and not pressed:  # while a run is under way
            pressed.append(name)
            if ctrl_c == "raised":
                raise KeyboardInterrupt
            ctrl_c_where_python_drops_exceptions()

    # Long enough to be under way for seconds after the report of iteration 30 (300 evaluations), short enough
    # to report every 15 iterations (PROGRESS_STEPS reports a run): 100 000 would train 500 before its first report.
    iters = 3000
    histories, interrupted = train_runs(jobs(tmp_path, data_dir, iters), workers=workers, progress=progress)
    assert interrupted
    assert 1 <= len(histories) <= workers and "momentum" not in histories  # the third never started
    for name, history in histories.items():
        assert history.interrupted and len(history.loss) < iters
        saved = json.loads((tmp_path / name / "history.json").read_text())
        assert saved["stopped"] == history.stopped and saved["loss"] == history.loss
    assert not (tmp_path / "momentum").exists()


def wait_until_ended(pid, timeout=60):
    """Whether process `pid` (not necessarily a child of this one) ended within `timeout` seconds: an event
    waited on through its pidfd, which becomes readable when the process ends."""
    import os
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def kill_all(process):
    """SIGKILL `process` and the process group it leads (its own session), and reap it."""
    import os
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)


@pytest.mark.skipif(not hasattr(__import__("os"), "pidfd_open"), reason="waits on processes through pidfds (Linux)")
def test_a_worker_ends_when_its_parent_is_killed_and_the_parent_pipe_alone_tells_it():
    import subprocess
    import sys

    # A parent that starts a process which only watches the pipe from its parent (no Linux parent-death signal),
    # says its pid, and waits to be killed.
    script = ("import multiprocessing, signal\n"
              "from sgdlab.runs.parallel_runs import exit_with_parent\n"
              "child = multiprocessing.get_context('spawn').Process(target=exit_with_parent)\n"
              "child.start()\n"
              "print(child.pid, flush=True)\n"
              "signal.pause()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        assert not wait_until_ended(child, timeout=0.2)  # alive while its parent is
        parent.kill()
        parent.wait(timeout=60)
        assert wait_until_ended(child)
    finally:
        kill_all(parent)


def children(pid):
    """The pids of process `pid`'s children, from /proc."""
    from pathlib import Path

    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def command_line(pid):
    from pathlib import Path

    return Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.slow  # a whole experiment, killed and resumed; the test above checks the mechanism in the quick loop
@pytest.mark.skipif(not hasattr(__import__("os"), "pidfd_open"), reason="waits on processes through pidfds (Linux)")
@pytest.mark.skipif(usable_cores() < 2, reason="an experiment trains in worker processes when it has two cores")
def test_killing_an_experiment_ends_its_workers_and_it_can_be_resumed(tmp_path, data_dir):
    import os
    import subprocess
    import sys

    out = tmp_path / "experiment"
    process = subprocess.Popen([sys.executable, "-m", "sgdlab", "experiment", "weight-init", "--iters", "1000",
                                "--out", out, "--data-dir", data_dir, "--quiet"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # An event: the first variant's first checkpoint (after an epoch) is written while its worker trains on.
        first = None
        while first is None and process.poll() is None:
            first = next(iter(out.glob("*/checkpoint.npz")), None)
            wait_until_ended(process.pid, timeout=0.05)  # wakes at once if the experiment ends
        assert first is not None, process.stderr.read()
        workers = [pid for pid in children(process.pid) if b"resource_tracker" not in command_line(pid)]
        assert len(workers) == 2
        process.kill()  # SIGKILL: the experiment has no time to stop its workers
        process.wait(timeout=60)
        assert all(wait_until_ended(pid) for pid in workers)
    finally:
        kill_all(process)
    resumed = subprocess.run([sys.executable, "-m", "sgdlab", "experiment", "--resume", out, "--quiet"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "stopped" not in summary
    assert all(variant["iterations"] == 1000 for variant in summary["variants"].values())
    assert not list(out.glob("*/.lock")) and os.path.exists(out / "weight-init.png")
