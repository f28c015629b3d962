"""The learning rate in force at each update: the schedules against their definitions, a rate set during the
run rescaling them, and the trainer, its history and a continued run all using that one definition."""

import math

import numpy as np
import pytest

from sgdlab.errors import ConfigError
from sgdlab.training.config import TrainConfig
from sgdlab.training.learning_rate import LearningRate, check_lr_schedule, parse_lr_schedule
from sgdlab.training.trainer import Trainer
from tests.training.blobs import blobs


@pytest.fixture(scope="module")
def data():
    return (*blobs(70, 0), *blobs(30, 1))  # batch 7: 10 iterations an epoch


def test_step_multiplies_the_rate_by_its_factor_every_so_many_epochs():
    rates = LearningRate(0.1, "step:2:0.5", iterations=100, iters_per_epoch=10)
    assert [rates.of_update(t) for t in (0, 19, 20, 39, 40, 99)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.1 * 0.5 ** 4]
    assert all(rates.of_update(t) == 0.1 * 0.5 ** (t // 20) for t in range(100))


def test_cosine_falls_from_the_rate_to_just_above_zero_over_the_run():
    rates = LearningRate(0.2, "cosine", iterations=100, iters_per_epoch=7)
    assert rates.of_update(0) == 0.2 and rates.of_update(50) == pytest.approx(0.1, abs=1e-15)
    assert all(rates.of_update(t) == pytest.approx(0.2 * (1 + math.cos(math.pi * t / 100)) / 2, rel=1e-13)
               for t in range(100))
    steps = [rates.of_update(t) for t in range(100)]
    assert all(a > b for a, b in zip(steps, steps[1:])) and 0 < steps[-1] < 0.2 * 3e-4


@pytest.mark.parametrize("iterations", [10 ** 7, 10 ** 9, 10 ** 12])
def test_cosine_keeps_its_precision_to_its_last_update_however_long_the_run(iterations):
    # the last factor, (1 + cos(pi (T - 1) / T)) / 2 = sin(pi / (2 T)) ** 2 = (pi / (2 T)) ** 2 to 1e-12 and better
    rates = LearningRate(1.0, "cosine", iterations=iterations, iters_per_epoch=100)
    assert rates.of_update(iterations - 1) == pytest.approx((math.pi / (2 * iterations)) ** 2, rel=1e-9)
    changes = [{"iteration": iterations - 2, "lr": 0.5}]  # a change near the end: no 0 to divide by
    assert 0.5 > rates.of_update(iterations - 1, changes) > 0


def test_a_step_schedule_that_would_take_the_rate_to_zero_is_refused_before_training(data):
    trainer = make(lr_schedule="step:1:1e-200")  # 6 epochs: 1e-200 ** 2 underflows to 0 at the third
    with pytest.raises(ConfigError, match=r"lr_schedule step:1:1e-200 takes the rate 0.3 to 0 before the run's 60 "
                                          r"updates end: use a factor nearer 1 or more epochs a step"):
        trainer.fit(*data)
    assert make(lr_schedule="step:3:1e-200").fit(*data).lr[-1] == pytest.approx(0.3e-200)  # once: not refused


def test_constant_keeps_the_rate_and_a_change_replaces_it():
    rates = LearningRate(0.1, "constant", iterations=50, iters_per_epoch=5)
    changes = [{"iteration": 10, "lr": 0.02}]
    assert [rates.of_update(t, changes) for t in (0, 9, 10, 49)] == [0.1, 0.1, 0.02, 0.02]


@pytest.mark.parametrize("schedule", ["step:1:0.5", "cosine"])
def test_a_rate_set_during_the_run_rescales_the_schedule_from_there(schedule):
    rates = LearningRate(0.1, schedule, iterations=60, iters_per_epoch=10)
    changes = [{"iteration": 25, "lr": 0.4}]
    assert rates.of_update(24, changes) == rates.of_update(24)  # before it: the schedule alone
    assert rates.of_update(25, changes) == 0.4  # the rate set, exactly
    for t in range(26, 60):  # then the schedule's decay since the change, applied to it
        assert rates.of_update(t, changes) == pytest.approx(0.4 * rates.of_update(t) / rates.of_update(25), rel=1e-12)
    assert rates.at_evaluation(0, changes) == 0.1 and rates.at_evaluation(30, changes) == rates.of_update(29, changes)


def test_schedules_are_read_as_written_and_bad_ones_refused_naming_the_forms():
    assert parse_lr_schedule("step:5:.5") == "step:5:0.5" and parse_lr_schedule(" cosine ") == "cosine"
    assert TrainConfig(lr_schedule="step:3:.1").lr_schedule == "step:3:0.1"  # as config.json keeps it
    for text in ("step:0:0.5", "step:2:0", "step:2:1.5", "step:2", "step:x:0.5", "cos", "cosine:0.1", ""):
        with pytest.raises(ValueError, match="step:EPOCHS:FACTOR"):
            parse_lr_schedule(text)
    with pytest.raises(ConfigError, match="lr_schedule must be constant, step:EPOCHS:FACTOR"):
        check_lr_schedule("lr_schedule", 3)


def rates_used(trainer, data, **fit):
    """The optimizer's rate at each update of `trainer.fit(*data, **fit)`, and the history."""
    used, update = [], trainer._update

    def recording(compute_gradient, x, labels):
        used.append(trainer.optimizer.lr)
        return update(compute_gradient, x, labels)

    trainer._update = recording
    return used, trainer.fit(*data, **fit)


def make(**settings):
    config = TrainConfig(**{"epochs": 6, "batch_size": 7, "hidden_size": 5, "lr": 0.3, **settings})
    return Trainer.from_config(config, input_size=6, output_size=3, background=False)


@pytest.mark.parametrize("schedule", ["step:2:0.5", "cosine"])
def test_the_trainer_updates_at_the_schedules_rates_and_records_them_at_each_evaluation(data, schedule):
    trainer = make(lr_schedule=schedule)
    used, history = rates_used(trainer, data)
    definition = LearningRate(0.3, schedule, 60, 10)
    assert used == [definition.of_update(t) for t in range(60)]
    assert history.iteration == [0, 10, 20, 30, 40, 50, 60]
    assert history.lr == [0.3, *(used[i - 1] for i in history.iteration[1:])]
    if schedule.startswith("step"):
        assert history.lr == [0.3, 0.3, 0.3, 0.15, 0.15, 0.075, 0.075]


def test_a_rate_set_during_a_scheduled_run_is_recorded_and_rescales_what_follows(data):
    trainer = make(lr_schedule="step:2:0.5")

    def set_at_25(iteration, loss):
        if iteration == 25:
            trainer.change_learning_rate(1.0)

    used, history = rates_used(trainer, data, on_iteration=set_at_25)
    assert history.lr_changes == [{"iteration": 25, "lr": 1.0}]
    assert used[:25] == [0.3] * 20 + [0.15] * 5 and used[25:40] == [1.0] * 15 and used[40:] == [0.5] * 20
    assert history.lr[-1] == 0.5


def test_a_continued_scheduled_run_with_a_rate_set_before_its_stop_equals_the_run_made_in_one_go(data):
    def set_at_15_stop_at(stop):
        def callback(iteration, loss):
            if iteration == 15:
                trainer.change_learning_rate(0.9)
            if iteration == stop:
                raise KeyboardInterrupt
        return callback

    whole = trainer = make(lr_schedule="cosine")
    expected = whole.fit(*data, on_iteration=set_at_15_stop_at(None))
    states = []
    trainer = make(lr_schedule="cosine")
    stopped = trainer.fit(*data, on_iteration=set_at_15_stop_at(33), on_checkpoint=states.append)
    assert stopped.interrupted and states[-1].iteration == 33
    again = make(lr_schedule="cosine")
    history = again.fit(*data, resume=states[-1])
    for key in ("loss", "train_acc", "test_acc", "lr", "lr_changes"):
        assert getattr(history, key) == getattr(expected, key), key
    for key, value in whole.network.params.items():
        np.testing.assert_array_equal(again.network.params[key], value, err_msg=key)


def test_a_checkpoint_of_a_version_that_recorded_no_rates_continues_recording_them(data):
    whole = make()
    expected = whole.fit(*data)
    states = []

    def stop_at_33(iteration, loss):
        if iteration == 33:
            raise KeyboardInterrupt

    make().fit(*data, on_iteration=stop_at_33, on_checkpoint=states.append)
    state = states[-1]
    state.history.lr = []  # as sgdlab wrote its checkpoints before it recorded each evaluation's rate
    again = make()
    history = again.fit(*data, resume=state)
    assert history.lr == expected.lr == [0.3] * 7 and history.loss == expected.loss
    assert type(history).from_dict(history.to_dict()).lr == history.lr  # and what it records reads back
