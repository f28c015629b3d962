"""The runs a lab page serves: the one this process trains (`sgdlab train --live`), and the finished or
running ones found through their run folders (`sgdlab view`), a sweep's trials among them.

Each `LabRun` holds its `RunFeed` and answers the page: the inspection of
its latest evaluation (computed once, when a page first asks), a digit read
with its current weights, and, for the run trained here, the controls.
"""

import threading
import time
from pathlib import Path

import numpy as np

from ..data import load_mnist
from ..data.digit_images import load_digit_image
from ..data.mnist import IMAGE_SHAPE, NUM_CLASSES, SAMPLE_SHAPE, mnist_mismatch
from ..errors import ConfigError, SgdlabError
from ..runs.checkpoint import load_checkpoint
from ..runs.model_file import load_model
from ..runs.run_folder import CHECKPOINT_NAME, RUNS_ROOT, read_run_settings
from ..runs.run_labels import UNCOMPARED, difference_labels
from ..runs.sweep import RESULTS_JSON, SWEEP_FILE, load_sweep, read_results, trial_folder
from ..training.history import History
from ..training.inspection import (PATTERN_IMAGES, DigitPictures, activation_histograms, first_layer_filters,
                                   gradient_agreement, gradient_images, guesses_strip, hidden_unit_weights,
                                   png_data_url, predict_in_batches, read_digit, strongest_inputs, test_set_errors)
from .feed import LossSeries, RunFeed, evaluation_row
from .messages import LabError, ended_message, message
from .sweep_results import results_view, sweep_definition

FOLDER_POLL_SECONDS = 1.0  # how often a run trained by another process is looked at again


class MnistOnce:
    """MNIST as training keeps it (uint8 pixels), loaded at the first need and then shared."""

    def __init__(self, data_dir=None, data=None):
        self.data_dir, self._data, self._lock = data_dir, data, threading.Lock()

    def __call__(self):
        with self._lock:
            if self._data is None:
                self._data = load_mnist(normalize=False, copy=False, data_dir=self.data_dir)
            return self._data


class LabRun:
    """One run as the server offers it."""

    def __init__(self, run_id, feed, data):
        self.id, self.feed, self.data = run_id, feed, data
        self._inspected = (None, None)  # (the snapshot inspected, what was found)
        self._pictures = None  # the test digits' images, encoded once for all inspections
        self._lock = threading.Lock()

    def refresh(self):
        """Bring the feed up to date (a run trained elsewhere is read from its folder)."""

    def control(self, action, lr=None):
        raise LabError("control.not-live", run=self.feed.name)

    def inspection(self):
        """What the page shows of the latest evaluation: the hidden units' weights (a dense net's) or the
        convolutions' filters (a convolutional net's: the first's, then what drives each deeper one most), the test
        set's confusion matrix, accuracy per digit and worst mistakes, the network's guesses on a fixed strip of
        test digits (from the same pass over the test set), the histograms of every activation layer's outputs on
        a fixed batch of test images, and the gradient check (and on how many training images)."""
        snapshot = self.feed.snapshot
        with self._lock:
            if self._inspected[0] is snapshot:
                return self._inspected[1]
            found = {"iteration": self.feed.snapshot_iteration}
            if _reads_mnist(snapshot):
                with np.errstate(all="ignore"):  # a diverged run's weights overflow: the figures say so
                    (x_train, t_train), (x_test, t_test) = self.data()
                    probabilities = predict_in_batches(snapshot, x_test)
                    if self._pictures is None:
                        self._pictures = DigitPictures(x_test)
                    found.update(weights=hidden_unit_weights(snapshot), filters=first_layer_filters(snapshot),
                                 deeper_filters=strongest_inputs(snapshot, x_test[:PATTERN_IMAGES]),
                                 **test_set_errors(snapshot, x_test, t_test, probabilities=probabilities,
                                                   pictures=self._pictures),
                                 strip=guesses_strip(probabilities, x_test, t_test, self._pictures),
                                 histograms=activation_histograms(snapshot, x_test),
                                 gradient_images=gradient_images(snapshot))
                    found["gradients"] = gradient_agreement(snapshot, x_train, t_train)
            self._inspected = (snapshot, found)
            return found

    def read_digit(self, image_file, name="the image"):
        """How the run reads the image in `image_file` (a drawing or a photo; `name` is what its errors call it):
        what the network sees, its ten probabilities, the hidden layer's outputs and a convolutional net's feature
        maps, with the weights it has now."""
        self.refresh()
        live = self.feed.live_network
        network = live or self.feed.snapshot
        if not _reads_mnist(network):
            raise LabError("upload.no-network", run=self.feed.name)
        iteration = self.feed.loss.count if live is not None else self.feed.snapshot_iteration  # the weights' updates
        pixels = load_digit_image(image_file, name)
        return {"image": png_data_url(pixels.reshape(IMAGE_SHAPE)), "iteration": iteration,
                **read_digit(network.copy(), pixels)}


