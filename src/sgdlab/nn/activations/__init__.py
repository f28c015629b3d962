"""The hidden activations, one module each: a module's name is its activation's name.

Each module defines its activation once (see `_definition.Activation`):
the book's function, its derivative, and the forms the fast paths build on.
Adding one is adding a module here; the configuration, the command line,
the layers, the training step, the fast numerical gradient and the model
files all find it by its name. Names are read from the file names, so
listing them (for `sgdlab --help`) imports no NumPy.
"""

import importlib
import pkgutil

from ...errors import ConfigError


def activation_names():
    """The names of every activation, in alphabetical order."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_")))


def get_activation(name):
    """The `Activation` called `name`; a `ConfigError` lists the others."""
    if name not in activation_names():
        raise ConfigError(f"unknown activation {name!r}: use one of {', '.join(activation_names())}")
    return importlib.import_module(f".{name}", __name__).ACTIVATION
