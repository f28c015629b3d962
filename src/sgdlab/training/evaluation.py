"""Accuracy and loss on whole data sets: chunk by chunk, and on a second core while training goes on.

Each per-epoch evaluation runs 70000 images through the network, as much
arithmetic as 350 training iterations. It needs only a copy of the weights,
so a background thread can do it while the main thread keeps training; NumPy
releases the GIL inside its matrix products, so the two really run at once.
An evaluation splits its images in two halves, one per core, which matters
where nothing else runs beside it (`sgdlab evaluate`, a run's last one).
The loss of a set comes from the same scores as its accuracy: a log-softmax
of ten numbers per image, next to nothing beside the forward pass.
"""

import math
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from ..data.scaling import to_float
from ..engine.forward import ForwardPass
from ..engine.threads import usable_cores
from ..nn.functions import as_labels, log_softmax
from ..workers import BackgroundWorker
from .weight_distribution import weight_percentiles

CHUNK_ROWS = 1000  # images per forward pass: their buffers stay in cache, and BLAS runs at full rate
CACHED_BYTES = 16 << 20  # and fewer where a chunk's buffers would take more (a convolutional net's feature maps),
MIN_CHUNK_ROWS = 64  # but not fewer than this many (each chunk pays its calls' overhead again),
CHUNK_BYTES = 64 << 20  # within this bound (see `chunk_rows`)
MAX_WAITING = 1  # evaluations queued behind the running one; a submit beyond waits for the running one to end
SCALED_ONCE_ROWS = 2000  # uint8 sets this small are scaled to floats once, not at every evaluation


def count_correct(network, x, labels):
    """How many images in `x` (float or uint8 pixels) the network classifies as `labels`."""
    return measure_set(network, x, labels)[0]


def chunk_rows(network):
    """How many images a forward pass of an evaluation takes at a time: `CHUNK_ROWS`, fewer where their buffers
    would pass `CACHED_BYTES`, but at least `MIN_CHUNK_ROWS` while those stay within `CHUNK_BYTES` (and one at
    least). SimpleConvNet's 70000 images were evaluated 1.45x as fast in its chunks of 111 images as in the 447
    that 64 MB hold; DeepConvNet's as fast in 64 images as in 78, and 8 to 10% slower in the 19 that 16 MB hold
    (benchmarks/README.md)."""
    return rows_for(ForwardPass(network, 1).nbytes)


