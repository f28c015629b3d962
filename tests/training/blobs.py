"""Small data sets for the trainer's tests: separable blobs that a tiny net learns in a few epochs."""

import numpy as np


def blobs(n, seed, n_in=6, n_classes=3):
    """`n` samples of `n_in` features around `n_classes` well-separated centres, and their labels."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, n_classes, n)
    return np.eye(n_classes, n_in)[t] * 3.0 + rng.standard_normal((n, n_in)) * 0.5, t
