"""The training loop's mini-batches: which rows each one draws, and those rows as floats, gathered ahead.

Gathering 100 random rows and scaling them to floats costs the training
thread about a tenth of an iteration, mostly waiting on memory. `BatchStream`
does it a block of batches at a time, on a second core while the first
trains on the previous block. The indices are drawn in the same order either
way, so the batches, and the training, are the same.
"""

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .pixels import to_float


class BatchSampler:
    """Mini-batch indices: "random" draws each batch independently with replacement
    (the book's `np.random.choice(train_size, batch_size)`); "epoch" walks a fresh
    shuffle of the training set each epoch, so every sample is seen once per epoch.
    Random batches are drawn a block at a time, one call to the generator for
    many batches.
    """

    BLOCK_ROWS = 10_000  # indices drawn per call to the generator

    def __init__(self, train_size, batch_size, method, rng):
        self.train_size = train_size
        self.batch_size = batch_size
        self.method = method
        self.rng = rng
        self._drawn = np.empty((0, batch_size), dtype=np.int64)  # random: rows of batches; epoch: a shuffle
        self._position = 0

    def next(self):
        return self._next_random() if self.method == "random" else self._next_shuffled()

    def _next_random(self):
        if self._position == len(self._drawn):
            batches = max(1, self.BLOCK_ROWS // self.batch_size)
            self._drawn = self.rng.integers(0, self.train_size, (batches, self.batch_size))
            self._position = 0
        self._position += 1
        return self._drawn[self._position - 1]

    def _next_shuffled(self):
        if self._position >= len(self._drawn):
            self._drawn = self.rng.permutation(self.train_size)
            self._position = 0
        batch = self._drawn[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        return batch


class BatchStream:
    """`count` mini-batches from `sampler`, as `(indices, x)`: `x` holds those rows of `images` as `dtype`.

    Rows are gathered (and uint8 pixels scaled) a block of about `BLOCK_ROWS`
    at a time, the next block on a worker thread while the loop trains on this
    one when `background`. Each `x` is a view into a reused buffer: use it
    before asking for the next batch. Call `close()` when done, also after
    stopping early.
    """

    BLOCK_ROWS = 1000  # 3 MB of float32 per block: big enough to amortise the hand-over, small enough for cache

    def __init__(self, images, sampler, dtype, count, background):
        self.images = images
        self.sampler = sampler
        self.count = count
        self.batches_per_block = max(1, self.BLOCK_ROWS // sampler.batch_size)
        rows = self.batches_per_block * sampler.batch_size
        self.blocks = [np.empty((rows, images.shape[1]), dtype) for _ in range(2)]
        self.staging = None if images.dtype == dtype else np.empty((rows, images.shape[1]), images.dtype)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sgdlab-batches") if background else None

    def __iter__(self):
        left = self.count
        batches = self._draw(left)
        job = self._start(batches, slot=0)
        slot = 0
        while batches:
            block = job.result()
            left -= len(batches)
            upcoming = self._draw(left)
            if upcoming:
                job = self._start(upcoming, slot=1 - slot)
            offset = 0
            for indices in batches:
                yield indices, block[offset:offset + len(indices)]
                offset += len(indices)
            batches, slot = upcoming, 1 - slot

    def close(self):
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def _draw(self, left):
        return [self.sampler.next() for _ in range(min(left, self.batches_per_block))]

    def _start(self, batches, slot):
        if self.executor is not None:
            return self.executor.submit(self._gather, batches, slot)
        done = Future()
        done.set_result(self._gather(batches, slot))
        return done

    def _gather(self, batches, slot):
        """The rows of `batches`, one after another, into block buffer `slot`."""
        indices = np.concatenate(batches)
        block = self.blocks[slot][:len(indices)]
        if self.staging is None:
            return np.take(self.images, indices, axis=0, out=block)
        return to_float(np.take(self.images, indices, axis=0, out=self.staging[:len(indices)]), block)
