"""Sweeps on the real MNIST: the same results on one local worker, on two, on a real Dask cluster that loses a
worker mid-sweep, and after Ctrl-C and --resume; rounds that narrow; diverged trials; the files and figures."""

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from sgdlab.errors import SgdlabError
from sgdlab.runs.search_space import parse_search
from sgdlab.runs.sweep import (RESULTS_CSV, Sweep, load_sweep, new_sweep, ranked, read_results, run_sweep,
                               trial_folder)
from sgdlab.runs.run_folder import REPORT_NAME, RUN_FILES
from sgdlab.runs.trial_cluster import run_trial
from tests.processes import ctrl_c_where_python_drops_exceptions, press_ctrl_c, sgdlab_command, started

pytestmark = pytest.mark.usefixtures("shared_local_clusters")  # see tests/conftest.py

# Six trials of a fraction of a second each, with a checkpoint at every epoch (18 iterations) to be caught after.
SETTINGS = {"train_size": 2000, "validation": 0.1, "hidden_size": 40, "epochs": 6}
SEARCHES = ("lr=log:1e-2:1", "weight_decay=log:1e-6:1e-2")
TRIALS = 6
EPOCH = 18
# A trial's run folder without its charts and report, which only --trial-charts draws.
TRIAL_FILES = tuple(name for name in RUN_FILES if not name.endswith(".png") and name != REPORT_NAME)


def small_sweep(trials=TRIALS, rounds=1, searches=SEARCHES, settings=SETTINGS, **options):
    return Sweep(tuple(parse_search(text) for text in searches), dict(settings), trials, rounds, seed=4,
                 **{"checkpoint_every": EPOCH, **options})


def outcomes(sweep_dir):
    """What must not depend on where or how the trials ran: each trial's settings, seed, status, accuracies and
    its every loss."""
    sweep, _ = load_sweep(sweep_dir)
    found = {}
    for trial, row in read_results(sweep_dir).items():
        history = json.loads((trial_folder(sweep_dir, sweep, trial) / "history.json").read_text())
        found[trial] = ({key: row[key] for key in ("settings", "seed", "round", "status", "val_acc", "train_acc",
                                                   "test_acc")}, history["loss"], history["val_acc"])
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir, shared_local_clusters):
    """The sweep trained by one local worker, one trial after another."""
    out = new_sweep(small_sweep(), tmp_path_factory.mktemp("reference") / "sweep", data_dir=data_dir)
    rows, interrupted = run_sweep(out, workers=1)
    assert not interrupted and [row["status"] for row in rows.values()] == ["finished"] * TRIALS
    return out


