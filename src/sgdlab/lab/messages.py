"""What the lab's server says to a user, each message once: its code, and its English text with `{name}` where
each of its values goes.

The server sends a message as its code, its values and its English text
(`message`; an error answer carries them as `code`, `params` and `error`).
The page says a code it knows in its own language (static/i18n.json has the
entry `server.<code>` for each, with the same values to fill in: a test holds
the two tables together) and the English text of one it does not know; a
program reading the API has the text.
"""

import re

from ..data.digit_images import IMAGE_ERRORS
from ..errors import DIVERGED, DIVERGENCE_ERRORS, CodedError
from ..ranges import POSITIVE_NUMBER
from ..training.history import INTERRUPTED

STOPPED_BY_PAGE = "the lab page"  # how history.stopped names the page's stop ("interrupted by the lab page ...")

MESSAGES = {
    # a control refused
    "control.not-a-request": "not a control request: {problem}",
    "control.not-live": ("{run} is not trained by this lab: only a run started with 'sgdlab train --live' can be "
                         "paused, stepped, stopped or given a new rate"),
    "control.ended": "{run} has ended ({status}): there is nothing to control",
    "control.no-rate": "type a learning rate first: a positive number, such as 0.01",
    "control.starting": "training has not started yet: set the learning rate once it has",
    "control.bad-rate": f"the learning rate must be {POSITIVE_NUMBER.description}, got {{rate}}",
    "control.unknown": "unknown control {action}: one of {actions}",
    # a digit's image refused
    "upload.too-large": "the image is larger than {megabytes} MB: scale it down first",
    "upload.no-network": "{run} has no MNIST network to read a digit with yet",
    **IMAGE_ERRORS,
    # why a run ended early, as its history says
    "run.stopped-by-page": "interrupted by the lab page after iteration {iteration}",
    "run.interrupted-by": "interrupted by {signal} after iteration {iteration}",
    "run.interrupted": "interrupted after iteration {iteration}",
    "run.diverged": DIVERGED,  # as a finished run's history says it: without the rate, which it does not keep
    **DIVERGENCE_ERRORS,  # a live run's divergence, as the command line says it (with the rate and the folder)
    "run.unreadable": "cannot read the run's files: {problem}",
    # a sweep's, and the server's
    "sweep.unreadable": "cannot read the sweep's results: {problem}",
    "sweep.none": "these runs are not a sweep's",
    "run.none": "no such run: {run}",
    "streams.too-many": "too many pages open ({streams} streams follow these runs already): close some and reload",
}

INTERRUPTED_AT = re.compile(rf"{INTERRUPTED}(?: by (?P<by>.+))? after iteration (?P<iteration>\d+)")
DIVERGED_AT = re.compile(r"loss became (?P<loss>\S+) at iteration (?P<iteration>\d+)")  # as the trainer words it


class LabError(CodedError):
    """A request the lab refuses: one of MESSAGES."""

    def __init__(self, code, **values):
        super().__init__(MESSAGES, code, **values)


def message(code, **values):
    """The message `code` with `values`, as the server sends it: {"code", "params", "text"}."""
    return {"code": code, "params": values, "text": MESSAGES[code].format(**values)}


def message_of(error):
    """What the page is told of `error` (an `SgdlabError`): its message by code where it has one of MESSAGES',
    else its English text alone (code None)."""
    code = getattr(error, "code", None)
    return message(code, **error.values) if code in MESSAGES else uncoded(str(error))


def uncoded(text):
    """`text` as a message without a code: the page shows it as it is."""
    return {"code": None, "params": {}, "text": text}


def ended_message(history):
    """Why the run of `history` ended early (None if it did not): its `stopped`, by code."""
    said = history.stopped
    if said is None:
        return None
    if (found := INTERRUPTED_AT.fullmatch(said)) is not None:
        iteration, by = int(found["iteration"]), found["by"]
        if by is None:
            return message("run.interrupted", iteration=iteration)
        if by == STOPPED_BY_PAGE:
            return message("run.stopped-by-page", iteration=iteration)
        return message("run.interrupted-by", signal=by, iteration=iteration)
    if (found := DIVERGED_AT.fullmatch(said)) is not None:
        return message("run.diverged", loss=found["loss"], iteration=int(found["iteration"]))
    return uncoded(said)  # worded otherwise (by an older sgdlab): said as it is
