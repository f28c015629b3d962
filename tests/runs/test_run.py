"""A whole run as a function: claimed folder, data, training and saved results, seen through an observer."""

import json
import os
import signal
import urllib.error

import pytest

from sgdlab.data import mnist
from sgdlab.errors import ConfigError, DataError, TrainingDiverged
from sgdlab.runs.run import RunObserver, train_run
from sgdlab.runs.run_folder import RUN_FILES
from sgdlab.training.config import TrainConfig

SMALL = TrainConfig(iters=12, batch_size=6000, hidden_size=8)  # 10 iterations an epoch: evaluated at 0, 10, 12


class Recorder(RunObserver):
    def __init__(self):
        self.events = []

    def started(self, run_dir, trainer, x_train, t_train):
        self.events.append(("started", run_dir.exists(), len(x_train)))

    def iteration(self, iteration, loss):
        self.events.append(("iteration", iteration))

    def evaluation(self, history):
        self.events.append(("evaluation", history.iteration[-1]))

    def training_ended(self):
        self.events.append(("ended",))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def unreachable(url, dest):
        raise urllib.error.URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(mnist, "_fetch", unreachable)


def test_a_run_reports_each_step_and_saves_every_file(data_dir, tmp_path):
    observer = Recorder()
    run_dir, history = train_run(SMALL, out=tmp_path / "run", data_dir=data_dir, plot=True, observer=observer)
    assert run_dir == tmp_path / "run" and history.iteration == [0, 10, 12]
    assert observer.events[0] == ("started", True, 60000)
    assert [e[1] for e in observer.events if e[0] == "iteration"] == list(range(1, 13))
    assert [e[1] for e in observer.events if e[0] == "evaluation"] == [0, 10, 12]
    assert observer.events[-1] == ("ended",)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(RUN_FILES)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["iters"] == 12 and saved["data_dir"] == str(data_dir)


def test_a_run_that_cannot_load_its_data_gives_the_folder_back(tmp_path):
    with pytest.raises(DataError, match="MNIST files missing"):
        train_run(SMALL, out=tmp_path / "run", data_dir=tmp_path / "empty")
    assert not (tmp_path / "run").exists()


def test_an_earlier_run_is_refused_before_any_work(data_dir, tmp_path):
    train_run(SMALL, out=tmp_path / "run", data_dir=data_dir, plot=False)
    with pytest.raises(ConfigError, match="already holds a run's files"):
        train_run(SMALL, out=tmp_path / "run", data_dir=data_dir, observer=Recorder())


def test_a_diverged_run_is_saved_and_named(data_dir, tmp_path):
    config = TrainConfig(iters=50, batch_size=100, hidden_size=8, lr=1e30, activation="relu")
    observer = Recorder()
    with pytest.raises(TrainingDiverged, match=f"what was recorded is in {tmp_path / 'run'}"):
        train_run(config, out=tmp_path / "run", data_dir=data_dir, observer=observer)
    assert observer.events[-1] == ("ended",)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["stopped"].startswith("loss became")
    assert not (tmp_path / "run" / "accuracy.png").exists()


class CtrlCAtTheLastEvaluation(RunObserver):
    def evaluation(self, history):
        if history.iteration[-1] == SMALL.iters:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.usefixtures("terminal_signals")
def test_ctrl_c_during_the_last_evaluation_or_the_saving_does_not_lose_the_run(data_dir, tmp_path, monkeypatch,
                                                                              background):
    from sgdlab.runs import run_folder

    save_model = run_folder.save_model

    def ctrl_c_then_save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # pressed again while the results are written
        return save_model(*args, **kwargs)

    monkeypatch.setattr(run_folder, "save_model", ctrl_c_then_save)
    run_dir, history = train_run(SMALL, out=tmp_path / "run", data_dir=data_dir, observer=CtrlCAtTheLastEvaluation(),
                                 background=background)
    assert history.stopped is None and history.iteration == [0, 10, 12]  # the run had ended: nothing to stop
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(RUN_FILES)
    assert json.loads((run_dir / "history.json").read_text())["iteration"] == [0, 10, 12]


@pytest.mark.parametrize("settings", [
    {"background": True},
    {"background": False},
    {"config": TrainConfig(iters=30, batch_size=100, train_size=1000, hidden_size=8, validation=0.1, early_stop=1)},
], ids=["evaluated-beside-training", "evaluated-in-line", "early-stopped"])
def test_the_report_reads_the_test_sets_predictions_of_the_last_evaluation_and_is_the_models(data_dir, tmp_path,
                                                                                              monkeypatch, settings):
    """report.html examines the test set with the scores the run's last evaluation measured, rather than running
    the 10000 images through the net again; the same report as one written from the saved model afterwards. (An
    early-stopped run keeps an earlier evaluation's weights; its report reads the test set anew when need be.)"""
    from sgdlab.data import load_mnist
    from sgdlab.plots.report import REPORT_NAME, write_report
    from sgdlab.runs.model_file import load_model
    from sgdlab.training import inspection
    from sgdlab.training.history import History

    config = settings.get("config", SMALL)
    passes = []
    predict_in_batches = inspection.predict_in_batches
    monkeypatch.setattr(inspection, "predict_in_batches", lambda *args: passes.append(1) or predict_in_batches(*args))
    run_dir, history = train_run(config, out=tmp_path / "run", data_dir=data_dir, plot=False,
                                 background=settings.get("background"))
    monkeypatch.undo()
    early = history.best_iteration is not None and history.best_iteration != history.iteration[-1]
    assert len(passes) == (1 if early else 0)
    network, _ = load_model(run_dir / "model.npz")
    _, test_set = load_mnist(normalize=False, data_dir=data_dir)
    (tmp_path / "again" / "run").mkdir(parents=True)
    again = write_report(tmp_path / "again" / "run", json.loads((run_dir / "config.json").read_text()),
                         History.from_dict(json.loads((run_dir / "history.json").read_text())), network, test_set)
    assert (run_dir / REPORT_NAME).read_text() == again.read_text()
