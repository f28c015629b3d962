"""Weights saved by the book's code brought into an sgdlab model file.

The book's networks keep their weights as a pickled dict of arrays
(`save_params`: `W1`, `b1`, ... as in `params`, ch07/params.pkl,
ch08/deep_convnet_params.pkl). sgdlab numbers its parameters the same way,
so such a file is the weights of one of the named nets (`--net` and its
settings, built as `sgdlab train` builds them): every name and shape is
checked against that net before its weights are loaded, and the file is
read by `sgdlab.picklefile`, which runs nothing in it and reads no more
than a pickle of that net's weights can take.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np

from ..data.mnist import NUM_CLASSES, SAMPLE_SHAPE
from ..errors import ParamsFileError
from ..picklefile import read_pickled_arrays
from .model_file import save_model

BYTES_PER_ARRAY = 1024  # what a pickle spends on an array beside its data (its name, shape and dtype: about 200)
PICKLE_BYTES = 4096  # and on the dict around them
FLOAT64_BYTES = 8  # the widest float a file may hold
OTHER_NET = "choose the --net and settings the file was saved from"


def import_book_params(path, config, out):
    """Read the book-format file `path` as the weights of the network `config` describes (its `net` and settings),
    and write them to `out` as an sgdlab model (atomically); returns the network. The network computes in
    `config.dtype`, else in the widest float type of the file (float64 for the book's). A file that is not a
    dict of float arrays, or not one of exactly that network's weights and shapes, is a `ParamsFileError`
    naming what it holds, and nothing is written."""
    path = Path(path)
    _, layers = config.planned_layers(SAMPLE_SHAPE, NUM_CLASSES)  # nothing allocated yet
    shapes = [array.shape for layer in layers for array in (*layer.parameters, *layer.statistics)]
    values = sum(math.prod(shape) for shape in shapes)
    limit = values * FLOAT64_BYTES + BYTES_PER_ARRAY * len(shapes) + PICKLE_BYTES

    advice = f"give the dict of arrays the book's save_params pickles for the {config.net} net ({values:,} weights)"
    try:
        arrays = read_pickled_arrays(path, limit, lambda problem: ParamsFileError(f"{path}: {problem}", advice))
    except FileNotFoundError:
        raise ParamsFileError(f"{path}: no such file", advice) from None
    if config.dtype is None:
        widest = max((array.dtype.itemsize for array in arrays.values()), default=4)
        config = dataclasses.replace(config, dtype="float64" if widest == FLOAT64_BYTES else "float32")
    network = config.make_network(SAMPLE_SHAPE, NUM_CLASSES, rng=0)
    _check_names_and_shapes(path, arrays, network, config.net)
    network.load_weights(arrays)
    save_model(out, network, origin={"imported_from": path.name, "net": config.net})
    return network


def _check_names_and_shapes(path, arrays, network, net):
    """Refuse arrays that are not exactly `network`'s weights (by name and shape), or that hold inf or nan."""
    expected = network.weights()
    missing, extra = [key for key in expected if key not in arrays], [key for key in arrays if key not in expected]
    if missing or extra:
        found = "; ".join(part for part in (f"lacks {', '.join(missing)}" if missing else "",
                                            f"holds {', '.join(extra)} besides" if extra else "") if part)
        if missing and set(missing) <= set(network.running_statistics):
            raise ParamsFileError(f"{path} {found}: batch norm's running statistics, which its test-time "
                                  "predictions need", "add each BatchNormalization layer's running_mean and running_var "
                                  "to the dict as running_mean1, running_var1, ... before pickling it")
        raise ParamsFileError(f"{path} {found}: the {net} net of these settings has {', '.join(expected)}", OTHER_NET)
    for key, target in expected.items():
        if arrays[key].shape != target.shape:
            raise ParamsFileError(f"{path}: {key} has shape {arrays[key].shape}, where the {net} net of these settings "
                                  f"has {target.shape}", OTHER_NET)
    broken = [key for key in expected if not np.all(np.isfinite(arrays[key]))]
    if broken:
        raise ParamsFileError(f"{path} holds non-finite values (inf or nan) in {', '.join(broken)}: the training that "
                              "saved it diverged", "train it again with a smaller learning rate")
