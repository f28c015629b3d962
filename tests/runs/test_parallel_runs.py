"""Runs trained side by side in worker processes: the same results as one after another, progress, Ctrl-C."""

import json

import pytest

from sgdlab.runs.parallel_runs import train_runs
from sgdlab.training.config import TrainConfig


def jobs(tmp_path, data_dir, iters, names=("sgd", "adam", "momentum")):
    return {name: (TrainConfig(iters=iters, batch_size=50, hidden_size=20, optimizer=name, eval_every=10),
                   tmp_path / name, False, data_dir, False) for name in names}


def test_side_by_side_runs_equal_the_same_runs_one_after_another(tmp_path, data_dir):
    reports = []
    alone, interrupted = train_runs(jobs(tmp_path / "alone", data_dir, 25), workers=1)
    assert not interrupted
    side_by_side, interrupted = train_runs(jobs(tmp_path / "pool", data_dir, 25), workers=2,
                                           progress=lambda *report: reports.append(report))
    assert not interrupted and list(side_by_side) == ["sgd", "adam", "momentum"]
    for name, history in alone.items():
        other = side_by_side[name]
        assert other.loss == history.loss and other.iteration == [0, 10, 20, 25]
        assert other.train_acc == history.train_acc and other.test_acc == history.test_acc
        saved = json.loads((tmp_path / "pool" / name / "history.json").read_text())
        assert saved["loss"] == history.loss
        assert (name, 25, 25) in reports and (name, 0, 25) in reports  # every run reported its start and its end


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_the_running_runs_saves_them_and_skips_the_rest(tmp_path, data_dir, workers):
    def progress(name, done, total):
        if done >= 30:  # Ctrl-C, as the caller's KeyboardInterrupt, while a run is under way
            raise KeyboardInterrupt

    histories, interrupted = train_runs(jobs(tmp_path, data_dir, 100_000), workers=workers, progress=progress)
    assert interrupted
    assert 1 <= len(histories) <= workers and "momentum" not in histories  # the third never started
    for name, history in histories.items():
        assert history.interrupted and len(history.loss) < 100_000
        saved = json.loads((tmp_path / name / "history.json").read_text())
        assert saved["stopped"] == history.stopped and saved["loss"] == history.loss
    assert not (tmp_path / "momentum").exists()
