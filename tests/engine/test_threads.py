"""The engine's threads: its pool's workers treat floating-point errors as the thread that gave them work does,
and the training step's BLAS runs on one thread, in every BLAS library its layers call."""

import json
import os
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest
import threadpoolctl

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


def test_one_blas_thread_covers_the_blas_a_convolution_loads_later_and_restores_it():
    # A fresh process: SciPy's BLAS (the convolution's shifted products) is loaded only when the step's workspaces
    # are made, after the limit is set, as the trainer makes its step inside the limit.
    script = textwrap.dedent("""
        import json
        import sys

        import numpy as np
        from threadpoolctl import threadpool_info
        from sgdlab.engine.backprop import BackpropStep
        from sgdlab.engine.threads import one_blas_thread
        from sgdlab.nn.network import ConvNet

        def blas_threads():
            return [(pool["filepath"], pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]

        network = ConvNet((1, 6, 6), [{"type": "convolution", "filter_num": 8, "filter_size": 3, "pad": 1},
                                      {"type": "relu"},
                                      {"type": "convolution", "filter_num": 8, "filter_size": 3, "pad": 1}], 3)
        assert "scipy.linalg" not in sys.modules
        before = blas_threads()
        with one_blas_thread():
            BackpropStep(network, 4)
            inside = blas_threads()
        print(json.dumps({"before": before, "inside": inside, "after": blas_threads()}))
    """)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": ""}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    pools = json.loads(result.stdout)
    if len(pools["inside"]) == len(pools["before"]):
        pytest.skip("SciPy shares NumPy's BLAS here: no library is loaded inside the limit")
    assert all(threads == 1 for _, threads in pools["inside"]), pools
    assert all(threads == 2 for _, threads in pools["after"]), pools  # each library as it was before the limit


def test_one_blas_thread_nested_sets_no_limit_again(monkeypatch):
    """A training step holds the limit itself; inside a run that holds it already, each step pays nothing."""
    from sgdlab.engine import threads

    set_limits = []
    real = threads.threadpool_limits
    monkeypatch.setattr(threads, "threadpool_limits", lambda **kw: set_limits.append(kw) or real(**kw))
    blas_threads = lambda: {pool["num_threads"] for pool in threadpoolctl.threadpool_info()  # noqa: E731
                            if pool["user_api"] == "blas"}
    with threads.one_blas_thread():
        for _ in range(3):
            with threads.one_blas_thread():
                assert blas_threads() == {1}
        assert blas_threads() == {1} and len(set_limits) == 1


def test_a_pass_made_inside_the_limit_asks_for_no_limit_again_unless_a_module_was_imported(monkeypatch):
    """Each evaluation makes its forward pass inside the run's limit: it looks through the loaded libraries only
    where an import since may have loaded a BLAS library."""
    from sgdlab.engine import threads
    from sgdlab.engine.forward import ForwardPass
    from sgdlab.nn.network import MultiLayerNet

    set_limits = []
    real = threads.threadpool_limits
    monkeypatch.setattr(threads, "threadpool_limits", lambda **kw: set_limits.append(kw) or real(**kw))
    network = MultiLayerNet(784, [20], 10)
    imported = dict(sys.modules)  # the modules the limit sees: none imported meanwhile by another thread
    monkeypatch.setattr(threads, "sys", types.SimpleNamespace(modules=imported))
    with threads.one_blas_thread():
        for _ in range(3):
            ForwardPass(network, 100)
            ForwardPass.rows_within(network, 1 << 20)
        assert len(set_limits) == 1
        imported["a_module_imported_since"] = types.ModuleType("a_module_imported_since")
        ForwardPass(network, 100)
        assert len(set_limits) == 2
