"""One background thread, or none: the same results, computed there or here."""

import threading

import pytest

from sgdlab.workers import BackgroundWorker


def where(tag):
    return tag, threading.current_thread().name


@pytest.mark.parametrize("background", [True, False])
def test_submit_and_defer_give_the_functions_result(background):
    worker = BackgroundWorker("test", background)
    try:
        submitted = worker.submit(where, "a")
        deferred = worker.defer(where, "b")
        expected_thread = "sgdlab-test" if background else threading.current_thread().name
        assert submitted.result()[0] == "a" and submitted.result()[1].startswith(expected_thread)
        assert deferred()[0] == "b" and deferred()[1].startswith(expected_thread)
    finally:
        worker.close()


def test_without_a_thread_submit_runs_now_and_defer_when_asked():
    calls = []
    worker = BackgroundWorker("test", background=False)
    done = worker.submit(calls.append, "submitted")
    assert done.done() and calls == ["submitted"]
    later = worker.defer(calls.append, "deferred")
    assert calls == ["submitted"]
    later()
    assert calls == ["submitted", "deferred"]


def test_close_leaves_no_thread():
    worker = BackgroundWorker("closing", background=True)
    worker.submit(sum, [1, 2]).result()
    worker.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("sgdlab-closing")]
