"""checkpoint.npz: a run's `TrainingState` on disk, written atomically, read back only if it is whole.

The arrays (weights, running statistics, the optimizer's, and with early
stopping the best evaluation's weights) are .npy members named `params/W1`,
`statistics/running_mean1`, `optimizer/v/W1`, `best/W1`; everything
else (the iteration, the generators' states, the history, the settings the
run was made with, and a SHA-256 of every array) is one JSON text in
`meta`. Nothing is pickled. Reading checks the format, that the checkpoint
belongs to a run of these settings, and every array against its hash, so a
damaged or foreign file is named, never used; every header is checked before
any data is read (see `sgdlab.npzfile`).
"""

import hashlib
import json

import numpy as np

from ..data.mnist import NUM_CLASSES, SAMPLE_SHAPE
from ..errors import SgdlabError
from ..fileio import MAX_JSON_BYTES, atomic_write, parse_json
from ..nn.network import MAX_PARAMETERS
from ..nn.optimizers import COUNT
from ..npzfile import NpzFile
from ..training.config import TrainConfig
from ..training.history import History
from ..training.state import TrainingState

FORMAT = "sgdlab-checkpoint"
VERSION = 1
GROUPS = ("params", "statistics", "optimizer", "best")  # the TrainingState fields held as arrays
MAX_META_BYTES = 4 * MAX_JSON_BYTES  # the JSON text (the history in it), as UTF-8, or 4 bytes a character
# The largest checkpoint: float64 weights of the largest network, as many statistics, two optimizer arrays a weight,
# and the best evaluation's weights and statistics
MAX_CHECKPOINT_BYTES = 6 * MAX_PARAMETERS * 8 + MAX_META_BYTES
_FIX = "it cannot be resumed from; delete it to train the run again from its start"


def save_checkpoint(path, state, settings):
    """Write `state` of the run made with `settings` (its config.json's dict) to `path`, atomically."""
    arrays = {f"{group}/{key}": np.asarray(value) for group in GROUPS for key, value in getattr(state, group).items()}
    meta = {"format": FORMAT, "version": VERSION, "settings": settings, "iteration": state.iteration,
            "sampler": state.sampler, "dropout": state.dropout, "augment": state.augment,
            "history": state.history.to_dict(),
            "sha256": {name: _digest(array) for name, array in arrays.items()}}
    with atomic_write(path) as handle:
        # UTF-8 bytes: a quarter of the size of the unicode array np.savez makes of a str
        np.savez(handle, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)


def _with_defaults(stored):
    """A checkpoint's settings, those added to sgdlab since it was written holding their defaults (what the
    run used): a run stopped before an upgrade continues after it."""
    if not isinstance(stored, dict):
        return stored
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    return {**{name: value for name, value in defaults.items() if name not in stored}, **stored}


def load_checkpoint(path, settings):
    """The `TrainingState` at `path`, if it is a whole checkpoint of a run made with `settings`.

    Every array's header is checked against the network those settings make
    before any array is read, so a damaged or hostile file never allocates
    more than a checkpoint of this run holds.
    """
    with NpzFile(path, lambda problem: SgdlabError(f"{path} is damaged ({problem}): {_FIX}"),
                 MAX_CHECKPOINT_BYTES) as archive:
        meta = _read_meta(path, archive)
        if _with_defaults(meta.get("settings")) != json.loads(json.dumps(settings)):  # as JSON keeps them
            raise SgdlabError(f"{path} belongs to a run with other settings than this folder's config.json: it "
                              "cannot continue this run")
        limits = _array_limits(path, archive, settings)
        arrays = {name: archive.read(name, limit) for name, limit in limits.items()}
    digests = meta.get("sha256")
    if not isinstance(digests, dict) or set(digests) != set(arrays) or any(
            _digest(array) != digests[name] for name, array in arrays.items()):
        raise SgdlabError(f"{path} is damaged (its arrays do not match their hashes): {_FIX}")
    groups = {group: {} for group in GROUPS}
    for name, array in arrays.items():
        group, _, key = name.partition("/")
        groups[group][key] = array
    if COUNT not in groups["optimizer"] and groups["optimizer"] and settings.get("optimizer") == "nesterov":
        raise SgdlabError(f"{path} was written by sgdlab 0.1.0, whose Nesterov rule updated the velocity before "
                          "the step (fixed since): continuing it would mix two rules in one run; train it again "
                          "(--overwrite)")
    try:
        iteration = int(meta["iteration"])
        # sgdlab 0.1.0 saved the count of updates for Adam only: every optimizer's count is the run's iteration
        groups["optimizer"].setdefault(COUNT, np.array(iteration))
        return TrainingState(iteration, groups["params"], groups["statistics"], groups["optimizer"],
                             meta["sampler"], meta["dropout"], History.from_dict(meta["history"]),
                             meta.get("augment"), {**groups["best"]})
    except (KeyError, TypeError, ValueError, SgdlabError) as exc:
        raise SgdlabError(f"{path} is damaged ({exc}): {_FIX}") from None


def _read_meta(path, archive):
    """The checkpoint's JSON text, refused unless it is one of this format and version."""
    if "meta" not in archive.headers:
        raise SgdlabError(f"{path} is not an sgdlab checkpoint of this version")
    try:
        meta = parse_json(archive.read_text("meta", MAX_META_BYTES))
    except ValueError as exc:
        raise SgdlabError(f"{path} is damaged ({exc}): {_FIX}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SgdlabError(f"{path} is not an sgdlab checkpoint of this version")
    return meta


def _array_limits(path, archive, settings):
    """Each array's name and size, once every header matches what a checkpoint of a run of `settings` holds."""
    network = TrainConfig.from_dict(settings).make_network(SAMPLE_SHAPE, NUM_CLASSES, rng=0)  # resumed runs read MNIST
    limits = {}
    for name, header in archive.headers.items():
        if name == "meta":
            continue
        target = _counterpart(network, name)
        if target is None:
            raise SgdlabError(f"{path} holds an unknown array {name!r}: it is not an sgdlab checkpoint of this run")
        integer_count = target.ndim == 0 and header.dtype.kind in "iu"
        if header.shape != target.shape or (header.dtype != target.dtype and not integer_count):
            raise SgdlabError(f"{path} is damaged ({name} is {header}, a run of these settings has "
                              f"{target.dtype} of shape {target.shape}): {_FIX}")
        limits[name] = header.nbytes
    return limits


def _counterpart(network, name):
    """What the array `name` must be like: the network's parameter or statistic, the parameter an optimizer
    array belongs to (`optimizer/v/W1`), a count for the optimizer's updates; None for any other name."""
    group, _, key = name.partition("/")
    slot, _, parameter = key.partition("/")
    if group == "params":
        return network.params.get(key)
    if group == "statistics":
        return network.running_statistics.get(key)
    if group == "best":
        return network.weights().get(key)
    if group == "optimizer" and parameter:
        return network.params.get(parameter)
    return np.array(0) if group == "optimizer" and slot == COUNT else None


def _digest(array):
    header = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(header + np.ascontiguousarray(array).tobytes()).hexdigest()
