"""A run watched by the lab page: the same history and weights as unwatched, and the page's controls (pause,
one step, stop, a new rate) taking effect between iterations."""

import threading
import time

import numpy as np
import pytest

from sgdlab.errors import TrainingDiverged
from sgdlab.lab.catalog import LiveLabRun
from sgdlab.lab.feed import RunFeed
from sgdlab.lab.live import LiveRun
from sgdlab.lab.messages import MESSAGES, LabError, message_of
from sgdlab.runs.run import RunObserver, train_run
from sgdlab.training.config import TrainConfig

SETTINGS = {"iters": 300, "hidden_sizes": (20, 10), "dropout": 0.2, "batch_norm": True, "eval_every": 100,
            "optimizer": "adam", "lr": 0.001}


@pytest.fixture(scope="module")
def mnist(data_dir):
    from sgdlab.data import load_mnist

    return load_mnist(normalize=False, data_dir=data_dir)


def train_watched(tmp_path, mnist, live, name, **settings):
    _, history = train_run(TrainConfig(**{**SETTINGS, **settings}), out=tmp_path / name, data=mnist, observer=live,
                           plot=False)
    return history


class Recorder(RunObserver):
    """What the terminal would be told: here, the iterations made."""

    def __init__(self):
        self.iterations = []

    def iteration(self, iteration, loss):
        self.iterations.append(iteration)


