"""Trained networks saved as `.npz`: the weights plus the JSON that rebuilds the network.

The file holds one array per parameter (`W1`, `b1`, ..., `gamma1`, `beta1`,
...), batch norm's running statistics (`running_mean1`, `running_var1`, ...)
and a JSON string
`sgdlab_model` with the format version, the architecture and the training
config. It is read by `sgdlab.npzfile`, never unpickled: loading a model never runs code,
and never allocates more than the file holds.
"""

import json
from pathlib import Path

import numpy as np

from ..data.mnist import mnist_mismatch
from ..errors import ModelFileError
from ..fileio import atomic_write, parse_json
from ..nn.network import MAX_PARAMETERS, NETWORK_CLASSES, ConvNet, network_from_architecture, planned_parameter_count
from ..npzfile import NOT_AN_ARCHIVE, NpzFile
from ..ranges import POSITIVE_INT
from ..training.config import DTYPES

FORMAT_VERSION = 1
META_KEY = "sgdlab_model"
MAX_DESCRIPTION_BYTES = 1 << 22  # the description as np.savez stores it, 4 bytes a character: far more than any needs
SMALL_NETWORK_BYTES = 1 << 20  # parameters built from any description, before they are compared with the arrays
MAX_FLOAT_BYTES = 8  # float16, float32 or float64 weights are read (and copied into the network's dtype)
# The largest model file: the parameters of the largest network and as many statistics, in float64, and its description
MAX_MODEL_BYTES = 2 * MAX_PARAMETERS * MAX_FLOAT_BYTES + MAX_DESCRIPTION_BYTES


def save_model(path, network, config=None, origin=None, stored_dtype=None):
    """Write `network` (and the config it was trained with) to `path` atomically.

    `origin`: a JSON object saying where weights not trained by that config
    came from (a book-format file imported, the run a shipped model was made
    from), kept in the description as `origin`. `stored_dtype` ("float16"):
    the arrays stored in that float type, half the bytes of float32; they
    are read back into the network's own dtype.
    """
    if not hasattr(network, "architecture"):
        raise TypeError(f"save_model(path, network, config=None) takes the file path first; got a "
                        f"{type(network).__name__} where the network goes")
    meta = {"format_version": FORMAT_VERSION, "architecture": network.architecture(),
            "config": config.resolved().to_dict() if config is not None else None}
    if origin is not None:
        meta["origin"] = origin
    arrays = {key: np.asarray(value, dtype=stored_dtype) for key, value in network.weights().items()}
    with atomic_write(path) as handle:
        np.savez(handle, **arrays, **{META_KEY: np.array(json.dumps(meta))})


def load_model(path):
    """Rebuild the network saved at `path`; returns `(network, meta)`.

    Anything that is not a complete sgdlab model raises `ModelFileError`
    naming the file and the problem. Every array's header is checked against
    the architecture before its data is read, and the architecture against
    the file's size before the network is built, so a file declaring more than
    it holds never allocates what it declares.
    """
    with _open(Path(path)) as archive:
        meta = _read_meta(path, archive)
        _check_architecture(path, meta.get("architecture"), archive)
        network = _build_network(path, meta)
        _load_weights(path, network, archive)
    return network, meta


def load_mnist_model(path):
    """The network saved at `path`, refused clearly unless it reads MNIST images and tells their ten classes."""
    network, _ = load_model(path)
    problem = mnist_mismatch(network.input_shape, network.output_size)
    if problem is not None:
        raise ModelFileError(f"{path} {problem}: use a model trained on MNIST")
    broken = [key for key, value in network.weights().items() if not np.all(np.isfinite(value))]
    if broken:
        raise ModelFileError(f"{path} holds non-finite values (inf or nan) in {', '.join(broken)}: the run that "
                             "saved it diverged; train again with a smaller learning rate (--lr)")
    return network


