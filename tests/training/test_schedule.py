"""When a run evaluates and checkpoints, resolved once from its settings."""

from sgdlab.training.config import TrainConfig
from sgdlab.training.schedule import Schedule


def scheduled(schedule):
    """(iterations followed by a scheduled evaluation, those followed by a checkpoint of their own)."""
    steps = range(1, schedule.iterations + 1)
    return ([i for i in steps if schedule.evaluates_after(i)],
            [i for i in steps if schedule.checkpoints_alone_after(i)])


def test_evaluations_every_epoch_carry_the_checkpoints():
    # 60 images, batch 7: 9 iterations an epoch; the last iteration's evaluation is the run's end's, not scheduled
    schedule = Schedule.of(TrainConfig(iters=20, batch_size=7), 60, 9, checkpoints=True)
    assert schedule.evaluates_first and schedule.checkpoints_with_evaluations
    assert scheduled(schedule) == ([9, 18], [])
    assert schedule.evaluation_due(18) and not schedule.evaluation_due(20)


def test_checkpoints_of_their_own_with_checkpoint_every_or_without_evaluations():
    config = TrainConfig(iters=20, batch_size=7)
    assert scheduled(Schedule.of(config, 60, 9, checkpoint_every=5, checkpoints=True)) == ([9, 18], [5, 10, 15])
    only_at_the_end = Schedule.of(TrainConfig(iters=20, batch_size=7, eval_every=0), 60, 9, checkpoints=True)
    assert not only_at_the_end.evaluates_first
    assert scheduled(only_at_the_end) == ([], [9, 18])  # every epoch
    assert scheduled(Schedule.of(config, 60, 9, checkpoint_every=5)) == ([9, 18], [])  # no checkpoints asked for


def test_epochs_are_counted_on_the_images_trained_on():
    schedule = Schedule.of(TrainConfig(epochs=3, batch_size=7), 30, 5)
    assert schedule.iterations == 15 and scheduled(schedule)[0] == [5, 10]
