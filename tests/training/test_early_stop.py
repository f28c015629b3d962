"""Early stopping: the run stops at the evaluation its patience runs out on, keeps the best evaluation's weights,
says so in its history, and continues from a checkpoint exactly as it would have gone on."""

import dataclasses
import threading

import numpy as np
import pytest

from sgdlab.errors import ConfigError, TrainingDiverged
from sgdlab.training.config import TrainConfig
from sgdlab.training.evaluation import Evaluator
from sgdlab.training.trainer import Trainer
from tests.training.blobs import blobs


@pytest.fixture(scope="module")
def data():
    return (*blobs(80, 0), *blobs(30, 1))  # 20 held out of 80 by validation 0.25: 60 trained, batch 6: 10 an epoch


# the validation accuracy at each evaluation (epochs 0, 1, ...): best at epoch 2, not beaten by its equal at 4
SCRIPT = [0.5, 0.6, 0.7, 0.65, 0.7, 0.69, 0.68, 0.9, 0.95, 0.97]


@pytest.fixture
def scripted(monkeypatch):
    """Evaluations whose validation accuracy is `SCRIPT`'s, by epoch (the rest measured as ever)."""
    evaluate = Evaluator._evaluate

    def evaluate_scripted(self, network, iteration, test):
        return dataclasses.replace(evaluate(self, network, iteration, test), val_acc=SCRIPT[iteration // 10])

    monkeypatch.setattr(Evaluator, "_evaluate", evaluate_scripted)


def make(background=False, **settings):
    config = TrainConfig(**{"epochs": 9, "batch_size": 6, "hidden_size": 5, "lr": 0.3, "validation": 0.25,
                            "early_stop": 3, **settings})
    return Trainer.from_config(config, input_size=6, output_size=3, background=background)


def weights_at_evaluations(trainer):
    """on_evaluation recording a copy of the weights at each evaluation (exact without a background thread,
    which evaluates in line, right after the update)."""
    seen = {}

    def record(history):
        seen[history.iteration[-1]] = {key: value.copy() for key, value in trainer.network.params.items()}
    return seen, record


@pytest.mark.parametrize("test_eval", ["every", "last"])
def test_the_run_stops_when_patience_runs_out_keeping_the_best_weights(data, scripted, test_eval):
    trainer = make(test_eval=test_eval)
    seen, record = weights_at_evaluations(trainer)
    history = trainer.fit(*data, on_evaluation=record)
    assert history.iteration == [0, 10, 20, 30, 40, 50]  # three evaluations after epoch 2's without a better one
    assert len(history.loss) == 50 and history.stopped is None
    assert history.best_iteration == 20
    assert history.early_stopped == ("the validation accuracy did not improve for 3 evaluations after 0.7000 at "
                                     "iteration 20 (epoch 2)")
    for key, value in seen[20].items():
        np.testing.assert_array_equal(trainer.network.params[key], value, err_msg=key)
    assert history.test_acc[2] is not None and history.final_test_acc == history.test_acc[2]  # measured, once kept
    if test_eval == "last":
        assert [value is None for value in history.test_acc] == [True, True, False, True, True, True]


def test_a_run_that_keeps_improving_runs_its_length_and_keeps_its_best(data, scripted):
    history = make(early_stop=5).fit(*data)  # four evaluations without a better one, then better ones
    assert history.iteration[-1] == 90 and history.early_stopped is None and history.best_iteration == 90


@pytest.fixture
def deciding_evaluation_late(monkeypatch):
    """On a background thread, the evaluation after iteration 50 (the one that ends the run) finishes only once
    training has gone on past it, to iteration 58: what a loaded machine may do."""
    released, evaluate = threading.Event(), Evaluator._evaluate

    def evaluate_late(self, network, iteration, test):
        if iteration == 50 and threading.current_thread() is not threading.main_thread():
            assert released.wait(30), "training did not go on past the deciding evaluation"
        return evaluate(self, network, iteration, test)

    monkeypatch.setattr(Evaluator, "_evaluate", evaluate_late)

    def release_at_58(iteration, loss):
        if iteration == 58:
            released.set()
    return release_at_58


def test_the_stop_is_the_same_with_evaluations_on_a_background_thread(data, scripted, deciding_evaluation_late):
    alone, beside = make(background=False), make(background=True)
    expected, history = alone.fit(*data), beside.fit(*data, on_iteration=deciding_evaluation_late)
    for key in ("loss", "iteration", "train_acc", "test_acc", "val_acc", "lr", "best_iteration", "early_stopped"):
        assert getattr(history, key) == getattr(expected, key), key
    for key, value in alone.network.params.items():
        np.testing.assert_array_equal(beside.network.params[key], value, err_msg=key)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("stop", [25, 40, 50])  # before the decision, on an evaluation, on the deciding one
def test_a_continued_run_stops_and_keeps_as_the_run_made_in_one_go(data, scripted, stop, background):
    whole = make(background)
    expected = whole.fit(*data)
    states = []

    def ctrl_c_after(iteration, loss):
        if iteration == stop:
            raise KeyboardInterrupt

    stopped = make(background).fit(*data, on_iteration=ctrl_c_after, on_checkpoint=states.append)
    assert states[-1].iteration == stop and states[-1].best
    # stopped on the deciding evaluation, the run is complete: the evaluation made there ended it anyway
    assert (stopped.stopped is None) == (stop == 50) and (stop < 50) == stopped.interrupted
    if stop == 50:
        assert stopped.loss == expected.loss and stopped.early_stopped == expected.early_stopped
    again = make(background)
    history = again.fit(*data, resume=states[-1])
    for key in ("loss", "iteration", "train_acc", "test_acc", "val_acc", "lr", "best_iteration", "early_stopped"):
        assert getattr(history, key) == getattr(expected, key), (key, stop)
    for key, value in whole.network.params.items():
        np.testing.assert_array_equal(again.network.params[key], value, err_msg=key)


def test_early_stop_needs_a_validation_set_and_evaluations(data):
    with pytest.raises(ConfigError, match=r"early_stop watches the validation accuracy: hold out a validation set "
                                          r"too \(validation 0.1, say\), or leave early_stop out"):
        TrainConfig(early_stop=3)
    with pytest.raises(ConfigError, match="early_stop needs evaluations during the run"):
        TrainConfig(early_stop=3, validation=0.1, eval_every=0)


def test_a_run_that_diverges_ends_with_the_best_evaluations_weights(data, scripted):
    trainer = make()
    seen, record = weights_at_evaluations(trainer)
    update = trainer._update

    def diverging_at_35(compute_gradient, x, labels):
        loss = update(compute_gradient, x, labels)
        return float("nan") if len(trainer.history.loss) == 34 else loss

    trainer._update = diverging_at_35
    with pytest.raises(TrainingDiverged) as diverged:
        trainer.fit(*data, on_evaluation=record)
    history = diverged.value.history
    assert history.iteration == [0, 10, 20, 30] and history.best_iteration == 20  # 0.7 at 20, 0.65 at 30
    for key, value in seen[20].items():
        np.testing.assert_array_equal(trainer.network.params[key], value, err_msg=key)
