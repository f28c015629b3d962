"""Trained networks saved as `.npz`: the weights plus the JSON that rebuilds the network.

The file holds one array per parameter (`W1`, `b1`, ..., `gamma1`, `beta1`,
...), batch norm's running statistics (`running_mean1`, `running_var1`, ...)
and a JSON string
`sgdlab_model` with the format version, the architecture and the training
config. It is read with `allow_pickle=False`: loading a model never runs code.
"""

import json
import zipfile

import numpy as np

from ..data.mnist import IMAGE_PIXELS, NUM_CLASSES
from ..errors import ModelFileError
from ..fileio import atomic_write
from ..nn.network import network_from_architecture

FORMAT_VERSION = 1
META_KEY = "sgdlab_model"


def save_model(path, network, config=None):
    """Write `network` (and the config it was trained with) to `path` atomically."""
    if not hasattr(network, "architecture"):
        raise TypeError(f"save_model(path, network, config=None) takes the file path first; got a "
                        f"{type(network).__name__} where the network goes")
    meta = {"format_version": FORMAT_VERSION, "architecture": network.architecture(),
            "config": config.resolved().to_dict() if config is not None else None}
    arrays = {key: np.asarray(value) for key, value in saved_arrays(network).items()}
    with atomic_write(path) as handle:
        np.savez(handle, **arrays, **{META_KEY: np.array(json.dumps(meta))})


def load_model(path):
    """Rebuild the network saved at `path`; returns `(network, meta)`.

    Anything that is not a complete sgdlab model raises `ModelFileError`
    naming the file and the problem.
    """
    arrays = _read_arrays(path)
    meta = _read_meta(path, arrays.pop(META_KEY))
    network = _build_network(path, meta)
    _load_weights(path, network, arrays)
    return network, meta


def load_mnist_model(path):
    """The network saved at `path`, refused clearly unless it reads MNIST images and tells their ten classes."""
    network, _ = load_model(path)
    if network.sizes[0] != IMAGE_PIXELS:
        raise ModelFileError(f"{path} takes {network.sizes[0]} inputs per image, but MNIST images have "
                             f"{IMAGE_PIXELS} pixels: use a model trained on MNIST")
    if network.sizes[-1] != NUM_CLASSES:
        raise ModelFileError(f"{path} gives {network.sizes[-1]} outputs, but MNIST has {NUM_CLASSES} classes: "
                             "use a model trained on MNIST")
    broken = [key for key, value in {**network.params, **network.running_statistics}.items()
              if not np.all(np.isfinite(value))]
    if broken:
        raise ModelFileError(f"{path} holds non-finite values (inf or nan) in {', '.join(broken)}: the run that "
                             "saved it diverged; train again with a smaller learning rate (--lr)")
    return network


def _read_arrays(path):
    """Every array of the .npz at `path`, read without pickle; must hold the model description."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file; give the model.npz written by 'sgdlab train'") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a folder; give the model.npz file inside it") from None
    except ValueError as exc:  # NumPy takes anything that is neither .npz nor .npy for a pickle
        reason = "not a .npz archive" if "pickle" in str(exc) else f"cannot read it as .npz: {exc}"
        raise ModelFileError(f"{path} is not an sgdlab model file ({reason})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path} is not an sgdlab model file (cannot read it as .npz: {exc})") from None
    if META_KEY not in arrays:
        raise ModelFileError(f"{path} is a .npz file but not an sgdlab model (it has no '{META_KEY}' entry)")
    return arrays


def _read_meta(path, entry):
    """The JSON description, in a format this sgdlab reads."""
    try:
        meta = json.loads(str(entry))
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path} has a damaged model description ({exc}): retrain to rebuild it") from None
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format {version}; this sgdlab reads "
                             f"format {FORMAT_VERSION}: upgrade sgdlab or retrain")
    return meta


def _build_network(path, meta):
    """An untrained network of the architecture the description names."""
    try:
        return network_from_architecture(meta["architecture"])
    except (ValueError, KeyError, TypeError) as exc:  # ConfigError is a ValueError: an unknown activation, say
        raise ModelFileError(f"{path} has a damaged model description ({exc}): retrain to rebuild it") from None


def saved_arrays(network):
    """The arrays a model file holds: the parameters and the running statistics, by name."""
    return {**network.params, **network.running_statistics}


def _load_weights(path, network, arrays):
    """Copy the saved parameters and statistics into `network`, refusing any that its architecture does not have."""
    targets = saved_arrays(network)
    if set(arrays) != set(targets):
        raise ModelFileError(f"{path} holds arrays {sorted(arrays)} but its architecture needs "
                             f"{sorted(targets)}: the file is damaged")
    for key, value in arrays.items():
        if value.shape != targets[key].shape or not np.issubdtype(value.dtype, np.floating):
            raise ModelFileError(f"{path}: {key} is {value.dtype} of shape {value.shape}, the architecture "
                                 f"needs floats of shape {targets[key].shape}: the file is damaged")
        np.copyto(targets[key], value)
