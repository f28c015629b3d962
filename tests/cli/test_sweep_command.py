"""`sgdlab sweep` from the command line: its errors (exit 2, one line), --book, --resume's refusals, and what it
prints."""

import json

import pytest

from tests.cli.commands import run

pytestmark = pytest.mark.usefixtures("shared_local_clusters")  # see tests/conftest.py

SMALL = ("--train-size", "300", "--validation", "0.2", "--hidden-size", "10", "--epochs", "1")


@pytest.mark.parametrize("argv, message", [
    (("--search", "lr=log:-6:-2", "--validation", "0.2"), "--search 'lr=log:-6:-2': a log range needs LOW above 0"),
    (("--search", "learning_rate=log:1e-6:1e-2"), "'learning_rate' is not a setting a sweep can search"),
    (("--search", "lr:log:1e-6:1e-2"), "expected NAME=KIND:LOW:HIGH"),
    (("--search", "lr=log:1e-3:1e-1", "--search", "lr=log:1e-3:1"), "names lr more than once"),
    (("--search", "lr=log:1e-3:1e-1", "--lr", "0.1", "--validation", "0.2"), "lr is both searched and fixed"),
    (("--search", "lr=log:1e-3:1e-1"), "a sweep chooses by validation accuracy: hold some training images out"),
    (("--validation", "0.2",), "give the settings to search with --search"),
    (("--resume", "somewhere", "--trials", "3"), "--resume continues a sweep as its sweep.json describes it: leave "
                                                 "out --trials"),
    (("--resume", "nowhere"), "nowhere holds no sweep (no sweep.json)"),
    (("--resume", "somewhere", "--seed", "0"), "leave out --seed"),
    (("--search", "optimizer=choice:momentum,sgd", "--search", "momentum=uniform:0.5:0.9", "--validation", "0.2"),
     "a trial of this sweep would be refused: momentum is a setting of the momentum and nesterov optimizers"),
    (("--search", "batch_size=int:100:400", "--train-size", "300", "--validation", "0.2"),
     "a trial of this sweep would be refused: batch size 400 is larger than the training set (240 samples"),
    (("--search", "lr=log:1e-3:1e-1", "--validation", "0.2", "--trials", "50000", "--rounds", "3"),
     "50000 trials x 3 rounds is more than the 100000 trials a sweep may have"),
    (("--search", "hidden_size=choice:10,x", "--validation", "0.2"),
     "--search 'hidden_size=choice:10,x': hidden_size must be a positive integer, got 'x'"),
    (("--search", "lr=log:1e-3:1e-1", "--validation", "0.2", "--scheduler", "tcp://127.0.0.1"),
     "--scheduler: must be a scheduler's address, such as tcp://10.0.0.1:8786"),
])
def test_a_bad_sweep_is_refused_with_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "sweep", "--out", tmp_path / "sweep", *argv) if "--resume" not in argv else \
        run(capsys, "sweep", *argv)
    assert code == 2
    *usage, last = err.splitlines()  # the usage too, for an option argparse rejects (--scheduler's form)
    assert last.startswith("sgdlab sweep: error: ") and message in last, err
    assert not usage or ("--scheduler" in argv and usage[0].startswith("usage: sgdlab sweep")), err
    assert not (tmp_path / "sweep").exists()


def test_book_runs_the_books_search_with_any_option_replacing_the_books(capsys, tmp_path, data_dir):
    out = tmp_path / "book"
    code, stdout, err = run(capsys, "sweep", "--book", "--trials", 2, "--epochs", 1, "--workers", 1, "--out", out,
                            "--data-dir", data_dir)
    assert code == 0, err
    stored = json.loads((out / "sweep.json").read_text())
    assert stored["trials"] == 2 and stored["rounds"] == 1 and stored["seed"] == 0
    assert stored["settings"] == {"train_size": 500, "validation": 0.2, "hidden_sizes": [100] * 6,
                                  "activation": "relu", "weight_init_std": "he", "optimizer": "sgd",
                                  "batch_size": 100, "epochs": 1, "test_eval": "last"}
    assert stored["checkpoint_every"] == 500 and stored["charts"] is False
    assert [(s["name"], s["kind"], s["low"], s["high"]) for s in stored["searches"]] == [
        ("lr", "log", 1e-6, 1e-2), ("weight_decay", "log", 1e-8, 1e-4)]
    assert "sweep of 2 trials on 1 local workers" in stdout and "lr=log:1e-06:0.01" in stdout
    assert "best: trial" in stdout and "not used to choose" in stdout
    assert "2 finished, 0 diverged; results in" in stdout
    code, _, err = run(capsys, "sweep", "--book", "--out", out, "--trials", 2)
    assert code == 2 and f"{out} already holds a sweep (sweep.json): continue it with --resume {out}" in err
    code, _, err = run(capsys, "plot", out / "trial-0")  # a trial without charts is a run folder all the same
    assert code == 0, err
    assert (out / "trial-0" / "accuracy.png").is_file() and (out / "trial-0" / "loss.png").is_file()