def test_a_sweep_folder_holds_a_run_folder_per_trial_and_its_results(reference):
    sweep, _ = load_sweep(reference)
    for trial in range(TRIALS):
        folder = trial_folder(reference, sweep, trial)
        assert folder.name == f"trial-{trial}"
        # no charts or report unless asked; the test set measured once, at the end
        assert sorted(path.name for path in folder.iterdir() if not path.name.startswith(".")) == sorted(
            TRIAL_FILES)
        assert json.loads((folder / "config.json").read_text())["seed"] == read_results(reference)[trial]["seed"]
        history = json.loads((folder / "history.json").read_text())
        assert history["test_acc"][:-1] == [None] * SETTINGS["epochs"] and history["test_acc"][-1] is not None
        assert None not in history["val_acc"] + history["train_acc"]
        assert len(history["val_acc"]) == SETTINGS["epochs"] + 1
    with open(reference / RESULTS_CSV, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["trial", "round", "lr", "weight_decay", "seed", "val_acc", "train_acc", "test_acc",
                              "seconds", "status", "worker"]
    assert [row["trial"] for row in table] == [str(trial) for trial in range(TRIALS)]
    assert {row["worker"] for row in table} == {"0"} and {row["status"] for row in table} == {"finished"}
    for row in table:
        history = json.loads((trial_folder(reference, sweep, int(row["trial"])) / "history.json").read_text())
        assert float(row["val_acc"]) == history["val_acc"][-1] and float(row["test_acc"]) == history["test_acc"][-1]
        assert 1e-2 <= float(row["lr"]) <= 1 and 1e-6 <= float(row["weight_decay"]) <= 1e-2
    best = ranked(read_results(reference).values())
    assert best[0]["val_acc"] > 0.8  # lr 0.01 to 1 over six epochs: the best trial has learned
    for name, size in (("best-trials.png", (1100, 480)), ("search.png", (900, 380))):
        with Image.open(reference / name) as image:
            assert image.format == "PNG" and image.size == size


def test_two_local_workers_give_the_same_results_measuring_and_drawing_all_a_run_does_when_asked(
        reference, tmp_path, data_dir):
    out = new_sweep(small_sweep(settings={**SETTINGS, "test_eval": "every"}, charts=True), tmp_path / "sweep",
                    data_dir=data_dir)
    rows, _ = run_sweep(out, workers=2)
    assert {row["worker"] for row in rows.values()} == {"0", "1"}
    assert outcomes(out) == outcomes(reference)  # the test set measured at every evaluation changes no ranking
    for trial in rows:
        folder = trial_folder(out, load_sweep(out)[0], trial)
        assert sorted(path.name for path in folder.iterdir() if not path.name.startswith(".")) == sorted(RUN_FILES)
        assert None not in json.loads((folder / "history.json").read_text())["test_acc"]


def test_a_sweep_on_one_local_worker_that_dies_mid_trial_finishes_every_trial_with_the_same_results(
        reference, tmp_path, data_dir):
    import psutil

    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sgdlab", "sweep", "--out", str(out), "--workers", "1", "--quiet",
               "--data-dir", str(data_dir), "--trials", str(TRIALS), "--seed", "4", "--checkpoint-every", str(EPOCH),
               *(f"--search={text}" for text in SEARCHES), *_options(SETTINGS)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (caught := [folder for folder in out.glob("trial-*") if (folder / "checkpoint.npz").exists()
                              and not (folder / "history.json").exists()]):
            assert time.monotonic() < deadline and process.poll() is None, "no trial was caught past a checkpoint"
            time.sleep(0.01)
        [worker] = [child for child in psutil.Process(process.pid).children(recursive=True)
                    if "spawn_main" in " ".join(child.cmdline())]  # the cluster's one worker process
        worker.kill()
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0 and stderr == "", stderr  # Dask's word of the lost worker kept off the terminal
    assert not worker.is_running() and len(caught) == 1
    rows = read_results(out)
    assert {row["status"] for row in rows.values()} == {"finished"}
    assert outcomes(out) == outcomes(reference)


@pytest.mark.slow  # a cluster of its own; the one local worker killed above is lost and replaced in the quick loop
def test_a_real_cluster_that_loses_a_worker_mid_trial_finishes_every_trial_with_the_same_results(
        reference, tmp_path, data_dir):
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = tmp_path / "scheduler.json"
    with contextlib.ExitStack() as stack:
        def start(*command):
            return stack.enter_context(started([dask, *command], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, start_new_session=True))

        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
              str(scheduler_file))
        workers = {name: start("worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--name", name,
                               "--host", "127.0.0.1", "--no-dashboard") for name in ("w1", "w2")}
        client = stack.enter_context(Client(scheduler_file=_wait_for(scheduler_file), timeout="30s"))
        client.wait_for_workers(2, timeout=60)
        address = client.scheduler.address
        assert address.startswith("tcp://127.0.0.1:")
        sweep = new_sweep(small_sweep(), tmp_path / "sweep", data_dir=data_dir)
        command = stack.enter_context(started(sgdlab_command("sweep", "--resume", sweep, "--scheduler", address,
                                                             "--quiet"), stderr=subprocess.PIPE, text=True))
        killed_trial = _kill_mid_trial(client, workers["w1"], sweep)
        _, stderr = command.communicate(timeout=300)
        assert command.returncode == 0, stderr
    rows = read_results(sweep)
    assert rows[killed_trial]["worker"] == "w2"  # trained again elsewhere, from its checkpoint
    assert {row["status"] for row in rows.values()} == {"finished"}
    assert outcomes(sweep) == outcomes(reference)


def _wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return str(path)


