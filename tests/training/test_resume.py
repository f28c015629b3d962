"""A run stopped and continued from its checkpoint state equals the run made in one go, bit for bit."""

from pathlib import Path

import numpy as np
import pytest

from sgdlab.nn.optimizers import OPTIMIZERS
from sgdlab.runs.checkpoint import load_checkpoint
from sgdlab.training.config import TrainConfig
from sgdlab.training.history import EVALUATION_KEYS
from sgdlab.training.trainer import Trainer
from tests.training.blobs import blobs

LEARNED = [key for key in EVALUATION_KEYS if key != "seconds"] + ["loss", "val_acc", "iters_per_epoch"]


@pytest.fixture(scope="module")
def data():
    return (*blobs(80, 0), *blobs(30, 1))


def trainer(background, **settings):
    defaults = {"iters": 40, "batch_size": 7, "lr": 0.3, **({} if "hidden_sizes" in settings else {"hidden_size": 5})}
    config = TrainConfig(**{**defaults, **settings})
    return Trainer.from_config(config, input_size=6, output_size=3, background=background)


def stopped_at(stop, background, data, **settings):
    """The checkpoints of a run stopped by Ctrl-C after iteration `stop`."""
    states = []

    def ctrl_c_after(iteration, loss):
        if iteration == stop:
            raise KeyboardInterrupt

    history = trainer(background, **settings).fit(*data, on_iteration=ctrl_c_after, on_checkpoint=states.append)
    assert history.interrupted and len(history.loss) == stop
    return states


CASES = {
    **{name: {"optimizer": name, "lr": 10 * optimizer.default_lr} for name, optimizer in OPTIMIZERS.items()},
    "dropout-batchnorm-deep": {"hidden_sizes": (6, 5), "activation": "relu", "weight_init_std": "he",
                               "dropout": 0.3, "batch_norm": True, "weight_decay": 0.01},
    "epoch-sampling-validation": {"sampling": "epoch", "validation": 0.25, "eval_every": 5},
    "float64": {"dtype": "float64"},
    "numerical": {"grad": "numerical", "iters": 20, "hidden_sizes": (4, 3), "activation": "relu", "dropout": 0.2,
                  "batch_norm": True},
}


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stop", [13, 18, 1])  # between evaluations, on one (18 = 2 epochs of 9), the first
def test_a_continued_run_equals_the_run_made_in_one_go(data, case, stop, background):
    settings = CASES[case]
    whole = trainer(background, **settings)
    expected = whole.fit(*data)
    states = stopped_at(stop, background, data, **settings)
    assert states[-1].iteration == stop  # the last checkpoint is where it stopped
    for state in (states[-1], states[0]):  # continued from where it stopped, and from its first checkpoint
        again = trainer(background, **settings)
        history = again.fit(*data, resume=state)
        for key in (*LEARNED, "weight_percentiles"):  # the weights' spread at the evaluations before, from the checkpoint
            assert getattr(history, key) == getattr(expected, key), (key, state.iteration)
        assert history.stopped is None
        for key, value in whole.network.params.items():
            np.testing.assert_array_equal(again.network.params[key], value, err_msg=key)
        for key, value in whole.network.running_statistics.items():
            np.testing.assert_array_equal(again.network.running_statistics[key], value, err_msg=key)


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.3), ("momentum", 0.05), ("adam", 0.01)])
def test_a_checkpoint_written_by_sgdlab_0_1_0_continues_its_run_bit_for_bit(optimizer, lr):
    # Written by sgdlab 0.1.0, whose optimizers other than Adam saved no count of their updates: this run,
    # stopped after iteration 13 (a checkpoint holds a net for MNIST's sizes).
    config = TrainConfig(iters=40, batch_size=7, lr=lr, hidden_size=2, optimizer=optimizer)
    mnist_sized = (*blobs(80, 0, 784, 10), *blobs(30, 1, 784, 10))
    path = Path(__file__).parent / f"checkpoint-0.1.0-{optimizer}.npz"
    state = load_checkpoint(path, config.resolved().to_dict())
    assert state.iteration == 13 and int(state.optimizer["iter"]) == 13
    whole = Trainer.from_config(config, background=False)
    expected = whole.fit(*mnist_sized)
    again = Trainer.from_config(config, background=False)
    history = again.fit(*mnist_sized, resume=state)
    assert again.optimizer.iter == whole.optimizer.iter == 40
    for key in LEARNED:
        assert getattr(history, key) == getattr(expected, key), key
    for key, value in whole.network.params.items():
        np.testing.assert_array_equal(again.network.params[key], value, err_msg=key)


