"""The record a run publishes for the lab page: the loss kept bounded as exact bucket means, and the views
that give each page what it lacks."""

import threading

import numpy as np
import pytest

from sgdlab.lab.feed import PACE_SAMPLES, LossSeries, Pace, RunFeed
from sgdlab.training.history import History


@pytest.mark.parametrize("iterations", [1, 4095, 4096, 10_000, 1_000_000])
def test_the_loss_of_any_run_is_kept_as_at_most_4096_means_of_equal_buckets(iterations):
    losses = np.random.default_rng(0).random(iterations)
    series = LossSeries.of(losses.tolist())
    assert len(series.means) <= 4096
    width = series.width
    assert width == 1 or len(series.means) >= 2048  # widened only when full
    expected = losses[:len(series.means) * width].reshape(-1, width).mean(axis=1)  # an independent bucketing
    np.testing.assert_allclose(series.means, expected, rtol=1e-12)
    assert iterations - len(series.means) * width < width  # only the bucket being filled is not a mean yet
    assert series.count == iterations
    rest = losses[len(series.means) * width:]  # the bucket being filled, ending at the latest iteration
    assert series.open_mean == (pytest.approx(rest.mean(), rel=1e-12) if len(rest) else None)


def history_with(n_losses, evaluations):
    history = History(iters_per_epoch=10, loss=[1.0] * n_losses)
    for iteration in evaluations:
        history.record_evaluation(iteration, 0.5, 0.4, 1.0, lr=0.1, losses={"train_loss": 1.5, "test_loss": 1.6},
                                  weight_percentiles={"W1": [-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4]})
    return history


def test_a_view_gives_a_page_only_what_it_lacks_and_everything_after_the_buckets_merge():
    feed = RunFeed("run", {"lr": 0.1})
    for loss in (3.0, 2.0, 1.0):
        feed.add_loss(loss)
    feed.add_evaluation(history_with(3, [0]), snapshot="network")
    first = feed.view()
    assert first["loss"] == {"width": 1, "start": 0, "values": [3.0, 2.0, 1.0], "open": None}
    assert first["evaluations"]["rows"] == [{"iteration": 0, "epoch": 0.0, "train_acc": 0.5, "test_acc": 0.4,
                                             "seconds": 1.0, "val_acc": None, "lr": 0.1, "train_loss": 1.5,
                                             "test_loss": 1.6, "val_loss": None, "weight_percentiles":
                                             {"W1": [-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4]}}]
    feed.add_loss(0.5)
    later = feed.view(first["generation"], 1, 3, 1)
    assert later["loss"]["values"] == [0.5] and later["loss"]["start"] == 3 and later["evaluations"]["rows"] == []
    assert feed.view(first["generation"], 2, 3, 1)["loss"]["start"] == 0  # the page's buckets are out of date
    feed.replace(LossSeries.of([1.0, 2.0]), [], None, 2, "finished", "", [])
    again = feed.view(first["generation"], 1, 4, 1)  # a record replaced: all of it again
    assert again["loss"] == {"width": 1, "start": 0, "values": [1.0, 2.0], "open": None}
    assert again["status"] == "finished"


def test_a_page_waiting_for_a_change_is_called_once_when_there_is_one():
    feed = RunFeed("run", {})
    seen = feed.version
    woken = []
    feed.call_on_change(seen, lambda: woken.append(feed.version))
    cancelled = feed.call_on_change(seen, lambda: woken.append("cancelled"))
    cancelled()
    assert woken == []
    timer = threading.Thread(target=feed.add_loss, args=(1.0,))
    timer.start()
    timer.join()
    feed.add_loss(2.0)
    assert woken == [seen + 1]  # once, from the thread that made the change
    feed.call_on_change(seen, lambda: woken.append("at once"))  # a change it has not seen: called now
    assert woken == [seen + 1, "at once"]


def test_losses_near_the_largest_float_make_finite_means():
    series = LossSeries.of([1.7e308] * 11, limit=4)  # buckets of two, then four, iterations
    assert series.width == 4 and series.means == [pytest.approx(1.7e308)] * 2
    assert series.open_mean == pytest.approx(1.7e308)  # the three of the bucket being filled


def test_iterations_per_second_are_measured_over_the_recent_window_and_not_while_paused():
    now = [0.0]
    feed = RunFeed("run", {})
    feed.pace = Pace(clock=lambda: now[0])
    feed.update(status="training")
    for _ in range(300):  # 10 iterations a second for 30 s, then 50 a second for 10 s
        now[0] += 0.1
        feed.add_loss(1.0)
    assert feed.view()["iterations_per_second"] == pytest.approx(10, rel=0.06)
    for _ in range(500):
        now[0] += 0.02
        feed.add_loss(1.0)
    assert feed.view()["iterations_per_second"] == pytest.approx(50, rel=0.06)  # the slow start forgotten
    assert len(feed.pace.samples) <= PACE_SAMPLES + 2
    feed.update(status="paused")
    now[0] += 60
    assert feed.view()["iterations_per_second"] is None
    feed.update(status="training")  # resumed: measured afresh, the pause not counted
    now[0] += 0.5
    feed.add_loss(1.0)
    assert feed.view()["iterations_per_second"] is None  # less than a second measured
    for _ in range(20):
        now[0] += 0.1
        feed.add_loss(1.0)
    assert feed.view()["iterations_per_second"] == pytest.approx(10, rel=0.06)
