"""sgdlab: neural networks trained from scratch in NumPy, as in chapter 4 of "Deep Learning from Scratch".

The book's training loop, in a few lines::

    from sgdlab import Trainer, TrainConfig, load_mnist

    (x_train, t_train), (x_test, t_test) = load_mnist()
    trainer = Trainer.from_config(TrainConfig(iters=10_000, batch_size=100, lr=0.1))
    history = trainer.fit(x_train, t_train, x_test, t_test)
    print(history.test_acc[-1])

The names below are imported on first use, so that `sgdlab --help` and
scripts that need one piece do not wait for all the others.
"""

import importlib
import importlib.util

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "checkpoint", "save_model": "checkpoint",
    "TrainConfig": "config",
    "load_mnist": "datasets",
    "ConfigError": "errors", "DataError": "errors", "ModelFileError": "errors", "SgdlabError": "errors",
    "TrainingDiverged": "errors",
    "cross_entropy_error": "functions", "numerical_diff": "functions", "relu": "functions",
    "sigmoid": "functions", "softmax": "functions",
    "numerical_gradient": "gradient",
    "History": "history",
    "Affine": "layers", "Relu": "layers", "Sigmoid": "layers", "SoftmaxWithLoss": "layers",
    "MultiLayerNet": "network", "TwoLayerNet": "network",
    "SGD": "optimizers",
    "Trainer": "trainer",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: sgdlab.functions, ...
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'sgdlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