def test_a_nesterov_checkpoint_written_by_sgdlab_0_1_0_is_refused_rather_than_continued_by_another_rule():
    from sgdlab.errors import SgdlabError

    # 0.1.0's Nesterov updated the velocity first: half a run by each rule is neither run
    config = TrainConfig(iters=40, batch_size=7, lr=0.05, hidden_size=2, optimizer="nesterov")
    with pytest.raises(SgdlabError, match=r"written by sgdlab 0\.1\.0, whose Nesterov rule .* train it again"):
        load_checkpoint(Path(__file__).parent / "checkpoint-0.1.0-nesterov.npz", config.resolved().to_dict())


@pytest.mark.usefixtures("terminal_signals")
def test_a_signal_in_the_middle_of_an_iteration_stops_the_run_between_two(data):
    """Ctrl-C pressed while an update is computed (after its dropout masks are drawn) takes effect after it."""
    import os
    import signal

    settings = {"hidden_sizes": (6, 5), "activation": "relu", "dropout": 0.3, "batch_norm": True}
    expected = trainer(False, **settings).fit(*data)
    states = []
    interrupted = trainer(False, **settings)
    update = interrupted._update

    def update_then_ctrl_c(compute_gradient, x, labels):
        def gradient_then_ctrl_c(*args):
            result = compute_gradient(*args)
            if len(interrupted.history.loss) == 12:
                os.kill(os.getpid(), signal.SIGINT)  # arrives inside iteration 13
            return result
        return update(gradient_then_ctrl_c, x, labels)

    interrupted._update = update_then_ctrl_c
    history = interrupted.fit(*data, on_checkpoint=states.append)
    assert history.stopped == "interrupted by SIGINT after iteration 13"
    assert states[-1].iteration == 13
    again = trainer(False, **settings)
    assert again.fit(*data, resume=states[-1]).loss == expected.loss


@pytest.mark.parametrize("test_eval", ["every", "last"])
def test_a_run_stopped_at_its_last_iteration_resumes_without_a_second_evaluation(data, test_eval):
    settings = {"epochs": 4, "iters": None, "test_eval": test_eval}
    expected = trainer(False, **settings).fit(*data)  # 12 iterations an epoch: 48, evaluated there
    states = stopped_at(48, False, data, **settings)
    history = trainer(False, **settings).fit(*data, resume=states[-1])
    assert history.iteration == expected.iteration == [0, 12, 24, 36, 48]
    assert history.test_acc == expected.test_acc and history.stopped is None
    assert history.test_acc[-1] is not None  # the test set measured at the end, however the run got there


@pytest.mark.parametrize("settings, checkpoints", [
    ({"eval_every": 0}, [12, 24, 36]),  # no evaluations before the end: one checkpoint an epoch (ceil(80 / 7))
    ({"checkpoint_every": 5}, [5, 10, 15, 20, 25, 30, 35, 36]),
    ({"checkpoint_every": 5, "eval_every": 10}, [5, 10, 15, 20, 25, 30, 35, 36]),
])
def test_checkpoints_off_the_evaluations_schedule_resume_as_exactly(data, settings, checkpoints):
    checkpoint_every = settings.pop("checkpoint_every", None)
    expected = trainer(True, **settings).fit(*data)
    states = []

    def ctrl_c_after_36(iteration, loss):
        if iteration == 36:
            raise KeyboardInterrupt

    trainer(True, **settings).fit(*data, on_iteration=ctrl_c_after_36, on_checkpoint=states.append,
                                  checkpoint_every=checkpoint_every)
    assert [state.iteration for state in states] == checkpoints
    for state in (states[1], states[-1]):
        history = trainer(True, **settings).fit(*data, resume=state)
        for key in LEARNED:
            assert getattr(history, key) == getattr(expected, key), (key, state.iteration)