class LiveLabRun(LabRun):
    """The run this process trains, with the page's controls (`LiveRun`)."""

    def __init__(self, run_id, live_run, data):
        super().__init__(run_id, live_run.feed, data)
        self.live_run = live_run

    def control(self, action, lr=None):
        if self.feed.status not in ("training", "paused", "starting"):
            raise LabError("control.ended", run=self.feed.name, status=self.feed.status)
        actions = {"pause": self.live_run.pause, "resume": self.live_run.resume, "step": self.live_run.step,
                   "stop": self.live_run.stop}
        if action == "lr":
            if lr is None:
                raise LabError("control.no-rate")
            if self.live_run.trainer is None:  # MNIST still loading: no trainer to take a rate yet
                raise LabError("control.starting")
            try:
                self.live_run.change_learning_rate(lr)
            except ConfigError:  # the trainer's check of a rate
                raise LabError("control.bad-rate", rate=repr(lr)) from None
        elif action in actions:
            actions[action]()
        else:
            raise LabError("control.unknown", action=repr(action), actions=", ".join([*actions, "lr"]))


class FolderLabRun(LabRun):
    """A run read from its folder: finished (history.json and model.npz), or in progress in another process
    (its last checkpoint), looked at again every second."""

    def __init__(self, run_id, name, folder, data, settings):
        self.folder, self.config = Path(folder), settings.config  # settings: its config.json's `RunSettings`
        super().__init__(run_id, RunFeed(name, settings.to_dict()), data)
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
            self.feed.update(message=message("run.unreadable", problem=str(exc)))
            return
        self.feed.replace(LossSeries.of(history.loss), _evaluation_rows(history), network, len(history.loss), status,
                          ended_message(history), history.lr_changes)

    def _checkpointed(self, path):
        state = load_checkpoint(path, self.config.resolved().to_dict())
        network = self.config.make_network(SAMPLE_SHAPE, NUM_CLASSES, rng=0)
        network.load_weights({**state.params, **state.statistics})
        return state.history, network


class ModelLabRun(LabRun):
    """A model file alone (`sgdlab view MODEL.npz`: one imported from the book's weights, or the shipped one): no
    curves, its network looked into and reading digits as a finished run's."""

    def __init__(self, run_id, name, path, data):
        network, meta = load_model(path)
        settings = meta.get("config") or {"net": type(network).__name__, **meta.get("origin", {})}
        super().__init__(run_id, RunFeed(name, settings), data)
        updates = meta.get("origin", {}).get("iterations")  # the updates its weights made, where the file says
        self.feed.replace(LossSeries(), [], network, updates, "finished", None, [])


