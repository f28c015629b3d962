"""The validation rows held out of the training set."""

import numpy as np
import pytest

from sgdlab.data.splits import held_out_rows


@pytest.mark.parametrize("count, held", [(500, 100), (10, 2), (7, 1), (3, 3)])
def test_the_rows_asked_are_held_out_and_the_rest_trained_on(count, held):
    train, validation = held_out_rows(count, held, np.random.default_rng(0))
    assert len(validation) == held and len(train) == count - held
    assert np.array_equal(np.sort(np.concatenate([train, validation])), np.arange(count))  # disjoint, complete
    assert np.all(np.diff(train) > 0) and np.all(np.diff(validation) > 0)  # each in the original order


def test_the_seed_decides_which_rows():
    first = held_out_rows(1000, 100, np.random.default_rng(5))[1]
    assert np.array_equal(first, held_out_rows(1000, 100, np.random.default_rng(5))[1])
    assert not np.array_equal(first, held_out_rows(1000, 100, np.random.default_rng(6))[1])
    assert first.max() > 500  # drawn from the whole set, not its first rows
