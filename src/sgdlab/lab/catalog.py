"""The runs a lab page serves: the one this process trains (`sgdlab train --live`), and the finished or
running ones found through their run folders (`sgdlab view`).

Each `LabRun` holds its `RunFeed` and answers the page: the inspection of
its latest evaluation (computed once, when a page first asks), a digit read
with its current weights, and, for the run trained here, the controls.
"""

import threading
import time
from pathlib import Path

from ..data import load_mnist
from ..data.digit_images import load_digit_image
from ..data.mnist import IMAGE_PIXELS, IMAGE_SHAPE, NUM_CLASSES
from ..errors import SgdlabError
from ..fileio import read_json_object
from ..runs.checkpoint import load_checkpoint
from ..runs.model_file import load_model
from ..runs.run_folder import CHECKPOINT_NAME, RUNS_ROOT
from ..training.config import TrainConfig
from ..training.history import History
from ..training.inspection import gradient_agreement, hidden_unit_weights, png_data_url, read_digit, test_set_errors
from .feed import LossSeries, RunFeed

FOLDER_POLL_SECONDS = 1.0  # how often a run trained by another process is looked at again


class MnistOnce:
    """MNIST as training keeps it (uint8 pixels), loaded at the first need and then shared."""

    def __init__(self, data_dir=None, data=None):
        self.data_dir, self._data, self._lock = data_dir, data, threading.Lock()

    def __call__(self):
        with self._lock:
            if self._data is None:
                self._data = load_mnist(normalize=False, data_dir=self.data_dir)
            return self._data


class LabRun:
    """One run as the server offers it."""

    def __init__(self, run_id, feed, data):
        self.id, self.feed, self.data = run_id, feed, data
        self._inspected = (None, None)  # (the snapshot inspected, what was found)
        self._lock = threading.Lock()

    def refresh(self):
        """Bring the feed up to date (a run trained elsewhere is read from its folder)."""

    def control(self, action, lr=None):
        raise SgdlabError(f"{self.feed.name} is not trained by this lab: only a run started with "
                          "'sgdlab train --live' can be paused, stepped, stopped or given a new rate")

    def inspection(self):
        """What the page shows of the latest evaluation: the hidden units' weights, the test set's confusion
        matrix, accuracy per digit and worst mistakes, and the gradient check."""
        snapshot = self.feed.snapshot
        with self._lock:
            if self._inspected[0] is snapshot:
                return self._inspected[1]
            found = {"iteration": self.feed.snapshot_iteration}
            if _reads_mnist(snapshot):
                (x_train, t_train), (x_test, t_test) = self.data()
                found.update(weights=hidden_unit_weights(snapshot), **test_set_errors(snapshot, x_test, t_test),
                             gradients=gradient_agreement(snapshot, x_train, t_train))
            self._inspected = (snapshot, found)
            return found

    def read_digit(self, image_file):
        """How the run reads the image in `image_file` (a drawing or a photo): what the network sees, its ten
        probabilities and the first hidden layer's outputs, with the weights it has now."""
        self.refresh()
        network = self.feed.live_network or self.feed.snapshot
        if not _reads_mnist(network):
            raise SgdlabError(f"{self.feed.name} has no MNIST network to read a digit with yet")
        pixels = load_digit_image(image_file)
        return {"image": png_data_url(pixels.reshape(IMAGE_SHAPE)), **read_digit(network.copy(), pixels)}


class LiveLabRun(LabRun):
    """The run this process trains, with the page's controls (`LiveRun`)."""

    def __init__(self, run_id, live_run, data):
        super().__init__(run_id, live_run.feed, data)
        self.live_run = live_run

    def control(self, action, lr=None):
        if self.feed.status not in ("training", "paused", "starting"):
            raise SgdlabError(f"{self.feed.name} has ended ({self.feed.status}): there is nothing to control")
        actions = {"pause": self.live_run.pause, "resume": self.live_run.resume, "step": self.live_run.step,
                   "stop": self.live_run.stop}
        if action == "lr":
            self.live_run.change_learning_rate(lr)
        elif action in actions:
            actions[action]()
        else:
            raise SgdlabError(f"unknown control {action!r}: one of {', '.join([*actions, 'lr'])}")


