"""Data sets sgdlab trains on: MNIST, loaded the way the book's `load_mnist` does."""

from .mnist import default_data_dir, load_mnist

__all__ = ["default_data_dir", "load_mnist"]
