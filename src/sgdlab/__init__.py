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
    "ConfigError": "errors", "DataError": "errors", "ModelFileError": "errors", "SgdlabError": "errors",
    "TrainingDiverged": "errors",
    "load_mnist": "data",
    "cross_entropy_error": "nn.functions", "numerical_diff": "nn.functions", "relu": "nn.functions",
    "sigmoid": "nn.functions", "softmax": "nn.functions",
    "get_activation": "nn.activations", "activation_names": "nn.activations",
    "numerical_gradient": "nn.gradient",
    "Affine": "nn.layers", "Relu": "nn.layers", "Sigmoid": "nn.layers", "SoftmaxWithLoss": "nn.layers",
    "activation_layer": "nn.layers", "BatchNormalization": "nn.layers", "Dropout": "nn.layers",
    "Convolution": "nn.layers", "Pooling": "nn.layers", "im2col": "nn.im2col", "col2im": "nn.im2col",
    "MultiLayerNet": "nn.network", "TwoLayerNet": "nn.network", "ConvNet": "nn.network", "SimpleConvNet": "nn.network",
    "DeepConvNet": "nn.network",
    "SGD": "nn.optimizers", "Momentum": "nn.optimizers", "Nesterov": "nn.optimizers", "AdaGrad": "nn.optimizers",
    "RMSprop": "nn.optimizers", "Adam": "nn.optimizers",
    "numerical_gradient_fast": "engine.perturbation", "gradient_check": "engine.gradcheck",
    "TrainConfig": "training.config", "Trainer": "training.trainer", "History": "training.history",
    "load_model": "runs.model_file", "save_model": "runs.model_file",
    "RunObserver": "runs.run", "train_run": "runs.run", "run_experiment": "runs.experiments",
    "LiveLab": "lab.notebook",
}

# The book's module names, as attributes: sgdlab.functions is sgdlab.nn.functions, and so on.
_BOOK_MODULES = {name: f"nn.{name}" for name in ("functions", "gradient", "layers", "network", "optimizers")}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _BOOK_MODULES:
        value = importlib.import_module(f".{_BOOK_MODULES[name]}", __name__)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a package: sgdlab.nn, sgdlab.engine, ...
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'sgdlab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
