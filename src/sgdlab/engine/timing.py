"""How long the textbook's numerical gradient would take, so that `sgdlab train` can compare it with its own."""

import time

import numpy as np

from ..nn.layers import frozen_training


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