def test_the_help_names_the_checkpoint_spacing_a_sweep_uses(capsys):
    from sgdlab.runs.sweep import TRIAL_CHECKPOINT_EVERY

    code, out, _ = run(capsys, "sweep", "--help")
    assert code == 0 and f"costs at most (default {TRIAL_CHECKPOINT_EVERY})" in " ".join(out.split())


def test_a_searched_train_size_trains_each_trial_on_its_own(capsys, tmp_path, data_dir):
    out = tmp_path / "sweep"
    code, stdout, err = run(capsys, "sweep", "--search", "train_size=choice:300,400", "--trials", 6, "--workers", 1,
                            "--out", out, "--data-dir", data_dir, "--validation", 0.2, "--hidden-size", 10,
                            "--iters", 2)
    assert code == 0, err
    table = stdout[stdout.index("the best 5 of 6 trials that ended, by validation accuracy (every trial in "
                                "results.csv):\n"):].splitlines()
    assert table[1].split() == ["trial", "round", "val", "acc", "train", "acc", "settings"]
    assert table[7].startswith("best: trial")  # five rows between
    rows = json.loads((out / "results.json").read_text())["trials"]
    assert {row["settings"]["train_size"] for row in rows} == {300, 400}
    for row in rows:
        trained = json.loads((out / f"trial-{row['trial']}" / "config.json").read_text())
        assert trained["train_size"] == row["settings"]["train_size"]


def test_a_finished_sweep_resumed_trains_nothing_and_reports_again(capsys, tmp_path, data_dir):
    out = tmp_path / "sweep"
    code, first, err = run(capsys, "sweep", "--search", "lr=log:1e-2:1", "--trials", 2, "--workers", 1, "--out", out,
                           "--data-dir", data_dir, "--seed", 3, *SMALL)
    assert code == 0, err
    histories = {path: path.read_bytes() for path in out.glob("trial-*/history.json")}
    code, again, err = run(capsys, "sweep", "--resume", out, "--workers", 1)
    assert code == 0, err
    assert {path: path.read_bytes() for path in out.glob("trial-*/history.json")} == histories
    assert again.splitlines()[1:] == first.splitlines()[1:]  # the same table and best trial


def failing_trial(trial, *args):
    """run_trial, except that trial 1 fails (as when its workers are lost too often)."""
    from sgdlab.runs.trial_cluster import run_trial

    if trial == 1:
        raise RuntimeError("lost")
    return run_trial(trial, *args)


def test_a_failed_trial_is_named_with_the_way_to_try_it_again(capfd, tmp_path, data_dir, monkeypatch):
    from sgdlab.runs import trial_cluster

    out = tmp_path / "sweep"
    with monkeypatch.context() as patch:
        patch.setattr(trial_cluster, "run_trial", failing_trial)
        # capfd: what the workers print too, on the terminal they share (Dask's "Compute Failed" must not be)
        code, stdout, err = run(capfd, "sweep", "--search", "lr=log:1e-2:1", "--trials", 2, "--rounds", 2,
                                "--workers", 1, "--out", out, "--data-dir", data_dir, *SMALL)
    assert code == 1
    assert err.splitlines() == [f"sgdlab sweep: trials 1 failed (the next round waits for them), the first with "
                                f"RuntimeError: lost; try them again with sgdlab sweep --resume {out}"]
    assert "1 finished, 0 diverged, 1 not finished (failed)" in stdout
    code, stdout, err = run(capfd, "sweep", "--resume", out, "--workers", 1)
    assert code == 0, err
    assert "4 finished, 0 diverged" in stdout


def test_an_unreachable_scheduler_is_named_before_any_folder_is_made(capsys, tmp_path, data_dir):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "sweep"
    code, _, err = run(capsys, "sweep", "--search", "lr=log:1e-2:1", "--scheduler", f"tcp://127.0.0.1:{port}",
                       "--out", out, "--data-dir", data_dir, *SMALL)
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith(f"sgdlab sweep: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} (")
    assert line.endswith("or leave out --scheduler to use this machine's cores")
    assert not out.exists()
    with socket.socket() as listener:  # something listens there: a TLS scheduler, as far as sgdlab can tell
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code, _, err = run(capsys, "sweep", "--search", "lr=log:1e-2:1", "--scheduler", f"tls://127.0.0.1:{port}",
                           "--out", out, "--data-dir", data_dir, *SMALL)
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith(f"sgdlab sweep: error: cannot reach the Dask scheduler at tls://127.0.0.1:{port} (")
    assert line.endswith("give the cluster's TLS credentials in Dask's configuration (distributed.comm.tls.ca-file, "
                         "distributed.comm.tls.client.cert and .key)")
    assert not out.exists()
