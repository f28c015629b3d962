"""How long a numerical gradient takes, measured before a run so that `sgdlab train` can say so."""

import time

import numpy as np

from ..nn.layers import frozen_training
from .perturbation import numerical_gradient_fast


def estimate_textbook_gradient_seconds(network, x_batch, t_batch, repeats=5):
    """Seconds one textbook numerical gradient would take: two training-mode loss evaluations per parameter."""
    x_batch = x_batch.astype(np.float64, copy=False)
    with frozen_training(network.layers):  # as the textbook's: the running statistics stay as they are
        network.loss(x_batch, t_batch, train_flg=True)  # warm-up: the first pass pays for allocation and threads
        started = time.perf_counter()
        for _ in range(repeats):
            network.loss(x_batch, t_batch, train_flg=True)
    per_loss = (time.perf_counter() - started) / repeats
    return 2 * network.num_params * per_loss


def measure_numerical_gradient_seconds(network, x_batch, t_batch, repeats=3):
    """Seconds one numerical gradient takes here, as training computes it (the fastest of a few runs)."""
    x_batch = x_batch.astype(np.float64, copy=False)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        numerical_gradient_fast(network, x_batch, t_batch)
        times.append(time.perf_counter() - started)
    return min(times)