def test_a_watched_run_equals_an_unwatched_one_bit_for_bit_and_publishes_it_all(tmp_path, mnist):
    _, plain = train_run(TrainConfig(**SETTINGS), out=tmp_path / "plain", data=mnist, plot=False)
    live = LiveRun(RunFeed("starting", {}, live=True))
    watched = train_watched(tmp_path, mnist, live, "watched")
    assert watched.loss == plain.loss and watched.test_acc == plain.test_acc
    with np.load(tmp_path / "plain" / "model.npz") as a, np.load(tmp_path / "watched" / "model.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    feed = live.feed
    assert feed.name == "watched" and feed.settings["optimizer"] == "adam" and feed.total_iterations == 300
    assert feed.loss.means == plain.loss
    assert [row["iteration"] for row in feed.evaluations] == [0, 100, 200, 300]
    assert feed.snapshot is not live.trainer.network  # a copy, made at the last evaluation
    np.testing.assert_array_equal(feed.snapshot.params["W1"], live.trainer.network.params["W1"])


def test_pause_holds_the_run_between_iterations_a_step_lets_one_through_and_stop_saves_it(tmp_path, mnist):
    recorder = Recorder()
    live = LiveRun(RunFeed("starting", {}, live=True), terminal=recorder)
    live.pause()  # before it starts: it makes its first update, then holds
    result = {}
    runner = threading.Thread(target=lambda: result.update(history=train_watched(tmp_path, mnist, live, "paused")))
    runner.start()
    _wait_until(lambda: recorder.iterations == [1])
    time.sleep(0.3)
    assert recorder.iterations == [1] and live.feed.status == "paused"
    live.step()
    _wait_until(lambda: recorder.iterations == [1, 2])
    time.sleep(0.2)
    assert recorder.iterations == [1, 2]  # one step, and paused again
    live.change_learning_rate(0.01)
    live.step()
    _wait_until(lambda: len(recorder.iterations) == 3)
    live.stop()
    runner.join(30)
    history = result["history"]
    assert history.stopped == "interrupted by the lab page after iteration 3"
    assert history.lr_changes == [{"iteration": 2, "lr": 0.01}]
    assert (tmp_path / "paused" / "checkpoint.npz").exists()  # saved as Ctrl-C saves it: it can be resumed


def test_the_page_says_paused_once_training_is_held_and_not_before(tmp_path, mnist):
    said = []

    class PausedAtTheFifth(RunObserver):
        def iteration(self, iteration, loss):
            if iteration == 5:  # the page's pause, arriving while training is between two updates
                live.pause()
                said.append(live.feed.status)

    live = LiveRun(RunFeed("starting", {}, live=True), terminal=PausedAtTheFifth())
    runner = threading.Thread(target=train_watched, args=(tmp_path, mnist, live, "held"))
    runner.start()
    try:
        _wait_until(lambda: live.feed.status == "paused")
        assert said == ["training"]  # not yet held: the fifth iteration is still being recorded
        assert live.feed.view()["iterations_done"] == 5  # the page's "paused" comes with where training stopped
    finally:
        live.stop()
        runner.join(30)


def test_resume_after_a_pause_runs_to_the_end(tmp_path, mnist):
    recorder = Recorder()
    live = LiveRun(RunFeed("starting", {}, live=True), terminal=recorder)
    live.pause()
    threading.Timer(0.3, live.resume).start()
    history = train_watched(tmp_path, mnist, live, "resumed", iters=50, eval_every=0)
    assert history.stopped is None and recorder.iterations == list(range(1, 51))


def _wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_rate_set_on_the_page_rescales_the_schedule_and_the_page_shows_the_rate_in_force(tmp_path, mnist):
    class PageSetsARate(RunObserver):
        def iteration(self, iteration, loss):
            if iteration == 150:  # as the page's POST does, between two iterations
                live.change_learning_rate(0.01)

    live = LiveRun(RunFeed("starting", {}, live=True), terminal=PageSetsARate())
    history = train_watched(tmp_path, mnist, live, "cosine", lr_schedule="cosine")
    rates, changes = live.trainer.rates, history.lr_changes
    assert changes == [{"iteration": 150, "lr": 0.01}] and live.feed.settings["lr_schedule"] == "cosine"
    assert rates.of_update(150, changes) == 0.01  # the rate set, then the schedule's fall from there
    assert live.feed.learning_rate == rates.of_update(299, changes) == pytest.approx(
        0.01 * rates.factor(299) / rates.factor(150), rel=1e-12)
    assert history.lr == [0.001, rates.of_update(99), 0.01 * rates.factor(199) / rates.factor(150),
                          live.feed.learning_rate]
    assert [row["lr"] for row in live.feed.evaluations] == history.lr


def test_a_rate_set_while_the_data_still_loads_is_refused_with_its_reason():
    run = LiveLabRun("live", LiveRun(RunFeed("starting", {}, live=True)), data=None)  # no trainer yet
    with pytest.raises(LabError) as refused:  # (it was an AttributeError: the server's 500)
        run.control("lr", 0.1)
    assert refused.value.code == "control.starting" and "has not started yet" in str(refused.value)


def test_a_diverged_run_tells_the_page_its_rate_folder_and_way_back_by_their_values(tmp_path, mnist):
    """The page says a diverged run as the command line does, in either language: by its code, with the values."""
    live = LiveRun(RunFeed("starting", {}, live=True))
    with pytest.raises(TrainingDiverged) as raised:  # an evaluation first, so a checkpoint to continue from
        train_run(TrainConfig(iters=50, hidden_size=8, lr=1e30, activation="relu"), out=tmp_path / "run", data=mnist,
                  observer=live, plot=False)
    live.diverged(raised.value)  # as `sgdlab train --live` and a notebook's LiveLab do
    said, history = live.feed.message, raised.value.history
    assert live.feed.status == "diverged" and said["code"] == "training.diverged-resumable"
    loss, iteration = said["params"]["loss"], said["params"]["iteration"]
    assert said["params"] == {"loss": loss, "iteration": iteration, "lr": "1e+30", "folder": str(tmp_path / "run")}
    assert history.stopped == f"loss became {loss} at iteration {iteration}"
    assert said["text"] == str(raised.value) == MESSAGES[said["code"]].format(**said["params"])
    assert said["text"].endswith(f"sgdlab train --resume {tmp_path / 'run'} --lr X)")


def test_a_diverged_run_without_a_checkpoint_says_where_it_was_recorded_but_not_how_to_continue_it(tmp_path):
    diverged = TrainingDiverged("training.diverged", loss="inf", iteration=3, lr="0.5")
    assert str(diverged) == ("the loss became inf at iteration 3: training diverged; try a smaller learning rate "
                             "than 0.5 (--lr)")  # as the trainer says it
    said = message_of(diverged.recorded_in(tmp_path, resumable=False))
    assert said == {"code": "training.diverged-recorded",
                    "params": {"loss": "inf", "iteration": 3, "lr": "0.5", "folder": str(tmp_path)},
                    "text": f"{diverged}; what was recorded is in {tmp_path}"}
