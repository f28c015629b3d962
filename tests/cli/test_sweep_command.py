"""`sgdlab sweep` from the command line: its errors (exit 2, one line), --book, --resume's refusals, and what it
prints."""

import json

import pytest

from tests.cli.commands import run

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


def test_book_runs_the_books_search_with_any_option_replacing_the_books(capsys, tmp_path, mnist_dir):
    out = tmp_path / "book"
    code, stdout, err = run(capsys, "sweep", "--book", "--trials", 2, "--epochs", 1, "--workers", 1, "--out", out,
                            "--data-dir", mnist_dir)
    assert code == 0, err
    stored = json.loads((out / "sweep.json").read_text())
    assert stored["trials"] == 2 and stored["rounds"] == 1 and stored["seed"] == 0
    assert stored["settings"] == {"train_size": 500, "validation": 0.2, "hidden_sizes": [100] * 6,
                                  "activation": "relu", "weight_init_std": "he", "optimizer": "sgd",
                                  "batch_size": 100, "epochs": 1}
    assert [(s["name"], s["kind"], s["low"], s["high"]) for s in stored["searches"]] == [
        ("lr", "log", 1e-6, 1e-2), ("weight_decay", "log", 1e-8, 1e-4)]
    assert "sweep of 2 trials on 1 local workers" in stdout and "lr=log:1e-06:0.01" in stdout
    assert "best: trial" in stdout and "not used to choose" in stdout
    assert "2 finished, 0 diverged; results in" in stdout
    code, _, err = run(capsys, "sweep", "--book", "--out", out, "--trials", 2)
    assert code == 2 and f"{out} already holds a sweep (sweep.json): continue it with --resume {out}" in err


def test_a_finished_sweep_resumed_trains_nothing_and_reports_again(capsys, tmp_path, mnist_dir):
    out = tmp_path / "sweep"
    code, first, err = run(capsys, "sweep", "--search", "lr=log:1e-2:1", "--trials", 2, "--workers", 1, "--out", out,
                           "--data-dir", mnist_dir, "--seed", 3, *SMALL)
    assert code == 0, err
    histories = {path: path.read_bytes() for path in out.glob("trial-*/history.json")}
    code, again, err = run(capsys, "sweep", "--resume", out, "--workers", 1)
    assert code == 0, err
    assert {path: path.read_bytes() for path in out.glob("trial-*/history.json")} == histories
    assert again.splitlines()[1:] == first.splitlines()[1:]  # the same table and best trial