class SweepTrials:
    """A sweep's trials as a lab page serves them: its results, read again when results.json changes, and each
    trial's run folder, opened as a `FolderLabRun` when a page first asks for it (a sweep of a hundred trials
    costs what the few looked into cost)."""

    def __init__(self, folder, data_dir=None):
        self.folder = Path(folder)
        self.sweep, stored_data_dir = load_sweep(self.folder)
        self.data = MnistOnce(data_dir if data_dir is not None else stored_data_dir)
        self.trials = {trial_folder(self.folder, self.sweep, trial).name: trial
                       for trial in range(self.sweep.trials * self.sweep.rounds)}
        self._stored, self._stamp, self._message, self._started = {}, None, None, set()
        self._lock = threading.Lock()

    def definition(self):
        return sweep_definition(self.folder.name, self.sweep)

    def results(self):
        """The trials' rows for the page (see `results_view`), as results.json has them now."""
        with self._lock:
            stamp = _stamp(self.folder / RESULTS_JSON)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._stored, self._message = read_results(self.folder), None
                except SgdlabError as exc:  # damaged: said on the page, beside the rows read before
                    self._message = message("sweep.unreadable", problem=str(exc))
            self._started |= {name for name in self.trials
                              if name not in self._started and (self.folder / name / "config.json").is_file()}
            runs = {self.trials[name]: name for name in self._started}
            return results_view(self.sweep, self._stored, runs, self._message)

    def open(self, run_id):
        """The `FolderLabRun` of the trial whose folder is named `run_id`; None if there is no such trial, or
        it has not started."""
        folder = self.folder / run_id
        if run_id not in self.trials or not (folder / "config.json").is_file():
            return None
        try:
            return FolderLabRun(run_id, run_id, folder, self.data, read_run_settings(folder))
        except SgdlabError:  # its settings damaged: nothing to show of it
            return None


class Lab:
    """The runs one server offers, by id: those given, or a sweep's trials (`SweepTrials`, then `sweep`), each
    opened when it is first asked for."""

    def __init__(self, runs):
        self.sweep = runs if isinstance(runs, SweepTrials) else None
        self.runs = {} if self.sweep is not None else {run.id: run for run in runs}

    def run(self, run_id):
        """The run `run_id`, or None."""
        if run_id not in self.runs and self.sweep is not None:
            opened = self.sweep.open(run_id)
            if opened is not None:
                self.runs[run_id] = opened
        return self.runs.get(run_id)

    def summary(self):
        """Each run's id, name, status and settings, labelled by the settings in which the runs differ (a sweep's:
        its best few trials, whose curves the page overlays)."""
        if self.sweep is not None:
            return self.sweep.results()["best"]
        for run in self.runs.values():
            run.refresh()
        settings = {run_id: {k: v for k, v in run.feed.settings.items() if k not in UNCOMPARED}
                    for run_id, run in self.runs.items()}
        labels = difference_labels([run.feed.name for run in self.runs.values()], list(settings.values()))
        return [{"id": run_id, "name": run.feed.name, "status": run.feed.status, "live": run.feed.live,
                 "settings": settings[run_id], "label": label}
                for (run_id, run), label in zip(self.runs.items(), labels)]


def folder_lab(paths, data_dir=None):
    """The `Lab` of `sgdlab view PATHS`: a sweep's, for a sweep's folder given alone; else the runs of `paths`
    (see `folder_runs`)."""
    if len(paths) == 1 and (Path(paths[0]) / SWEEP_FILE).is_file():
        return Lab(SweepTrials(paths[0], data_dir))
    return Lab(folder_runs(paths, data_dir))


def folder_runs(paths, data_dir=None):
    """The `FolderLabRun`s of `paths`: run folders (holding config.json), or folders whose subfolders are
    (an experiment's, a sweep's, `runs/`), and a `ModelLabRun` for each model file (`.npz`); by default the runs
    under ./runs."""
    paths = [Path(path) for path in paths] or [RUNS_ROOT]
    folders = []
    for path in paths:
        if path.suffix == ".npz" and not path.is_dir():
            folders.append(path)
        elif (path / "config.json").is_file():
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
        if folder.suffix == ".npz":
            runs.append(ModelLabRun(_run_id(len(runs), name), name, folder, loaders.setdefault(
                str(data_dir), MnistOnce(data_dir))))
            continue
        settings = read_run_settings(folder)
        where = data_dir if data_dir is not None else settings.data_dir
        loader = loaders.setdefault(str(where), MnistOnce(where))
        runs.append(FolderLabRun(_run_id(len(runs), name), name, folder, loader, settings))
    return runs


def _run_id(position, name):
    """A URL-safe id that keeps the name readable."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return f"{position}-{safe}"


def _stamp(path):
    """What changes when the sweep rewrites `path` (a new file each time: it is replaced atomically)."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def _reads_mnist(network):
    return network is not None and mnist_mismatch(network.input_shape, network.output_size) is None


def _evaluation_rows(history):
    return [evaluation_row(history, index) for index in range(len(history.iteration))]


def _ended_status(history):
    if history.stopped is None:
        return "finished"
    return "stopped" if history.interrupted else "diverged"
