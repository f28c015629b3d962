"""The data: MNIST files and the IDX format, pixel scaling, checks, mini-batch sampling, and users' own digit images."""

from .mnist import default_data_dir, load_mnist

__all__ = ["default_data_dir", "load_mnist"]
