"""The numerical-gradient estimates `sgdlab train --grad numerical` prints, against what they estimate."""

import numpy as np

from sgdlab.engine import timing
from sgdlab.nn.network import TwoLayerNet


def batch(n=7, n_in=6, n_classes=3):
    rng = np.random.default_rng(0)
    return rng.random((n, n_in)), rng.integers(0, n_classes, n)


def test_the_textbook_estimate_counts_the_losses_the_textbook_gradient_computes(monkeypatch):
    network = TwoLayerNet(6, 2, 3, rng=0)
    calls = []
    real_loss = network.loss
    monkeypatch.setattr(network, "loss", lambda x, t: calls.append(1) or real_loss(x, t))
    network.numerical_gradient(*batch())
    textbook_losses = len(calls)
    calls.clear()
    seconds = timing.estimate_textbook_gradient_seconds(network, *batch(), repeats=5)
    assert textbook_losses == 2 * network.num_params  # the estimate's model: two losses per parameter
    assert len(calls) == 1 + 5  # a warm-up, then the timed losses
    assert seconds > 0


def test_the_measured_time_is_of_the_gradient_training_computes(monkeypatch):
    network = TwoLayerNet(6, 2, 3, rng=0)
    computed = []
    real = timing.numerical_gradient_fast
    monkeypatch.setattr(timing, "numerical_gradient_fast", lambda *args: computed.append(args[0]) or real(*args))
    assert timing.measure_numerical_gradient_seconds(network, *batch(), repeats=3) > 0
    assert computed == [network] * 3
