"""The engine's threads: its pool's workers treat floating-point errors as the thread that gave them work does,
and the training step's BLAS runs on one thread, in every BLAS library its layers call."""

import json
import os
import subprocess
import sys
import textwrap
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


def test_one_blas_thread_covers_the_blas_a_convolution_loads_later():
    # A fresh process: SciPy's BLAS (the convolution's shifted products) is loaded only when a workspace is made,
    # after the limit is set, as the trainer makes its step inside the limit.
    script = textwrap.dedent("""
        import json

        import numpy as np
        from threadpoolctl import threadpool_info
        from sgdlab.engine.threads import one_blas_thread
        from sgdlab.nn.layers.convolution import Convolution

        with one_blas_thread():
            layer = Convolution(np.ones((4, 8, 3, 3)), np.zeros(4), 1, 1)
            work = layer.workspace(2, (8, 6, 6), np.float64, True)
            assert work["shifted"], work
            print(json.dumps([(pool["filepath"], pool["num_threads"]) for pool in threadpool_info()
                              if pool["user_api"] == "blas"]))
    """)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "", "OMP_NUM_THREADS": ""}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    pools = json.loads(result.stdout)
    assert any("scipy" in path for path, _ in pools), pools
    assert all(threads == 1 for _, threads in pools), pools
