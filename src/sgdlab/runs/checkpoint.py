"""checkpoint.npz: a run's `TrainingState` on disk, written atomically, read back only if it is whole.

The arrays (weights, running statistics, the optimizer's) are .npy members
named `params/W1`, `statistics/running_mean1`, `optimizer/v/W1`; everything
else (the iteration, the generators' states, the history, the settings the
run was made with, and a SHA-256 of every array) is one JSON text in
`meta`. Nothing is pickled. Reading checks the format, that the checkpoint
belongs to a run of these settings, and every array against its hash, so a
damaged or foreign file is named, never used.
"""

import hashlib
import json
import zipfile

import numpy as np

from ..errors import SgdlabError
from ..fileio import atomic_write
from ..training.history import History
from ..training.state import TrainingState
FORMAT = "sgdlab-checkpoint"
VERSION = 1
GROUPS = ("params", "statistics", "optimizer")  # the TrainingState fields held as arrays


def save_checkpoint(path, state, settings):
    """Write `state` of the run made with `settings` (its config.json's dict) to `path`, atomically."""
    arrays = {f"{group}/{key}": np.asarray(value) for group in GROUPS for key, value in getattr(state, group).items()}
    meta = {"format": FORMAT, "version": VERSION, "settings": settings, "iteration": state.iteration,
            "sampler": state.sampler, "dropout": state.dropout, "history": state.history.to_dict(),
            "sha256": {name: _digest(array) for name, array in arrays.items()}}
    with atomic_write(path) as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def load_checkpoint(path, settings):
    """The `TrainingState` at `path`, if it is a whole checkpoint of a run made with `settings`."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"][()])) if "meta" in archive.files else None
            arrays = {name: archive[name] for name in archive.files if name != "meta"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise SgdlabError(f"{path} is damaged ({exc}): it cannot be resumed from") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SgdlabError(f"{path} is not an sgdlab checkpoint of this version")
    if meta.get("settings") != json.loads(json.dumps(settings)):  # as JSON keeps them: tuples become lists
        raise SgdlabError(f"{path} belongs to a run with other settings than this folder's config.json: it "
                          "cannot continue this run")
    digests = meta.get("sha256")
    if not isinstance(digests, dict) or set(digests) != set(arrays) or any(
            _digest(array) != digests[name] for name, array in arrays.items()):
        raise SgdlabError(f"{path} is damaged (its arrays do not match their hashes): it cannot be resumed from")
    groups = {group: {} for group in GROUPS}
    for name, array in arrays.items():
        group, _, key = name.partition("/")
        if group not in groups:
            raise SgdlabError(f"{path} holds an unknown array {name!r}: it is not an sgdlab checkpoint")
        groups[group][key] = array
    try:
        return TrainingState(int(meta["iteration"]), groups["params"], groups["statistics"], groups["optimizer"],
                             meta["sampler"], meta["dropout"], History.from_dict(meta["history"]))
    except (KeyError, TypeError, ValueError, SgdlabError) as exc:
        raise SgdlabError(f"{path} is damaged ({exc}): it cannot be resumed from") from None


def _digest(array):
    header = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(header + np.ascontiguousarray(array).tobytes()).hexdigest()
