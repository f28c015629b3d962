"""The learning loop of chapter 4: draw a mini-batch, compute the gradient, update, repeat.

Accuracy on the whole training and test sets is measured before training,
after every full epoch and after the last iteration, so that the two curves
show whether the network overfits.
"""

import math
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from .backprop import BackpropStep
from .batches import BatchSampler, BatchStream
from .config import TrainConfig
from .errors import ConfigError, TrainingDiverged
from .evaluation import Evaluator, as_labels
from .history import History
from .network import TwoLayerNet
from .optimizers import SGD
from .pixels import check_images


def check_targets(t, num_classes, name):
    """Refuse targets that are neither labels in 0..num_classes-1 nor one-hot rows of that width."""
    t = np.asarray(t)
    if t.ndim == 2:
        if t.shape[1] != num_classes:
            raise ConfigError(f"the {name} targets are one-hot rows of width {t.shape[1]}, but the network has "
                              f"{num_classes} outputs")
        return
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
        raise ConfigError(f"the {name} targets must be integer labels (N,) or one-hot rows (N, {num_classes}), "
                          f"got {t.dtype} of shape {t.shape}")
    if t.min() < 0 or t.max() >= num_classes:
        raise ConfigError(f"the {name} labels range over {t.min()}..{t.max()}; the network has {num_classes} "
                          f"outputs, so labels must be in 0..{num_classes - 1}")


def usable_cores():
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def seeded_generators(seed):
    """Independent generators for weight init and batch sampling, both from one seed.

    Spawning keeps them independent: changing the sampling never changes the
    initial weights.
    """
    init_seq, sampling_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init_seq), np.random.default_rng(sampling_seq)