# --- a new learning rate -------------------------------------------------------------------------

def changing_lr(trainer_, changes):
    """An `on_iteration` that asks `trainer_` for the rate `changes[n]` once n iterations are done."""
    def on_iteration(iteration, loss):
        if iteration in changes:
            trainer_.change_learning_rate(changes[iteration])
    return on_iteration


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("case", ["sgd", "adam", "epoch-sampling-validation"])
def test_a_rate_changed_during_the_run_applies_from_the_next_iteration_and_is_recorded(data, case, background):
    settings = {"lr": 0.3, **CASES[case]}
    changed = trainer(background, **settings)
    history = changed.fit(*data, on_iteration=changing_lr(changed, {10: 0.05, 25: 0.2}))
    assert history.lr_changes == [{"iteration": 10, "lr": 0.05}, {"iteration": 25, "lr": 0.2}]
    assert changed.optimizer.lr == 0.2
    plain = trainer(background, **settings).fit(*data)
    assert history.loss[:11] == plain.loss[:11]  # the 11th loss is measured before the 11th update
    assert history.loss[11] != plain.loss[11]  # the 11th update used the new rate


@pytest.mark.parametrize("stop", [10, 18])  # between evaluations, on one
def test_a_run_continued_with_a_new_rate_equals_the_run_whose_rate_changed_there(data, stop):
    settings = {"hidden_sizes": (6, 5), "dropout": 0.3, "batch_norm": True, "optimizer": "momentum", "lr": 0.05}
    whole = trainer(False, **settings)
    expected = whole.fit(*data, on_iteration=changing_lr(whole, {stop: 0.01}))
    state = stopped_at(stop, False, data, **settings)[-1]
    again = trainer(False, **settings)
    again.change_learning_rate(0.01)
    history = again.fit(*data, resume=state)
    assert history.lr_changes == [{"iteration": stop, "lr": 0.01}]
    for key in LEARNED:
        assert getattr(history, key) == getattr(expected, key), key
    for key, value in whole.network.params.items():
        np.testing.assert_array_equal(again.network.params[key], value, err_msg=key)


def test_checkpoints_hold_the_rate_changes_made_until_then_and_a_continuation_keeps_the_rate(data):
    whole = trainer(True, eval_every=5)
    expected = whole.fit(*data, on_iteration=changing_lr(whole, {7: 0.1, 23: 0.02}))
    states = []
    interrupted = trainer(True, eval_every=5)
    changes = changing_lr(interrupted, {7: 0.1, 23: 0.02})

    def change_then_stop(iteration, loss):
        changes(iteration, loss)
        if iteration == 30:
            raise KeyboardInterrupt

    interrupted.fit(*data, on_iteration=change_then_stop, on_checkpoint=states.append)
    for state in states:
        assert state.history.lr_changes == [c for c in expected.lr_changes if c["iteration"] <= state.iteration]
    for state in (states[1], states[3], states[-1]):  # before any change, after one, after both
        again = trainer(True, eval_every=5)
        if state.iteration < 7:
            again_changes = changing_lr(again, {7: 0.1, 23: 0.02})
        elif state.iteration < 23:
            again_changes = changing_lr(again, {23: 0.02})
        else:
            again_changes = None
        history = again.fit(*data, resume=state, on_iteration=again_changes)
        assert history.loss == expected.loss and history.lr_changes == expected.lr_changes, state.iteration


def test_asking_for_the_rate_in_use_changes_nothing_and_a_bad_rate_is_refused(data):
    same = trainer(False)
    history = same.fit(*data, on_iteration=changing_lr(same, {5: 0.3}))
    assert history.lr_changes == []
    with pytest.raises(ValueError, match="learning rate"):
        same.change_learning_rate(-1.0)


