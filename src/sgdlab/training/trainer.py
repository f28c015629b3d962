"""The learning loop of chapter 4: draw a mini-batch, compute the gradient, update, repeat.

Accuracy on the whole training and test sets is measured before training,
after every full epoch and after the last iteration, so that the two curves
show whether the network overfits (`eval_every` spaces them otherwise; with
`test_eval` "last" the test set is measured at the last of them only).
"""

import contextlib
import math
import threading
import time
import warnings

import numpy as np

from ..data.augment import Augmenter
from ..data.batches import BatchSampler, BatchStream
from ..data.checks import check_data_set
from ..data.mnist import SAMPLE_SHAPE
from ..data.splits import held_out_rows
from ..engine.backprop import BackpropStep
from ..engine.perturbation import numerical_gradient_fast
from ..engine.threads import one_blas_thread, usable_cores
from ..errors import ConfigError, TrainingDiverged
from ..interrupts import interrupts_deferred
from ..nn.functions import as_labels
from ..ranges import POSITIVE_NUMBER
from .config import AUGMENT_DEFAULTS, TrainConfig
from .evaluation import Evaluator, measure_set, set_loss
from .history import INTERRUPTED, PER_EVALUATION_KEYS, History
from .learning_rate import LearningRate
from .schedule import Schedule
from .state import TrainingState


def seeded_generators(seed):
    """Independent generators for weight init, batch sampling and the validation split, all from one seed.

    Spawning keeps them independent: changing the sampling never changes the
    initial weights, and holding out a validation set changes neither.
    """
    return tuple(np.random.default_rng(sequence) for sequence in np.random.SeedSequence(seed).spawn(3))