class Trainer:
    """Trains `network` with `optimizer` for `config.iters` mini-batch updates.

    After `fit`, `network` holds the trained weights and `history` the record.
    `second_core` runs the per-epoch evaluations, and the gathering of the
    next mini-batches, on a second core while training goes on (default: when
    there is one); the history and weights are the same either way.
    """

    def __init__(self, network, optimizer, config=None, second_core=None):
        self.network = network
        self.optimizer = optimizer
        self.config = config if config is not None else TrainConfig()
        self.second_core = second_core
        self.history = None

    @classmethod
    def from_config(cls, config=None, input_size=784, output_size=10, second_core=None):
        """A trainer with the network and SGD optimizer that `config` describes."""
        config = config if config is not None else TrainConfig()
        init_rng, _ = seeded_generators(config.seed)
        network = TwoLayerNet(input_size, config.hidden_size, output_size, config.weight_init_std,
                              config.activation, rng=init_rng, dtype=config.network_dtype)
        return cls(network, SGD(config.lr), config, second_core)

    def fit(self, x_train, t_train, x_test, t_test, *, on_iteration=None, on_evaluation=None):
        """Run the loop and return the `History`.

        Images may be floats in 0..1 or uint8 pixels (`load_mnist(normalize=False)`,
        a quarter of the memory, scaled to the same floats as batches use them);
        targets labels or one-hot rows. `on_iteration(iteration, loss)` is called
        after every update and `on_evaluation(history)` after every evaluation
        (for progress display). Ctrl-C stops after the current iteration: the
        network is evaluated one last time and the history, marked as stopped,
        is returned. A NaN or infinite loss raises `TrainingDiverged`, carrying
        the history so far.
        """
        config = self.config
        train_size = self.check_data(x_train, t_train, x_test, t_test)
        _, sampling_rng = seeded_generators(config.seed)
        sampler = BatchSampler(train_size, config.batch_size, config.sampling, sampling_rng)
        labels = as_labels(t_train)
        compute_gradient = self._gradient_method()
        iters_per_epoch = math.ceil(train_size / config.batch_size)
        history = self.history = History(iters_per_epoch=iters_per_epoch)
        second_core = self.second_core if self.second_core is not None else usable_cores() > 1
        batches = BatchStream(x_train, sampler, self.network.dtype, config.iters, background=second_core)
        evaluator = Evaluator(x_train, t_train, x_test, t_test, time.perf_counter(), background=second_core)

        def record(wait=False):
            for iteration, train_acc, test_acc, seconds in evaluator.finished(wait):
                history.record_evaluation(iteration, train_acc, test_acc, seconds)
                if on_evaluation is not None:
                    on_evaluation(history)

        # BLAS on one thread, whether or not evaluations run beside training: batch-100 products gain
        # little from more, and the results then depend neither on that choice nor on the core count.
        with threadpool_limits(limits=1, user_api="blas"):
            try:
                evaluator.submit(self.network, 0)
                record()
                try:
                    for iteration, (batch, x) in enumerate(batches, start=1):
                        loss = self._update(compute_gradient, x, labels[batch])
                        if not math.isfinite(loss):
                            record(wait=True)
                            history.stopped = f"loss became {loss} at iteration {iteration}"
                            raise TrainingDiverged(
                                f"the loss became {loss} at iteration {iteration}: training diverged; "
                                f"try a smaller learning rate than {config.lr} (--lr)", history)
                        history.loss.append(float(loss))
                        if on_iteration is not None:
                            on_iteration(iteration, loss)
                        if iteration % iters_per_epoch == 0 and iteration != config.iters:
                            evaluator.submit(self.network, iteration)
                        record()
                except KeyboardInterrupt:
                    history.stopped = f"interrupted after iteration {len(history.loss)}"
                if evaluator.last_submitted != len(history.loss):
                    evaluator.submit(self.network, len(history.loss))
                record(wait=True)
            finally:
                batches.close()
                evaluator.close()
        return history

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
            return self.network.loss_and_numerical_gradient
        steps = {}  # by batch length: an epoch's last batch may be shorter

        def backprop(x, labels):
            step = steps.get(len(x))
            if step is None:
                step = steps[len(x)] = BackpropStep(self.network, len(x))
            return step(x, labels)

        return backprop

    def check_data(self, x_train, t_train, x_test, t_test):
        """Fail early, with a clear message, on data that cannot train this network; returns the training set size.

        `fit` checks its data first; a caller can check before anything else.
        """
        input_size = self.network.sizes[0]
        for name, x, t in (("training", x_train, t_train), ("test", x_test, t_test)):
            check_images(x, name)
            if x.ndim != 2 or x.shape[1] != input_size:
                raise ConfigError(f"the {name} images have shape {x.shape}; the network needs (N, {input_size}): "
                                  "load them with flatten=True")
            if len(x) == 0:
                raise ConfigError(f"the {name} set is empty")
            if len(t) != len(x):
                raise ConfigError(f"the {name} set has {len(x)} images but {len(t)} targets")
            check_targets(t, self.network.sizes[-1], name)
        train_size = x_train.shape[0]
        if self.config.batch_size > train_size:
            raise ConfigError(f"batch size {self.config.batch_size} is larger than the training set "
                              f"({train_size} samples): choose a batch size of at most {train_size}")
        return train_size


def estimate_textbook_gradient_seconds(network, x_batch, t_batch, repeats=5):
    """Seconds one textbook numerical gradient would take: two loss evaluations per parameter."""
    x_batch = x_batch.astype(np.float64, copy=False)
    network.loss(x_batch, t_batch)  # warm-up: the first pass pays for allocation and thread start-up
    started = time.perf_counter()
    for _ in range(repeats):
        network.loss(x_batch, t_batch)
    per_loss = (time.perf_counter() - started) / repeats
    return 2 * network.num_params * per_loss


def measure_numerical_gradient_seconds(network, x_batch, t_batch, repeats=3):
    """Seconds one numerical gradient takes here, as training computes it (the fastest of a few runs)."""
    x_batch = x_batch.astype(np.float64, copy=False)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        network.loss_and_numerical_gradient(x_batch, t_batch)
        times.append(time.perf_counter() - started)
    return min(times)
