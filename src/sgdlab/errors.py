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


class ConfigError(SgdlabError, ValueError):
    """A setting is out of range or inconsistent (the command line exits with 2)."""


class DataError(SgdlabError):
    """A data file is missing, truncated, corrupted or not what it claims to be."""


class ModelFileError(SgdlabError):
    """A model file is not one of sgdlab's, or does not match what is asked of it."""


class ParamsFileError(ConfigError):
    """A parameter file in the book's format (a pickle) refused: not a dict of float arrays, or not the weights of
    the net named beside it (the command line exits with 2, as for arguments that do not go together)."""


class TrainingDiverged(SgdlabError):
    """The loss became NaN or infinite; `history` keeps what was recorded until then."""

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history