def augmentation_generator(seed):
    """The generator of a run's augmentation, independent of `seeded_generators`' three (the fourth spawned from
    the seed: those three are the same with it or without)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])


def image_shape(x_train, network):
    """The (channels, height, width) of the training images, which augmentation moves: their own shape, a
    convolutional net's input, or MNIST's for rows of 784 pixels; a ConfigError for rows of anything else."""
    if x_train.ndim == 4:
        return x_train.shape[1:]
    if x_train.ndim == 3:
        return (1, *x_train.shape[1:])
    if len(network.input_shape) == 3:
        return network.input_shape
    if x_train.shape[1] == math.prod(SAMPLE_SHAPE):
        return SAMPLE_SHAPE
    raise ConfigError(f"augment moves images, and samples of {x_train.shape[1]} values are not known to be any: "
                      "give the training images as (N, channels, height, width), or leave augment out")


@contextlib.contextmanager
def progress_shown(show, total, done, on_iteration, on_evaluation):
    """`(on_iteration, on_evaluation)`, also moving a progress bar over `total` iterations (`done` already) if
    `show`; the bar is closed on the way out, however training ended."""
    if not show:
        yield on_iteration, on_evaluation
        return
    bar = _progress_bar(total, done)

    def iteration(number, loss):
        bar.update()
        if on_iteration is not None:
            on_iteration(number, loss)

    def evaluation(history):
        if history.test_acc[-1] is not None:
            bar.set_postfix_str(f"test acc {history.test_acc[-1]:.4f}", refresh=False)
        if on_evaluation is not None:
            on_evaluation(history)

    try:
        yield iteration, evaluation
    finally:
        bar.close()


def _progress_bar(total, done):
    """tqdm.auto's bar: a widget in Jupyter, text elsewhere. In a Jupyter without ipywidgets tqdm.auto falls back
    to text, but warns on import that ipywidgets is missing; the fallback is what is wanted, so that is muted."""
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.auto import tqdm
    return tqdm(total=total, initial=done, desc="training", unit="it")


class Trainer:
    """Trains `network` with `optimizer` for the mini-batch updates `config` asks (`iters`, or `epochs`).

    After `fit`, `network` holds the trained weights and `history` the record.
    `background` gathers the next mini-batches and runs the per-epoch
    evaluations on a background thread while training goes on (default: when
    a second core is there to run it); the history and weights are the same,
    bit for bit, either way.
    """

    def __init__(self, network, optimizer, config=None, background=None):
        self.network = network
        self.optimizer = optimizer
        self.config = config if config is not None else TrainConfig()
        self.background = background if background is not None else usable_cores() > 1
        self.history = None
        self.iterations = None  # the updates of the latest `fit`
        self._lr_request = None  # a learning rate asked for by `change_learning_rate`, until the loop takes it
        self._lr_lock = threading.Lock()
        self.rates = None  # the latest `fit`'s `LearningRate`
        self.augmenter = None  # the latest `fit`'s `Augmenter`, with augment
        self.test_scores = None  # after `fit`: the network's output scores on the test set, if an evaluation has them
        self._best = None  # with early_stop: (iteration, weights) of the best evaluation so far
        self._snapshots = {}  # with early_stop: the weights of each evaluation that counts, until it is recorded
        self._stop_at = None  # with early_stop: the evaluation after which the run stops

    @classmethod
    def from_config(cls, config=None, input_size=(1, 28, 28), output_size=10, background=None):
        """A trainer with the network and optimizer that `config` describes, for samples of `input_size` (a number
        of inputs, or one sample's shape: MNIST's images by default, as a convolutional net needs them)."""
        config = config if config is not None else TrainConfig()
        init_rng, _, _ = seeded_generators(config.seed)
        network = config.make_network(input_size, output_size, init_rng)
        return cls(network, config.make_optimizer(), config, background)

    def change_learning_rate(self, lr):
        """Train with `lr` from the next iteration on, the schedule going on from it (callable from any thread,
        before or during `fit`; see `sgdlab.training.learning_rate`); the change is recorded in
        `history.lr_changes`."""
        lr = POSITIVE_NUMBER.check("the learning rate", lr)
        with self._lr_lock:
            self._lr_request = lr

    def fit(self, x_train, t_train, x_test, t_test, *, on_iteration=None, on_evaluation=None, on_checkpoint=None,
            resume=None, checkpoint_every=None, progress=False):
        """Run the loop and return the `History`.

        Images may be floats in 0..1 or uint8 pixels (`load_mnist(normalize=False)`,
        a quarter of the memory, scaled to the same floats as batches use them);
        targets labels or one-hot rows. `on_iteration(iteration, loss)` is called
        after every update and `on_evaluation(history)` after every evaluation
        (for progress display). Ctrl-C stops after the current iteration: the
        network is evaluated one last time and the history, marked as stopped,
        is returned. A NaN or infinite loss raises `TrainingDiverged`, carrying
        the history so far. With `config.train_size`, only the first images of
        the training set are used; with `config.validation`, a fraction of
        those is held out and its accuracy recorded as `val_acc`.

        `on_checkpoint(state)` receives a `TrainingState` at each scheduled
        evaluation once it is recorded (every `checkpoint_every` iterations
        instead, if given; every epoch when there are no evaluations before
        the end), and where Ctrl-C stopped the run; `resume` continues from
        one, made by a trainer of the same settings, exactly as the run it
        came from would have gone on.

        With `config.augment`, each batch is moved at random (`sgdlab.data.augment`)
        before its gradient; each update's learning rate is `config.lr_schedule`'s
        (`sgdlab.training.learning_rate`); with `config.early_stop`, the run ends
        once that many evaluations have not beaten the best validation accuracy,
        with the best evaluation's weights (`history.best_iteration`,
        `history.early_stopped`).

        `progress=True` shows a progress bar, with the latest test accuracy:
        a widget in Jupyter, text on stderr elsewhere. It only watches, so the
        history and weights are the same, bit for bit, with it or without.
        """
        config = self.config
        train_size, held_out = self.check_data(x_train, t_train, x_test, t_test)
        x_train_images = x_train
        x_train, x_test = (x.reshape(len(x), -1) for x in (x_train, x_test))  # the batches and evaluations take rows
        _, sampling_rng, holdout_rng = seeded_generators(config.seed)
        rows = train_size + held_out
        x_train, t_train, validation = self.split(x_train[:rows], t_train[:rows], held_out, holdout_rng)
        sampler = BatchSampler(train_size, config.batch_size, config.sampling, sampling_rng)
        self.history = History(iters_per_epoch=math.ceil(train_size / config.batch_size))
        schedule = self._schedule = Schedule.of(config, train_size, self.history.iters_per_epoch, checkpoint_every,
                                                on_checkpoint is not None)
        self.iterations = schedule.iterations
        self.rates = LearningRate.of(config, self.iterations, self.history.iters_per_epoch)
        self.augmenter = Augmenter(image_shape(x_train_images, self.network),
                                   *(config.augment_range(name) for name in AUGMENT_DEFAULTS),
                                   augmentation_generator(config.seed)) if config.augment else None
        self._sampler, self._on_checkpoint, self._checkpoints, self._checkpointed = sampler, on_checkpoint, {}, None
        self._best, self._snapshots, self._stop_at = None, {}, None
        self.test_scores = None
        start = time.perf_counter()
        if resume is not None:
            resume.restore(self, sampler)
            self.history = History.from_dict(resume.history.to_dict())
            if self.history.iteration and not self.history.lr:  # a checkpoint of a version that recorded no rates:
                self.history.lr = [self.rates.at_evaluation(iteration, self.history.lr_changes)  # constant ones
                                   for iteration in self.history.iteration]
            self._resume_early_stop(resume)
            start -= self.history.seconds[-1] if self.history.seconds else 0.0  # its time so far counts
        done = len(self.history.loss)
        batches = BatchStream(x_train, sampler, self.network.dtype, self.iterations - done, self.background)
        evaluator = Evaluator(x_train, t_train, x_test, t_test, start, self.background, validation)
        # Ctrl-C is held and acted on between iterations (see sgdlab.interrupts); the last evaluation and the
        # closing of the threads run to the end.
        with interrupts_deferred() as pending, one_blas_thread(), contextlib.closing(batches), \
                contextlib.closing(evaluator), \
                progress_shown(progress, self.iterations, done, on_iteration, on_evaluation) as callbacks:
            on_iteration, on_evaluation = callbacks
            if schedule.evaluates_first and resume is None:
                self._submit(evaluator, 0)
                self._record(evaluator, on_evaluation)
            try:
                self._train(batches, done, as_labels(t_train), evaluator, on_iteration, on_evaluation, pending)
            except TrainingDiverged:
                if config.early_stop is not None:  # the run saved is the best evaluation's, as for any other end
                    self._keep_best(x_test, as_labels(t_test), measure=False)
                raise
            except KeyboardInterrupt as exc:
                by = f" by {exc.args[0]}" if exc.args else ""  # the signal, when one was held
                self.history.stopped = f"{INTERRUPTED}{by} after iteration {len(self.history.loss)}"
                self._checkpoint_where_stopped(evaluator, on_evaluation)
                if self._stop_at is not None:  # the evaluations waited for ended the run anyway: it is complete
                    self.history.stopped = None
            ended = len(self.history.loss) if self._stop_at is None else self._stop_at
            if evaluator.last_submitted != ended and self.history.iteration[-1:] != [ended]:
                self._keep_snapshot(ended, counts=ended == self.iterations)  # the end's counts, a stop's not
                evaluator.submit(self.network, ended)  # off schedule, the test set measured: not in any checkpoint
            self._record(evaluator, on_evaluation, wait=True)
        if config.early_stop is not None:
            self._keep_best(x_test, as_labels(t_test))
        self.test_scores = self._scores_of_the_weights_kept(evaluator.test_scores)
        return self.history

    def _scores_of_the_weights_kept(self, latest):
        """The test set's scores of the latest evaluation that measured it, `latest` (iteration, scores), if the
        network ended with that evaluation's weights (a run's last iteration's, or the best one's with early_stop);
        else None. A run's report reads its predictions from them rather than running the test set again."""
        kept = self.history.best_iteration if self.history.best_iteration is not None else len(self.history.loss)
        return latest[1] if latest is not None and latest[0] == kept else None

    def _submit(self, evaluator, iteration):
        """Start the scheduled evaluation after `iteration` updates, and note the state to checkpoint with it
        (when checkpoints follow the evaluations)."""
        if self._schedule.checkpoints_with_evaluations:
            self._checkpoints[iteration] = TrainingState.capture(self, self._sampler, iteration)
        self._keep_snapshot(iteration)
        evaluator.submit(self.network, iteration,  # the test set at the end, and before it if asked
                         test=self.config.test_eval == "every" or iteration == self.iterations)

    def _write_checkpoint(self, state):
        state.history.lr_changes = self.history.lr_changes_until(state.iteration)
        state.best = self._best[1] if self._best is not None else {}
        self._checkpointed = state.iteration
        self._on_checkpoint(state)

    def _checkpoint_now(self, evaluator, on_evaluation, iteration):
        """A checkpoint off the evaluations' schedule: the evaluations so far recorded first, then the state."""
        self._record(evaluator, on_evaluation, wait=True)
        state = TrainingState.capture(self, self._sampler, iteration)
        state.history = History.from_dict({**self.history.to_dict(), "loss": state.history.loss, "stopped": None})
        self._write_checkpoint(state)

    def _checkpoint_where_stopped(self, evaluator, on_evaluation):
        """After Ctrl-C: the state where the run stopped, with the evaluations made on schedule (one due
        there is made now), so that a continuation records what the uninterrupted run would have."""
        stopped_at = len(self.history.loss)
        if self._schedule.evaluation_due(stopped_at) and evaluator.last_submitted != stopped_at:
            self._submit(evaluator, stopped_at)
        self._record(evaluator, on_evaluation, wait=True)
        if self._schedule.checkpoints and self._checkpointed != stopped_at:
            state = TrainingState.capture(self, self._sampler, stopped_at)
            state.history = History.from_dict({**self.history.to_dict(), "stopped": None})
            self._write_checkpoint(state)

    def _train(self, batches, done, labels, evaluator, on_iteration, on_evaluation, pending):
        """The iterations after the first `done`: one update per batch, an evaluation submitted after each full
        epoch (or `eval_every` iterations); a signal `pending()` reports stops them before the next one."""
        history, schedule, compute_gradient = self.history, self._schedule, self._gradient_method()
        for iteration, (batch, x) in enumerate(batches, start=done + 1):
            if self._stop_at is not None:  # early stopping decided at an evaluation recorded since
                return
            if (signal_name := pending()) is not None:
                raise KeyboardInterrupt(signal_name)
            self._set_learning_rate(iteration - 1)
            if self.augmenter is not None:
                x = self.augmenter(x)
            loss = self._update(compute_gradient, x, labels[batch])
            if not math.isfinite(loss):
                self._record(evaluator, on_evaluation, wait=True)
                history.stopped = f"loss became {loss} at iteration {iteration}"
                raise TrainingDiverged("training.diverged", history, loss=f"{loss}", iteration=iteration,
                                       lr=f"{self.optimizer.lr}")  # as the command line writes them, in every language
            history.loss.append(float(loss))
            if on_iteration is not None:
                on_iteration(iteration, loss)
            if schedule.evaluates_after(iteration):
                self._submit(evaluator, iteration)
            self._record(evaluator, on_evaluation)
            if schedule.checkpoints_alone_after(iteration):
                self._checkpoint_now(evaluator, on_evaluation, iteration)

    def _set_learning_rate(self, done):
        """Give the optimizer the rate of the update after `done` others: the schedule's, or the rate asked for
        since the last iteration, if it is a new one (recorded, and the schedule goes on from it)."""
        with self._lr_lock:
            lr, self._lr_request = self._lr_request, None
        if lr is not None and lr != self.rates.of_update(done, self.history.lr_changes):
            self.history.record_lr_change(lr)
        self.optimizer.lr = self.rates.of_update(done, self.history.lr_changes)

    def split(self, x_train, t_train, held_out, rng):
        """(training images, their targets, the validation set or None): `held_out` of them drawn by `rng`."""
        if not held_out:
            return x_train, t_train, None
        train_rows, validation_rows = held_out_rows(len(x_train), held_out, rng)
        return x_train[train_rows], t_train[train_rows], (x_train[validation_rows], t_train[validation_rows])

    def _record(self, evaluator, on_evaluation, wait=False):
        """Move the evaluations that have finished (all of them, with `wait`) into the history."""
        for measured in evaluator.finished(wait):
            iteration, val_acc = measured.iteration, measured.val_acc
            state, snapshot = self._checkpoints.pop(iteration, None), self._snapshots.pop(iteration, None)
            if self._stop_at is not None and iteration > self._stop_at:
                continue  # submitted before early stopping was decided: not part of the run
            lr = self.rates.at_evaluation(iteration, self.history.lr_changes)
            losses = {"train_loss": measured.train_loss, "test_loss": measured.test_loss,
                      **({"val_loss": measured.val_loss} if val_acc is not None else {})}
            self.history.record_evaluation(iteration, measured.train_acc, measured.test_acc, measured.seconds,
                                           val_acc, lr, losses, measured.weight_percentiles)
            if snapshot is not None and (self._best is None or val_acc > self._best_val_acc()):
                self._best = (iteration, snapshot)
            if on_evaluation is not None:
                on_evaluation(self.history)
            if state is not None:  # its history: the losses up to there and the evaluations so far, this one last
                recorded = {key: list(getattr(self.history, key)) for key in PER_EVALUATION_KEYS}
                state.history = History(self.history.iters_per_epoch, loss=state.history.loss, **recorded)
                self._write_checkpoint(state)
            if snapshot is not None and self._patience_ran_out():
                self._stop_at = iteration

    # --- early stopping ------------------------------------------------------------------------------------

    def _keep_snapshot(self, iteration, counts=True):
        """With early_stop, keep the weights of the evaluation after `iteration` until it is recorded, if it
        `counts` (a scheduled one or the run's end: not where a run was stopped, which its continuation goes on
        past)."""
        if self.config.early_stop is not None and counts:
            self._snapshots[iteration] = {key: value.copy() for key, value in self.network.weights().items()}

    def _best_val_acc(self):
        return self.history.val_acc[self.history.iteration.index(self._best[0])]

    def _patience_ran_out(self):
        """Whether `early_stop` evaluations have been recorded since the best one (none better)."""
        return sum(1 for value in self.history.iteration if value > self._best[0]) >= self.config.early_stop

    def _resume_early_stop(self, state):
        """The best evaluation so far, from a checkpoint's history (the first of the highest validation
        accuracy) and its weights; and whether the run stopped there already."""
        if self.config.early_stop is None or not self.history.val_acc:
            return
        best = self.history.val_acc.index(max(self.history.val_acc))
        self._best = (self.history.iteration[best], state.best)
        if self._patience_ran_out():
            self._stop_at = self.history.iteration[-1]

    def _keep_best(self, x_test, labels, measure=True):
        """End an early-stopping run with the best evaluation's weights, naming it in the history (and why the
        run stopped, if it stopped before its length); the test set measured with them if it was not then (and
        `measure`: not for a run that diverged)."""
        history = self.history
        if self._stop_at is not None:
            history.truncate(self._stop_at)
            iteration = self._best[0]
            history.early_stopped = (f"the validation accuracy did not improve for {self.config.early_stop} "
                                     f"evaluations after {self._best_val_acc():.4f} at iteration {iteration} "
                                     f"(epoch {iteration / history.iters_per_epoch:g})")
        if self._best is None:
            return
        self.network.load_weights(self._best[1])
        history.best_iteration = self._best[0]
        index = history.iteration.index(self._best[0])
        if history.test_acc[index] is None and not history.interrupted and measure:
            with one_blas_thread():
                correct, loss_sum = measure_set(self.network, x_test, labels)
            history.test_acc[index] = correct / len(x_test)
            if history.test_loss:
                history.test_loss[index] = set_loss(self.network, loss_sum, len(x_test))

    def _update(self, compute_gradient, x, labels):
        """One gradient and, if its loss is finite, one update; returns the batch loss."""
        # A diverging run overflows before its loss turns non-finite; the caller reports that, once.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss, grads = compute_gradient(x, labels)
            if math.isfinite(loss):
                self.optimizer.update(self.network.params, grads)
        return loss

    def _gradient_method(self):
        """`(x, labels) -> (loss, grads)` for the configured gradient method."""
        if self.config.grad == "numerical":
            return lambda x, labels: numerical_gradient_fast(self.network, x, labels, follow_statistics=True)
        steps = {}  # by batch length: an epoch's last batch may be shorter

        def backprop(x, labels):
            step = steps.get(len(x))
            if step is None:
                step = steps[len(x)] = BackpropStep(self.network, len(x))
            return step(x, labels)

        return backprop

    def check_data(self, x_train, t_train, x_test, t_test):
        """Fail early, with a clear message, on data that cannot train this network; returns how many of the
        training images the run trains on and how many it holds out for validation (`config.data_rows`).

        `fit` checks its data first; a caller can check before anything else.
        """
        input_shape, num_classes = self.network.input_shape, self.network.output_size
        check_data_set(x_train, t_train, input_shape, num_classes, "training")
        check_data_set(x_test, t_test, input_shape, num_classes, "test")
        return self.config.checked_data_rows(x_train.shape[0], len(self.network.decayed_keys))