def _open(path):
    """The .npz at `path` with its headers checked; must hold the model description."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file; give the model.npz written by 'sgdlab train'")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give the model.npz file inside it")

    def refuse(problem):
        fix = "" if problem == NOT_AN_ARCHIVE else "; give a model.npz written by 'sgdlab train', or train again"
        return ModelFileError(f"{path} is not an sgdlab model file ({problem}){fix}")

    archive = NpzFile(path, refuse, MAX_MODEL_BYTES)
    if META_KEY not in archive.headers:
        archive.close()
        raise ModelFileError(f"{path} is a .npz file but not an sgdlab model (it has no '{META_KEY}' entry)")
    return archive


def _read_meta(path, archive):
    """The JSON description, in a format this sgdlab reads."""
    try:
        meta = parse_json(archive.read_text(META_KEY, MAX_DESCRIPTION_BYTES))
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path} has a damaged model description ({exc}): retrain to rebuild it") from None
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format {version}; this sgdlab reads "
                             f"format {FORMAT_VERSION}: upgrade sgdlab or retrain")
    return meta


def _check_architecture(path, architecture, archive):
    """Refuse an architecture whose dtype is not a float type, or whose weights the file cannot hold.

    A valid file stores every parameter, so a description of far more
    parameter bytes than the file's arrays declare (those declarations were
    checked against the archive's sizes) is damaged or hostile, whatever it
    claims. A small network is built in any case, so that `_load_weights`
    can name the arrays that differ.
    """
    damaged = f"{path} has a damaged model description"
    if not isinstance(architecture, dict):
        raise ModelFileError(f"{damaged} (its architecture is {architecture!r}): retrain to rebuild it")
    dtype = architecture.get("dtype", "float64")
    if dtype not in DTYPES:
        raise ModelFileError(f"{damaged} (dtype must be one of {', '.join(DTYPES)}, got {dtype!r}): retrain to "
                             "rebuild it")
    count = _parameter_count(damaged, architecture)
    stored = sum(header.nbytes for key, header in archive.headers.items() if key != META_KEY)
    needed = count * np.dtype(dtype).itemsize
    if count > MAX_PARAMETERS or needed > SMALL_NETWORK_BYTES + 2 * stored:  # 2: float32 arrays of a float64 net
        raise ModelFileError(f"{path} describes a network of {count:,} parameters ({needed:,} bytes of {dtype}), but "
                             f"its arrays hold {stored:,} bytes: the file is damaged; retrain to rebuild it")


def _parameter_count(damaged, architecture):
    """How many parameters the architecture describes, from its sizes alone: a dense net's widths, or a
    convolutional net's layers planned without allocating (their count and sizes bounded as when built)."""
    cls = NETWORK_CLASSES.get(architecture.get("class")) if isinstance(architecture.get("class"), str) else None
    if cls is not None and issubclass(cls, ConvNet):  # described by its layers, not by a list of widths
        try:
            return planned_parameter_count(architecture)
        except (ValueError, KeyError, TypeError) as exc:  # ConfigError is a ValueError
            raise ModelFileError(f"{damaged} ({exc}): retrain to rebuild it") from None
    sizes = _layer_sizes(architecture)
    if not sizes or not all(POSITIVE_INT.contains(size) for size in sizes):
        raise ModelFileError(f"{damaged} (layer sizes must be positive integers, got {sizes!r}): retrain to "
                             "rebuild it")
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def _layer_sizes(architecture):
    """Every layer width the architecture names, input to output (None where one is missing or not a list)."""
    if "sizes" in architecture:  # as sgdlab 0.1 recorded a MultiLayerNet
        sizes = architecture["sizes"]
        return list(sizes) if isinstance(sizes, list) and len(sizes) >= 2 else None
    hidden = [architecture.get("hidden_size")] if "hidden_size" in architecture \
        else architecture.get("hidden_size_list")
    if not isinstance(hidden, list):
        return None
    return [architecture.get("input_size"), *hidden, architecture.get("output_size")]


def _build_network(path, meta):
    """An untrained network of the architecture the description names."""
    try:
        return network_from_architecture(meta["architecture"])
    except (ValueError, KeyError, TypeError) as exc:  # ConfigError is a ValueError: an unknown activation, say
        raise ModelFileError(f"{path} has a damaged model description ({exc}): retrain to rebuild it") from None


def _load_weights(path, network, archive):
    """Copy the saved parameters and statistics into `network`, refusing any that its architecture does not have.

    Every header is compared with the architecture before any data is read.
    """
    targets = network.weights()
    stored = set(archive.headers) - {META_KEY}
    if stored != set(targets):
        raise ModelFileError(f"{path} holds arrays {sorted(stored)} but its architecture needs "
                             f"{sorted(targets)}: the file is damaged")
    for key, target in targets.items():
        header = archive.headers[key]
        if header.shape != target.shape or header.dtype.kind != "f" or header.dtype.itemsize > MAX_FLOAT_BYTES:
            raise ModelFileError(f"{path}: {key} is {header.dtype} of shape {header.shape}, the architecture "
                                 f"needs floats of shape {target.shape}: the file is damaged")
    for key, target in targets.items():  # one array in memory at a time, beside the network
        network.load_weights({key: archive.read(key, target.size * MAX_FLOAT_BYTES)})
