"""The textbook-gradient estimate `sgdlab train --grad numerical` prints, on a clock that only the work moves."""

import numpy as np
import pytest

from sgdlab.engine import timing
from sgdlab.nn.network import TwoLayerNet


class WorkClock:
    """A perf_counter that advances only by the simulated cost of the work timed."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def batch(n=7, n_in=6, n_classes=3):
    rng = np.random.default_rng(0)
    return rng.random((n, n_in)), rng.integers(0, n_classes, n)


def test_the_textbook_estimate_is_what_the_textbook_gradient_would_cost(monkeypatch):
    clock = WorkClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    network = TwoLayerNet(6, 2, 3, rng=0)
    real_loss = network.loss
    losses = []

    def loss_costing_a_tenth_of_a_second(x, t, train_flg=False):
        clock.now += 0.1
        losses.append(1)
        return real_loss(x, t, train_flg)

    monkeypatch.setattr(network, "loss", loss_costing_a_tenth_of_a_second)
    network.numerical_gradient(*batch())
    textbook_seconds = 0.1 * len(losses)  # what the textbook method really spends on losses
    assert timing.estimate_textbook_gradient_seconds(network, *batch(), repeats=5) == pytest.approx(textbook_seconds)


def test_a_containers_room_counts_its_droppable_page_cache_as_free(tmp_path, monkeypatch):
    from sgdlab.engine import threads

    monkeypatch.setattr(threads, "CGROUP", tmp_path)
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("900000\n")  # most of it the MNIST files just read, in the page cache
    assert threads._cgroup_room() == 100000
    (tmp_path / "memory.stat").write_text("anon 300000\nfile 600000\ninactive_file 500000\n")
    assert threads._cgroup_room() == 600000
    (tmp_path / "memory.max").write_text("max\n")
    assert threads._cgroup_room() is None