def rows_for(row_bytes):
    """`chunk_rows` of a network whose test-time pass of one image takes `row_bytes` of buffers (as declared by its
    layers, for `TrainConfig.memory_needed`, which estimates a run before its network is made)."""
    cached, bounded = (max(1, budget // row_bytes) for budget in (CACHED_BYTES, CHUNK_BYTES))
    return min(CHUNK_ROWS, max(cached, min(MIN_CHUNK_ROWS, bounded)))


def measure_set(network, x, labels, scores=None):
    """(how many images in `x` (float or uint8 pixels) the network classifies as `labels`, the sum of their
    cross-entropy losses) at test time: with a second core and more than a chunk's images, each half of them on
    one core. With `scores` (an array of a row per image), the network's output scores are written into it too."""
    x = x.reshape(len(x), -1)  # (N, 1, 28, 28) images too, as the Affine layer accepts them
    rows = min(len(x), chunk_rows(network))
    if len(x) <= rows or usable_cores() < 2:
        return _measure(network, x, labels, rows, scores)
    half = len(x) // 2
    halves = (None, None) if scores is None else (scores[:half], scores[half:])
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sgdlab-eval-half") as second_core:
        second = second_core.submit(_measure, network, x[half:], labels[half:], rows, halves[1])
        first_correct, first_loss = _measure(network, x[:half], labels[:half], rows, halves[0])
        second_correct, second_loss = second.result()
        return first_correct + second_correct, first_loss + second_loss


def _measure(network, x, labels, chunk_rows, scores=None):
    forward = ForwardPass(network, chunk_rows)
    buffer = np.empty((chunk_rows, x.shape[1]), network.dtype)
    correct, loss = 0, 0.0
    for start in range(0, len(x), chunk_rows):
        chunk, chunk_labels = x[start:start + chunk_rows], labels[start:start + chunk_rows]
        if chunk.dtype != network.dtype:
            chunk = to_float(chunk, buffer[:len(chunk)])
        chunk_scores = forward.scores(chunk)
        if scores is not None:
            scores[start:start + len(chunk)] = chunk_scores
        correct += int(np.count_nonzero(chunk_scores.argmax(axis=1) == chunk_labels))
        loss -= float(np.sum(log_softmax(chunk_scores)[np.arange(len(chunk)), chunk_labels], dtype=np.float64))
    return correct, loss


def set_loss(network, loss_sum, images):
    """The loss on a whole set of `images` as training defines it (the mean cross-entropy, plus weight decay's
    term), from the sum `measure_set` gives; None where it is not finite (a diverged network's)."""
    loss = loss_sum / images + network.weight_decay()
    return loss if math.isfinite(loss) else None


@dataclass
class Measured:
    """One evaluation: after `iteration` updates, the accuracy and loss on the whole training set, the test set
    (None unless measured) and the validation set (None without one), `seconds` after training started, and
    how the weights were spread then (`weight_distribution.weight_percentiles`)."""
    iteration: int
    train_acc: float
    test_acc: float | None
    seconds: float
    val_acc: float | None = None
    train_loss: float | None = None
    test_loss: float | None = None
    val_loss: float | None = None
    weight_percentiles: dict | None = None


class Evaluator:
    """Measures train and test accuracy of snapshots of a network, in order.

    `submit(network, iteration, test)` copies the weights and starts (or, with
    `background=False`, runs) the evaluation; `finished(wait)` yields the
    `Measured` of evaluations done so far, `seconds` being the time since
    `start` at which each finished, the test set's figures None unless `test`
    was asked and the validation set's None without a `validation` set
    `(x, t)`. A result
    leaves the queue only as it is yielded, so one that a caller did not get
    to (interrupted by Ctrl-C, say) is still there the next time.

    An evaluation can take longer than many iterations (`eval_every 1`), so
    at most `MAX_WAITING` wait behind the running one: `submit` waits until
    there is room. Each holds a copy of the weights, and a stop waits for
    those queued; the bound keeps both small, and training paced to them.

    `test_scores` holds the network's output scores on the test set at the
    latest evaluation that measured it, `(iteration, scores)`, so that a run's
    report reads its test set's predictions without a pass of its own.
    """

    def __init__(self, x_train, t_train, x_test, t_test, start, background, validation=None):
        self.train, self.test = (x_train, as_labels(t_train)), (x_test, as_labels(t_test))
        self.validation = None if validation is None else (validation[0], as_labels(validation[1]))
        self.start, self.background = start, background
        self.scaled = {}  # by set ("train", "test", "val") and float type: small sets, scaled once
        self.worker = BackgroundWorker("eval", background)
        self.pending = []
        self.last_submitted = None  # the iteration of the latest submit
        self.test_scores = None

    def submit(self, network, iteration, test=True):
        """Evaluate `network` after `iteration` updates (the test set too if `test`), once at most `MAX_WAITING`
        others wait: a copy of its weights on the thread, the network itself in line, measured before training
        goes on."""
        while len(unfinished := [future for future in self.pending if not future.done()]) > MAX_WAITING:
            wait(unfinished[:1], return_when=FIRST_COMPLETED)  # the running one: one worker runs them in order
        snapshot = network.copy() if self.background else network
        self.pending.append(self.worker.submit(self._evaluate, snapshot, iteration, test))
        self.last_submitted = iteration  # once it is there to be recorded

    def waiting(self):
        """How many submitted evaluations wait behind the one running (or, between two, the next to run): not
        counted by whether the worker thread has picked the next one up yet, which a loaded machine delays."""
        return max(0, sum(not future.done() for future in self.pending) - 1)

    def finished(self, wait=False):
        while self.pending and (wait or self.pending[0].done()):
            yield self.pending.pop(0).result()

    def close(self):
        self.worker.close()

    def _scaled(self, name, images, dtype):
        """`images` (the set `name`) as floats of `dtype` once and for all if they are few uint8 pixels (a search's
        subsets); else as they are, scaled chunk by chunk as they are measured (the whole training set stays uint8)."""
        if images.dtype != np.uint8 or len(images) > SCALED_ONCE_ROWS:
            return images
        if (name, dtype) not in self.scaled:
            flat = images.reshape(len(images), -1)
            self.scaled[name, dtype] = to_float(flat, np.empty(flat.shape, dtype))
        return self.scaled[name, dtype]

    def _evaluate(self, network, iteration, test):
        figures = {}
        test_scores = np.empty((len(self.test[0]), network.output_size), network.dtype) if test else None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverged network scores NaN
            for name, data, scores in (("train", self.train, None), ("test", self.test if test else None, test_scores),
                                       ("val", self.validation, None)):
                if data is not None:
                    correct, loss_sum = measure_set(network, self._scaled(name, data[0], network.dtype), data[1],
                                                    scores)
                    figures[f"{name}_acc"] = correct / len(data[0])
                    figures[f"{name}_loss"] = set_loss(network, loss_sum, len(data[0]))
        figures["weight_percentiles"] = weight_percentiles(network)  # of the same copy: the weights at `iteration`
        if test:
            self.test_scores = (iteration, test_scores)  # evaluations run one at a time, in order
        return Measured(iteration, figures.pop("train_acc"), figures.pop("test_acc", None),
                        time.perf_counter() - self.start, **figures)
