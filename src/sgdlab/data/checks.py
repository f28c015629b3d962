"""Checks of a data set a network is to train on: refused up front, with a message that says what to pass."""

import math

import numpy as np

from ..errors import ConfigError


def check_data_set(x, t, input_shape, num_classes, name):
    """Refuse images and targets that cannot train a network of one sample's `input_shape` and `num_classes`
    outputs: the images come as rows of pixels (load_mnist's default) or shaped as the network's samples
    (load_mnist(flatten=False) for a convolutional net), as the book gives them to either."""
    check_images(x, name)
    input_size = math.prod(input_shape)
    if not (x.ndim == 2 and x.shape[1] == input_size or x.shape[1:] == tuple(input_shape)):
        shapes = " or ".join(dict.fromkeys(f"(N, {', '.join(map(str, shape))})" for shape in ((input_size,),
                                                                                            input_shape)))
        raise ConfigError(f"the {name} images have shape {x.shape}; the network needs {shapes}: load MNIST with "
                          "load_mnist(), or give images of the network's input size")
    if len(x) == 0:
        raise ConfigError(f"the {name} set is empty")
    if len(t) != len(x):
        raise ConfigError(f"the {name} set has {len(x)} images but {len(t)} targets")
    check_targets(t, num_classes, name)


def check_images(x, name):
    """Refuse image arrays that are neither float pixels in 0..1 nor uint8 pixels."""
    if not isinstance(x, np.ndarray) or not (np.issubdtype(x.dtype, np.floating) or x.dtype == np.uint8):
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise ConfigError(f"the {name} images are {kind}; pass float pixels in 0..1 (load_mnist()) "
                          "or uint8 pixels in 0..255 (load_mnist(normalize=False))")


def check_targets(t, num_classes, name):
    """Refuse targets that are neither labels in 0..num_classes-1 nor one-hot rows of that width."""
    t = np.asarray(t)
    if t.ndim == 2:
        if t.shape[1] != num_classes:
            raise ConfigError(f"the {name} targets are one-hot rows of width {t.shape[1]}, but the network has "
                              f"{num_classes} outputs")
        return
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise ConfigError(f"the {name} targets must be integer labels (N,) or one-hot rows (N, {num_classes}), "
                          f"got {t.dtype} of shape {t.shape}")
    if t.min() < 0 or t.max() >= num_classes:
        raise ConfigError(f"the {name} labels range over {t.min()}..{t.max()}; the network has {num_classes} "
                          f"outputs, so labels must be in 0..{num_classes - 1}")
