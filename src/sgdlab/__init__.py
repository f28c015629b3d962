"""sgdlab: neural networks trained from scratch in NumPy, as in chapter 4 of "Deep Learning from Scratch".

The book's training loop, in a few lines::

    from sgdlab import Trainer, TrainConfig, load_mnist

    (x_train, t_train), (x_test, t_test) = load_mnist()
    trainer = Trainer.from_config(TrainConfig(iters=10_000, batch_size=100, lr=0.1))
    history = trainer.fit(x_train, t_train, x_test, t_test)
    print(history.test_acc[-1])
"""

__version__ = "0.1.0"

from .checkpoint import load_model, save_model
from .config import TrainConfig
from .datasets import load_mnist
from .errors import ConfigError, DataError, ModelFileError, SgdlabError, TrainingDiverged
from .functions import cross_entropy_error, numerical_diff, relu, sigmoid, softmax
from .gradient import numerical_gradient
from .history import History
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss
from .network import MultiLayerNet, TwoLayerNet
from .optimizers import SGD
from .trainer import Trainer

__all__ = [
    "Affine", "ConfigError", "DataError", "History", "ModelFileError", "MultiLayerNet", "Relu", "SGD",
    "SgdlabError", "Sigmoid", "SoftmaxWithLoss", "TrainConfig", "Trainer", "TrainingDiverged", "TwoLayerNet",
    "__version__", "cross_entropy_error", "load_mnist", "load_model", "numerical_diff", "numerical_gradient",
    "relu", "save_model", "sigmoid", "softmax",
]
