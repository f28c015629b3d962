"""Errors a user can act on.

Every exception sgdlab raises on purpose derives from `SgdlabError`, so the
command line can print its one-line message instead of a traceback.
"""

import copy


class SgdlabError(Exception):
    """A problem with the user's input, files or settings; the message says how to fix it: what is wrong
    (`problem`) and, where that depends on who asks, what to do (`advice`), which a caller may replace."""

    def __init__(self, problem, advice=None):
        super().__init__(*((problem, advice) if advice else (problem,)))

    @property
    def problem(self):
        return str(self.args[0]) if self.args else ""

    @property
    def advice(self):
        return self.args[1] if len(self.args) > 1 else None

    def with_advice(self, advice):
        """The same error, with `advice` instead of its own: a run trained as a sweep's trial is continued by
        continuing the sweep."""
        other = copy.copy(self)
        other.args = (self.problem, advice)
        return other

    def __str__(self):
        return f"{self.problem}; {self.advice}" if self.advice else self.problem


class CodedError(SgdlabError):
    """An error whose message is an entry of a table of messages (`messages[code]`, `{name}` where each of its
    `values` goes), so that a reader in another language (the lab page) can say it by its code; in English, its
    message is the entry filled in."""

    def __init__(self, messages, code, **values):
        super().__init__(messages[code].format(**values))
        self.code, self.values = code, values

    def __reduce__(self):
        """Copied or pickled (an error a Dask worker sends back) as it is: its `args` are its message, not the
        arguments its class is made with."""
        return _restored, (type(self), self.args, self.__dict__)


def _restored(cls, args, state):
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(SgdlabError, ValueError):
    """A setting is out of range or inconsistent (the command line exits with 2)."""


class DataError(SgdlabError):
    """A data file is missing, truncated, corrupted or not what it claims to be."""


class ModelFileError(SgdlabError):
    """A model file is not one of sgdlab's, or does not match what is asked of it."""


class ParamsFileError(ConfigError):
    """A parameter file in the book's format (a pickle) refused: not a dict of float arrays, or not the weights of
    the net named beside it (the command line exits with 2, as for arguments that do not go together)."""


DIVERGED = "the loss became {loss} at iteration {iteration}: training diverged; try a smaller learning rate"
DIVERGED_AT_RATE = f"{DIVERGED} than {{lr}} (--lr)"
RECORDED = f"{DIVERGED_AT_RATE}; what was recorded is in {{folder}}"
DIVERGENCE_ERRORS = {  # how a diverged run is said: by the trainer, then with the folder its run was saved in (the
    "training.diverged": DIVERGED_AT_RATE,  # lab page says these in its language, by their codes)
    "training.diverged-recorded": RECORDED,
    "training.diverged-resumable": (f"{RECORDED} (to continue it from its last checkpoint at a smaller rate: "
                                    "sgdlab train --resume {folder} --lr X)"),
}


class TrainingDiverged(CodedError):
    """The loss became NaN or infinite: one of DIVERGENCE_ERRORS; `history` keeps what was recorded until then."""

    def __init__(self, code, history=None, **values):
        super().__init__(DIVERGENCE_ERRORS, code, **values)
        self.history = history

    def recorded_in(self, folder, resumable):
        """The same divergence, naming the folder its run was saved in (and, if `resumable`, how to continue it
        from its checkpoint there)."""
        code = "training.diverged-resumable" if resumable else "training.diverged-recorded"
        return TrainingDiverged(code, self.history, **{**self.values, "folder": str(folder)})
