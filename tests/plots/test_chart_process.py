import os
import time
import sys

import pytest
from PIL import Image

from sgdlab.plots.chart_process import ChartProcess
from sgdlab.training.history import History


@pytest.fixture
def history():
    history = History(iters_per_epoch=10)
    for i, (train, test) in enumerate([(0.1, 0.1), (0.8, 0.78), (0.9, 0.87)]):
        history.record_evaluation(10 * i, train, test, float(i))
    history.loss = [2.3 - 0.08 * i for i in range(25)]
    return history


def assert_charts_drawn(paths, folder):
    assert [p.name for p in paths] == ["accuracy.png", "loss.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["accuracy.png", "loss.png"]  # no temporary files left
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300


def test_the_child_process_draws_both_charts(history, tmp_path):
    charts = ChartProcess()
    paths = charts.plot_history(history, tmp_path)
    assert charts.process.returncode == 0  # drawn by the child, not by the fallback
    assert_charts_drawn(paths, tmp_path)


def test_charts_are_drawn_here_when_the_child_fails(history, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a child that exits at once with status 1
    charts = ChartProcess()
    paths = charts.plot_history(history, tmp_path)
    assert charts.process.returncode == 1
    assert_charts_drawn(paths, tmp_path)


def test_no_child_when_the_system_cannot_start_one(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert ChartProcess.start() is None


def test_an_unused_child_ends_when_closed():
    charts = ChartProcess()
    charts.close()
    assert charts.process.returncode == 0


def test_the_child_is_out_of_reach_of_ctrl_c():
    charts = ChartProcess()
    try:
        # Its own process group, not the terminal's foreground one: the terminal's SIGINT misses it.
        assert os.getpgid(charts.process.pid) != os.getpgid(0)
        # The trainer's session, so that its low priority counts against the trainer's own processes.
        assert os.getsid(charts.process.pid) == os.getsid(0)
    finally:
        charts.close()


def test_the_child_runs_at_the_lowest_priority():
    if os.getpriority(os.PRIO_PROCESS, 0) >= 19:
        pytest.skip("the tests themselves run at the lowest priority: the child's could not be told apart")
    charts = ChartProcess()
    try:
        deadline = time.monotonic() + 10
        while os.getpriority(os.PRIO_PROCESS, charts.process.pid) != 19 and time.monotonic() < deadline:
            time.sleep(0.01)  # the child lowers its own priority as it starts
        assert os.getpriority(os.PRIO_PROCESS, charts.process.pid) == 19
    finally:
        charts.close()
