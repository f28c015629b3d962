"""A validation set held out of the training images, chosen by the run's seed.

The book's hyperparameter search (chapter 6.5) tunes on images taken out
of the training set, so that the test set never chooses anything.
"""

import numpy as np


def held_out_rows(count, validation_count, rng):
    """(training rows, validation rows) of `count` images, `validation_count` of them drawn by `rng`.

    Both are sorted, so each keeps the images in their original order.
    """
    chosen = np.zeros(count, dtype=bool)
    chosen[rng.permutation(count)[:validation_count]] = True
    return np.flatnonzero(~chosen), np.flatnonzero(chosen)