def _kill_mid_trial(client, worker_process, sweep_dir):
    """Kill the worker (its whole process group: the machine is lost) once its trial has saved a checkpoint;
    returns that trial's number."""
    sweep, _ = load_sweep(sweep_dir)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        processing = client.processing()
        names = {info["name"]: address for address, info in client.scheduler_info()["workers"].items()}
        for key in processing.get(names.get("w1"), ()):
            trial = int(str(key).split("-")[2])
            folder = trial_folder(sweep_dir, sweep, trial)
            if (folder / "checkpoint.npz").exists() and not (folder / "history.json").exists():
                os.killpg(worker_process.pid, signal.SIGKILL)
                worker_process.wait()
                return trial
        time.sleep(0.02)
    raise AssertionError("the worker never trained a trial past its first checkpoint")


@pytest.mark.slow  # three sweeps in processes; a trial stopped and saved mid-sweep: the test of a trial that cannot go on
def test_ctrl_c_keeps_the_ended_trials_and_resume_finishes_the_sweep_as_in_one_go(reference, tmp_path, data_dir):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sgdlab", "sweep", "--out", str(out), "--workers", "2", "--quiet",
               "--data-dir", str(data_dir), "--trials", str(TRIALS), "--seed", "4", "--checkpoint-every", str(EPOCH),
               *(f"--search={text}" for text in SEARCHES), *_options(SETTINGS)]
    with started(command, stderr=subprocess.PIPE, text=True, start_new_session=True) as process:
        deadline = time.monotonic() + 120
        while not any(row.get("status") == "finished" for row in _rows_so_far(out)):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read() if process.poll() else ""
            time.sleep(0.05)
        code, _, stderr = press_ctrl_c(process, group=True)  # Ctrl-C in a terminal reaches the workers too
    assert code == 130, stderr
    assert f"continue with sgdlab sweep --resume {out}" in stderr
    rows = read_results(out)
    statuses = [row["status"] for row in rows.values()]
    assert "finished" in statuses and set(statuses) <= {"finished", "interrupted", "not run"}, statuses
    assert set(statuses) != {"finished"}, "the sweep ended before Ctrl-C reached it"
    for trial, row in rows.items():  # an interrupted trial is saved, ready to continue
        if row["status"] == "interrupted":
            assert (trial_folder(out, load_sweep(out)[0], trial) / "checkpoint.npz").exists()
    resumed = subprocess.run([sys.executable, "-m", "sgdlab", "sweep", "--resume", str(out), "--workers", "2"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "best: trial" in resumed.stdout
    assert outcomes(out) == outcomes(reference)
    again = subprocess.run([sys.executable, "-m", "sgdlab", "sweep", "--resume", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and outcomes(out) == outcomes(reference)  # nothing left: every trial kept


def test_a_ctrl_c_that_lands_where_python_drops_exceptions_still_stops_the_sweep(reference, tmp_path, data_dir,
                                                                                 terminal_signals):
    """Python runs a signal's handler wherever the main thread is: in a weakref's callback, a KeyboardInterrupt it
    raised would be reported and dropped, and the sweep would train on to its end."""
    pressed = []

    def ctrl_c_after_the_first_trial(row):
        if row["status"] == "finished" and not pressed:
            pressed.append(row["trial"])
            ctrl_c_where_python_drops_exceptions()

    out = new_sweep(small_sweep(), tmp_path / "sweep", data_dir=data_dir)
    rows, interrupted = run_sweep(out, workers=1, progress=ctrl_c_after_the_first_trial)
    statuses = [row["status"] for row in rows.values()]
    assert interrupted and "finished" in statuses and set(statuses) <= {"finished", "interrupted", "not run"}, statuses
    assert set(statuses) != {"finished"}
    rows, interrupted = run_sweep(out, workers=1)
    assert not interrupted and outcomes(out) == outcomes(reference)


def _options(settings):
    return [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]


def _rows_so_far(sweep_dir):
    with contextlib.suppress(FileNotFoundError, ValueError):
        return json.loads((sweep_dir / "results.json").read_text())["trials"]
    return []


def test_rounds_narrow_the_ranges_to_the_span_of_the_best_trials(tmp_path, data_dir):
    out = new_sweep(small_sweep(trials=5, rounds=2, settings={**SETTINGS, "epochs": 2}), tmp_path / "sweep",
                    data_dir=data_dir)
    rows, _ = run_sweep(out, workers=2)
    histories = {path: path.read_bytes() for path in out.glob("trial-*/history.json")}
    stored = read_results(out)
    assert {row["worker"] for row in stored.values()} == {"0", "1"}
    again, _ = run_sweep(out, workers=1)  # resumed when every round has ended: nothing trains, nothing is lost
    assert again == rows and read_results(out) == stored
    assert {path: path.read_bytes() for path in out.glob("trial-*/history.json")} == histories
    first = [row for row in rows.values() if row["round"] == 1]
    second = [row for row in rows.values() if row["round"] == 2]
    assert [row["trial"] for row in second] == [5, 6, 7, 8, 9]
    best = ranked(first)[:2]  # a fifth of 5, at least 2
    for name in ("lr", "weight_decay"):
        low, high = min(row["settings"][name] for row in best), max(row["settings"][name] for row in best)
        assert all(low <= row["settings"][name] <= high for row in second), name
    assert trial_folder(out, load_sweep(out)[0], 9).name == "trial-9"


def test_a_trial_that_diverges_is_recorded_as_such_and_not_retried(tmp_path, data_dir):
    # batch_norm_test.py's plain net at weight scale 1 diverges within a few iterations; with He weights it learns
    sweep = small_sweep(trials=6, searches=("weight_init_std=choice:he,1",),
                        settings={"train_size": 1000, "validation": 0.1, "epochs": 2, "hidden_sizes": (100,) * 5,
                                  "activation": "relu", "lr": 0.01})
    out = new_sweep(sweep, tmp_path / "sweep", data_dir=data_dir)
    rows, _ = run_sweep(out, workers=2)
    statuses = {}
    for row in rows.values():
        statuses.setdefault(row["settings"]["weight_init_std"], set()).add(row["status"])
    assert statuses == {"he": {"finished"}, 1.0: {"diverged"}}
    diverged = next(row for row in rows.values() if row["status"] == "diverged")
    history = json.loads((trial_folder(out, sweep, diverged["trial"]) / "history.json").read_text())
    assert history["stopped"].startswith("loss became")
    assert ranked(rows.values())[0]["settings"]["weight_init_std"] == "he"
    diverged_history = trial_folder(out, sweep, diverged["trial"]) / "history.json"
    before = diverged_history.read_bytes()
    again, _ = run_sweep(out, workers=2)  # resumed: an ended trial, diverged or not, is not trained again
    assert again == rows and diverged_history.read_bytes() == before


def test_overwrite_replaces_the_earlier_sweeps_trials(reference, tmp_path, data_dir):
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    new_sweep(small_sweep(trials=2, searches=("lr=log:1e-6:1e-5",), settings={**SETTINGS, "epochs": 1}), out,
              overwrite=True, data_dir=data_dir)
    assert sorted(path.name for path in out.glob("trial-*")) == []  # the earlier trials went with their sweep
    rows, _ = run_sweep(out, workers=1)
    for trial, row in rows.items():  # each row's settings are those its folder trained with
        trained = json.loads((trial_folder(out, load_sweep(out)[0], trial) / "config.json").read_text())
        assert 1e-6 <= row["settings"]["lr"] == trained["lr"] <= 1e-5
    assert sorted(path.name for path in out.glob("trial-*")) == ["trial-0", "trial-1"]


def test_a_trial_folder_trained_with_other_settings_is_never_taken_for_the_trial(reference, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    stored = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**stored, "seed": 5}))  # now the trials draw other settings
    with pytest.raises(SgdlabError, match="trial-0 holds a run with other settings than this sweep draws for it"):
        run_sweep(out, workers=1)


def failing_trial(trial, *args):
    """run_trial, except that trial 1 fails (as when its workers are lost too often)."""
    if trial == 1:
        raise RuntimeError("trial 1's worker was lost")
    return run_trial(trial, *args)


@pytest.mark.slow  # three sweeps; the command line's failed trial (tests/cli/test_sweep_command.py) in the quick loop
def test_a_failed_trial_holds_the_next_round_back_until_resumed(tmp_path, data_dir, monkeypatch):
    from sgdlab.runs import trial_cluster

    sweep = small_sweep(trials=3, rounds=2, settings={"train_size": 500, "validation": 0.2, "hidden_size": 20,
                                                      "epochs": 2})
    whole = new_sweep(sweep, tmp_path / "whole", data_dir=data_dir)
    run_sweep(whole, workers=2)
    out = new_sweep(sweep, tmp_path / "sweep", data_dir=data_dir)
    with monkeypatch.context() as patch:
        patch.setattr(trial_cluster, "run_trial", failing_trial)
        rows, interrupted = run_sweep(out, workers=2)
    assert not interrupted and sorted(rows) == [0, 1, 2]  # round 2 waits: its ranges depend on trial 1
    assert rows[1]["status"] == "failed" and "trial 1's worker was lost" in rows[1]["error"]
    rows, _ = run_sweep(out, workers=2)
    assert sorted(rows) == list(range(6)) and {row["status"] for row in rows.values()} == {"finished"}
    assert outcomes(out) == outcomes(whole)


def trial_without_room(trial, *args):
    """run_trial, except that trial 1's worker cannot write (as on a full disk), saying how a run continues."""
    if trial == 1:
        raise SgdlabError("cannot write trial 1's files", "continue it: sgdlab train --resume trial-001")
    return run_trial(trial, *args)


def test_a_trial_that_cannot_go_on_stops_the_others_saved_before_the_error_is_said(tmp_path, data_dir,
                                                                                    monkeypatch):
    from sgdlab.runs import trial_cluster

    out = new_sweep(small_sweep(trials=2), tmp_path / "sweep", data_dir=data_dir)
    with monkeypatch.context() as patch, pytest.raises(SgdlabError) as error:
        patch.setattr(trial_cluster, "run_trial", trial_without_room)
        run_sweep(out, workers=2)
    # a trial is continued by continuing its sweep, not as a run of its own
    assert str(error.value) == ("cannot write trial 1's files; once it is mended, continue the sweep: "
                                f"sgdlab sweep --resume {out}")
    rows = read_results(out)
    # stopped and saved, or done: never lost mid-trial; or not begun, when trial 1 failed first (a loaded machine)
    begun = (trial_folder(out, load_sweep(out)[0], 0) / "config.json").exists()
    assert rows[0]["status"] in (("interrupted", "finished") if begun else ("not run",))
    assert rows[1]["status"] == "queued"
    run_sweep(out, workers=2)
    assert {row["status"] for row in read_results(out).values()} == {"finished"}


def test_a_running_sweep_is_neither_replaced_nor_resumed_by_another(tmp_path, data_dir):
    from sgdlab.errors import ConfigError

    sweep = small_sweep(trials=2, settings={**SETTINGS, "epochs": 1})
    out = new_sweep(sweep, tmp_path / "sweep", data_dir=data_dir)
    refusals = []

    def another_sweep_meanwhile(row):
        if not refusals:  # the first trial has ended; the sweep runs on, holding its folder
            for attempt in (lambda: new_sweep(sweep, out, overwrite=True), lambda: run_sweep(out, workers=1)):
                with pytest.raises(ConfigError, match="being used by a sweep still running") as refused:
                    attempt()
                refusals.append(str(refused.value))
            assert (trial_folder(out, sweep, row["trial"]) / "history.json").exists()  # nothing removed

    rows, interrupted = run_sweep(out, workers=1, progress=another_sweep_meanwhile)
    assert len(refusals) == 2 and not interrupted
    assert [row["status"] for row in rows.values()] == ["finished", "finished"]
    assert not (out / ".lock").exists()


def test_a_waiting_trial_is_running_while_its_folder_is_trained_and_queued_before_or_after_its_worker_died(tmp_path):
    from sgdlab.runs.run_folder import LOCK_NAME, folder_lock
    from sgdlab.runs.sweep import _mark_running

    folders = {trial: tmp_path / f"trial-{trial}" for trial in range(4)}
    for folder in folders.values():
        folder.mkdir()
    (folders[3] / LOCK_NAME).touch()  # what a worker killed while training the trial leaves
    rows = {0: {"status": "queued"}, 1: {"status": "running"}, 2: {"status": "finished"}, 3: {"status": "running"}}
    with folder_lock(folders[0], "busy"):  # what a worker training the trial holds
        _mark_running(rows, folders)
    assert [rows[trial]["status"] for trial in range(4)] == ["running", "queued", "finished", "queued"]