class FolderLabRun(LabRun):
    """A run read from its folder: finished (history.json and model.npz), or in progress in another process
    (its last checkpoint), looked at again every second."""

    def __init__(self, run_id, name, folder, data):
        self.folder = Path(folder)
        self.settings = read_json_object(self.folder / "config.json", "run's settings")
        super().__init__(run_id, RunFeed(name, self.settings), data)
        self._stamp, self._checked = None, 0.0

    def refresh(self):
        now = time.monotonic()
        if now - self._checked < FOLDER_POLL_SECONDS:
            return
        self._checked = now
        history_path, checkpoint_path = self.folder / "history.json", self.folder / CHECKPOINT_NAME
        source = history_path if history_path.exists() else checkpoint_path if checkpoint_path.exists() else None
        stamp = (source, source.stat().st_mtime_ns) if source is not None else None
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            if source == history_path:
                history, (network, _) = History.load(history_path), load_model(self.folder / "model.npz")
                status = _ended_status(history)
            elif source is not None:
                history, network, status = *self._checkpointed(checkpoint_path), "in progress"
            else:
                return
        except SgdlabError as exc:  # being replaced as it is read, or damaged: said on the page
            self.feed.update(message=str(exc))
            return
        self.feed.replace(LossSeries.of(history.loss), _evaluation_rows(history), network, len(history.loss), status,
                          history.stopped or "", history.lr_changes)

    def _checkpointed(self, path):
        settings = dict(self.settings)
        settings.pop("data_dir", None)
        config = TrainConfig.from_dict(settings)
        state = load_checkpoint(path, config.resolved().to_dict())
        network = config.make_network(IMAGE_PIXELS, NUM_CLASSES, rng=0)
        for source, target in ((state.params, network.params), (state.statistics, network.running_statistics)):
            for key, value in source.items():
                target[key] = value
        return state.history, network


class Lab:
    """The runs one server offers, by id."""

    def __init__(self, runs):
        self.runs = {run.id: run for run in runs}

    def summary(self):
        """Each run's id, name, status and settings, labelled by the settings in which the runs differ."""
        for run in self.runs.values():
            run.refresh()
        settings = {run_id: {k: v for k, v in run.feed.settings.items() if k != "data_dir"}
                    for run_id, run in self.runs.items()}
        keys = sorted({key for values in settings.values() for key in values})
        differing = [key for key in keys if len({repr(values.get(key)) for values in settings.values()}) > 1]
        return [{"id": run_id, "name": run.feed.name, "status": run.feed.status, "live": run.feed.live,
                 "settings": settings[run_id],
                 "label": ", ".join(f"{key}={settings[run_id].get(key)}" for key in differing) or run.feed.name}
                for run_id, run in self.runs.items()]


def folder_runs(paths, data_dir=None):
    """The `FolderLabRun`s of `paths`: run folders (holding config.json), or folders whose subfolders are
    (an experiment's, a sweep's, `runs/`); by default the runs under ./runs."""
    paths = [Path(path) for path in paths] or [RUNS_ROOT]
    folders = []
    for path in paths:
        if (path / "config.json").is_file():
            folders.append(path)
        elif path.is_dir():
            found = sorted(child for child in path.iterdir() if (child / "config.json").is_file())
            if not found:
                raise SgdlabError(f"{path} holds no run folders (none with a config.json): give run folders "
                                  "written by 'sgdlab train'")
            folders.extend(found)
        else:
            raise SgdlabError(f"{path}: no such run folder; give run folders written by 'sgdlab train'")
    loaders = {}
    runs, names = [], set()
    for folder in folders:
        name = folder.name if folder.name not in names else str(folder)
        names.add(name)
        stored = read_json_object(folder / "config.json", "run's settings").get("data_dir")
        where = data_dir if data_dir is not None else stored
        loader = loaders.setdefault(str(where), MnistOnce(where))
        runs.append(FolderLabRun(_run_id(len(runs), name), name, folder, loader))
    return runs


def _run_id(position, name):
    """A URL-safe id that keeps the name readable."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return f"{position}-{safe}"


def _reads_mnist(network):
    return network is not None and network.sizes[0] == IMAGE_PIXELS and network.sizes[-1] == NUM_CLASSES


def _evaluation_rows(history):
    return [{"iteration": row["iteration"], "epoch": row["epoch"], "train_acc": row["train_acc"],
             "test_acc": row["test_acc"], "seconds": row["seconds"], "val_acc": row.get("val_acc")}
            for row in history.evaluation_rows()]


def _ended_status(history):
    if history.stopped is None:
        return "finished"
    return "stopped" if history.interrupted else "diverged"