def digits(n, seed):
    """Small MNIST-shaped images, as rows of 784 pixels: a bright bar whose height is the class, on noise, for
    augmentation to move."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, n)
    x = rng.random((n, 1, 28, 28)) * 0.2
    for i, label in enumerate(t):
        x[i, 0, 6 + 6 * label:10 + 6 * label, 8:20] = 1.0
    return x.reshape(n, -1), t


@pytest.fixture(scope="module")
def images():
    return (*digits(80, 0), *digits(30, 1))


AUGMENTED = {
    "dense": {"augment": True, "augment_rotate": 20.0},
    "conv-step-schedule": {"net": "simple-convnet", "filter_num": 3, "filter_size": 3, "hidden_size": 6,
                           "optimizer": "adam", "lr": 0.01, "augment": True, "lr_schedule": "step:1:0.5"},
    "cosine-dropout": {"augment": True, "lr_schedule": "cosine", "dropout": 0.2, "hidden_sizes": (6, 5)},
}


def image_trainer(background, **settings):
    defaults = {"iters": 40, "batch_size": 7, "lr": 0.3,
                **({} if "hidden_sizes" in settings or "net" in settings else {"hidden_size": 5})}
    config = TrainConfig(**{**defaults, **settings})
    return Trainer.from_config(config, input_size=(1, 28, 28), output_size=3, background=background)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("case", AUGMENTED)
@pytest.mark.parametrize("stop", [13, 18])
def test_an_augmented_scheduled_run_continued_equals_the_run_made_in_one_go(images, case, stop, background):
    settings = AUGMENTED[case]
    whole = image_trainer(background, **settings)
    expected = whole.fit(*images)
    plain = image_trainer(background, **{key: value for key, value in settings.items()
                                          if not key.startswith("augment")}).fit(*images)
    assert plain.loss != expected.loss  # the batches were moved
    states = []

    def ctrl_c_after(iteration, loss):
        if iteration == stop:
            raise KeyboardInterrupt

    image_trainer(background, **settings).fit(*images, on_iteration=ctrl_c_after, on_checkpoint=states.append)
    assert states[-1].iteration == stop and states[-1].augment is not None
    again = image_trainer(background, **settings)
    history = again.fit(*images, resume=states[-1])
    for key in (*LEARNED, "lr"):
        assert getattr(history, key) == getattr(expected, key), key
    for key, value in whole.network.params.items():
        np.testing.assert_array_equal(again.network.params[key], value, err_msg=key)


@pytest.mark.parametrize("net", [{}, {"net": "simple-convnet", "filter_num": 3, "filter_size": 3, "hidden_size": 6,
                                      "optimizer": "adam", "lr": 0.01}], ids=["dense", "conv"])
def test_augmentation_of_zero_ranges_trains_exactly_as_none(images, net):
    zero = image_trainer(False, augment=True, augment_shift=0.0, augment_rotate=0.0, augment_scale=0.0, **net)
    none = image_trainer(False, **net)
    assert zero.fit(*images).loss == none.fit(*images).loss
    for key, value in none.network.params.items():
        np.testing.assert_array_equal(zero.network.params[key], value, err_msg=key)


def test_a_checkpoint_with_augmentation_goes_through_its_file(images, tmp_path):
    from sgdlab.runs.checkpoint import save_checkpoint

    settings = AUGMENTED["dense"]
    states = []
    image_trainer(False, **settings).fit(*images, on_checkpoint=states.append, checkpoint_every=10)
    config = TrainConfig(**{"iters": 40, "batch_size": 7, "lr": 0.3, "hidden_size": 5, **settings})
    save_checkpoint(tmp_path / "checkpoint.npz", states[1], config.resolved().to_dict())
    import json
    import zipfile

    with zipfile.ZipFile(tmp_path / "checkpoint.npz") as archive:
        meta = json.loads(np.lib.format.read_array(archive.open("meta.npy")).tobytes())
    assert meta["augment"] == states[1].augment and meta["iteration"] == 20


def test_augmenting_rows_that_are_no_known_image_is_refused_naming_the_fix(data):
    from sgdlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"augment moves images, and samples of 6 values are not known"):
        trainer(False, augment=True).fit(*data)
