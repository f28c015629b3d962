"""The hidden activations, one module each: a module's name is its activation's name.

Each module defines its activation once (see `_definition.Activation`):
the book's function, its derivative, and the forms the fast paths build on.
Adding one is adding a module here; the configuration, the command line,
the layers, the training step, the fast numerical gradient and the model
files all find it by its name. Names are read from the file names, so
listing them (for `sgdlab --help`) imports no NumPy.
"""

import functools
import importlib
import pkgutil

from ...ranges import check_choice


@functools.cache
def activation_names():
    """The names of every activation, in alphabetical order."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_")))


def get_activation(name):
    """The `Activation` called `name`; a `ConfigError` lists the others."""
    return importlib.import_module(f".{check_choice('activation', name, activation_names())}", __name__).ACTIVATION
