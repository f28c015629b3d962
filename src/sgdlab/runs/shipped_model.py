"""The model sgdlab ships: a DeepConvNet trained by `sgdlab train`, which `predict` and `evaluate` use when they are
given no model, so that they work right after `pip install`.

It lives in the package as `sgdlab/models/deep_convnet.npz` (package data),
its weights stored in float16 where that keeps the test accuracy (half the
bytes), and its description's `origin` records the command and seed that
trained it. `$SGDLAB_MODEL`, when set, names the model used instead (a model
of one's own, or a test's). `make_shipped_model` writes the file from a run
folder; `tools/ship_model.py` is its command line.
"""

import dataclasses
import os
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from ..fileio import size_phrase
from ..nn.functions import as_labels
from ..training.config import TrainConfig
from ..training.evaluation import count_correct
from ..training.history import History
from .model_file import load_model, save_model

MODEL_VARIABLE = "SGDLAB_MODEL"
SHIPPED_NAME = "models/deep_convnet.npz"  # inside the sgdlab package
MAX_SHIPPED_BYTES = 1 << 20


def shipped_model_path():
    """Where the shipped model is in the installed package (a file that may be absent: a build without it)."""
    return Path(str(resources.files("sgdlab").joinpath(SHIPPED_NAME)))


def default_model():
    """(path, what it is) of the model to use when none is given: `$SGDLAB_MODEL`, else the shipped one; a
    ModelFileError saying what to give when there is neither."""
    named = os.environ.get(MODEL_VARIABLE)
    if named:
        return Path(named), f"the model ${MODEL_VARIABLE} names"
    path = shipped_model_path()
    if not path.is_file():
        raise ModelFileError(f"no model given, and this sgdlab ships none ({path} is missing)",
                             "give a MODEL.npz written by 'sgdlab train' or 'sgdlab import-params'")
    return path, "the DeepConvNet shipped with sgdlab"


def train_command(config):
    """The `sgdlab train` command of the settings `config` (resolved: every setting the run used, explicit; the
    net and the seed always given)."""
    words = ["sgdlab", "train"]
    for spec in dataclasses.fields(TrainConfig):
        value = getattr(config, spec.name)
        if value is None or (value == spec.default and spec.name not in ("net", "seed")):
            continue
        flag = f"--{(spec.metadata['option'] or spec.name).replace('_', '-')}"
        if value is True:
            words.append(flag)
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return " ".join(words)


def make_shipped_model(run_dir, out, test_set):
    """Write the model of the finished run in `run_dir` to `out` as the file sgdlab ships: its weights in float16
    if that classifies the test set (`test_set`: images, labels) as well as the run's own weights do, else as
    they are; its origin the run's command, seed, how many updates it made and why it stopped if before the
    command's end, and both accuracies. Returns that origin."""
    run_dir = Path(run_dir)
    network, meta = load_model(run_dir / "model.npz")
    if meta.get("config") is None:
        raise ModelFileError(f"{run_dir / 'model.npz'} records no training settings: ship a model that "
                             "'sgdlab train' made, so that its command and seed can be given")
    config = TrainConfig.from_dict(meta["config"])
    history = History.load(run_dir / "history.json")
    images, labels = test_set[0], as_labels(test_set[1])
    correct = count_correct(network, images, labels)
    rounded = network.copy()
    rounded.load_weights({key: value.astype(np.float16) for key, value in network.weights().items()})
    correct_float16 = count_correct(rounded, images, labels)
    stored = "float16" if correct_float16 >= correct else None
    origin = {"command": train_command(config), "seed": config.seed, "run": run_dir.name,
              "iterations": len(history.loss), "stopped": history.stopped,  # None: the command's whole run
              "test_acc": correct / len(labels), "test_acc_float16_weights": correct_float16 / len(labels),
              "stored_dtype": stored or network.dtype.name}
    size = sum(value.size for value in network.weights().values()) * np.dtype(stored or network.dtype).itemsize
    if size > MAX_SHIPPED_BYTES:
        raise ModelFileError(f"the weights of {run_dir} take {size_phrase(size)} as {origin['stored_dtype']}, more "
                             f"than the {size_phrase(MAX_SHIPPED_BYTES)} a shipped model may: ship a smaller net")
    save_model(out, network, config, origin=origin, stored_dtype=stored)
    return origin
