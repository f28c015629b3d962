"""The engine's thread pool: its workers treat floating-point errors as the thread that gave them work does."""

import warnings

import numpy as np
import pytest

from sgdlab.engine.threads import CallersErrorsPool


def divide_by_zero(_):
    return np.float64(1.0) / np.float64(0.0)


def test_workers_keep_the_callers_silence_and_its_strictness():
    with CallersErrorsPool(max_workers=2) as pool:
        with np.errstate(divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning from a worker would fail here
            assert list(pool.map(divide_by_zero, range(4))) == [np.inf] * 4
        with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
            list(pool.map(divide_by_zero, range(4)))
