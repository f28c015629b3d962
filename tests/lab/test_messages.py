"""The server's messages: why a run ended, read from its history by code, and an error without a code said as it is."""

from sgdlab.errors import SgdlabError
from sgdlab.lab.messages import ended_message, message_of
from sgdlab.training.history import History


def ended(stopped):
    history = History(iters_per_epoch=1)
    history.stopped = stopped
    return ended_message(history)


def test_why_a_run_ended_is_read_from_its_history_as_a_code_and_its_values():
    assert ended(None) is None  # finished: nothing to say beside its status
    assert ended("interrupted by SIGTERM after iteration 12") == {
        "code": "run.interrupted-by", "params": {"signal": "SIGTERM", "iteration": 12},
        "text": "interrupted by SIGTERM after iteration 12"}
    assert ended("interrupted by the lab page after iteration 7")["code"] == "run.stopped-by-page"
    assert ended("loss became inf at iteration 3")["params"] == {"loss": "inf", "iteration": 3}
    worded_otherwise = "stopped for a reason of its own"  # an sgdlab that wrote it otherwise: said as it is
    assert ended(worded_otherwise) == {"code": None, "params": {}, "text": worded_otherwise}


def test_an_error_without_a_code_is_said_in_its_own_words():
    assert message_of(SgdlabError("a problem", "its fix")) == {"code": None, "params": {},
                                                              "text": "a problem; its fix"}
