"""sgdlab's errors survive what happens to exceptions on their way to the user: a copy (`with_advice`) and a
pickle (a Dask worker sends a trial's error back), each keeping its message, its code and values, and what it
carries."""

import copy
import pickle

import pytest

from sgdlab.data.digit_images import ImageError
from sgdlab.errors import ConfigError, TrainingDiverged
from sgdlab.training.history import History


def diverged():
    history = History(iters_per_epoch=600)
    history.loss.extend([2.3, 2.1])
    return TrainingDiverged("training.diverged", history, loss="nan", iteration=3, lr="10.0").recorded_in(
        "runs/x", resumable=True)


@pytest.mark.parametrize("make", [diverged, lambda: ImageError("image.unreadable", name="a.txt", problem="truncated"),
                                  lambda: ConfigError("the learning rate must be positive")])
@pytest.mark.parametrize("carry", [copy.copy, lambda error: pickle.loads(pickle.dumps(error))])
def test_an_error_copied_or_pickled_says_the_same_and_carries_the_same(make, carry):
    error = make()
    again = carry(error)
    assert type(again) is type(error) and str(again) == str(error) and again.args == error.args
    assert getattr(again, "code", None) == getattr(error, "code", None)
    assert getattr(again, "values", None) == getattr(error, "values", None)
    if isinstance(error, TrainingDiverged):
        assert again.history.loss == [2.3, 2.1]


def test_a_coded_error_takes_other_advice():
    error = diverged()
    advised = error.with_advice("continue the sweep instead: sgdlab sweep --resume S")
    assert str(advised) == f"{error}; continue the sweep instead: sgdlab sweep --resume S"
    assert advised.code == error.code and advised.values == error.values
