"""Errors a user can act on.

Every exception sgdlab raises on purpose derives from `SgdlabError`, so the
command line can print its one-line message instead of a traceback.
"""


class SgdlabError(Exception):
    """A problem with the user's input, files or settings; the message says how to fix it."""


class ConfigError(SgdlabError, ValueError):
    """A setting is out of range or inconsistent (the command line exits with 2)."""


class DataError(SgdlabError):
    """A data file is missing, truncated, corrupted or not what it claims to be."""


class ModelFileError(SgdlabError):
    """A model file is not one of sgdlab's, or does not match what is asked of it."""


class TrainingDiverged(SgdlabError):
    """The loss became NaN or infinite; `history` keeps what was recorded until then."""

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history
