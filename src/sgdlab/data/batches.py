"""The training loop's mini-batches: which rows each one draws, and those rows as floats, gathered ahead.

Gathering 100 random rows and scaling them to floats costs the training
thread about a tenth of an iteration, mostly waiting on memory. `BatchStream`
does it a block of batches at a time, on a second core while the first
trains on the previous block. The indices are drawn in the same order either
way, so the batches, and the training, are the same.
"""

import numpy as np

from ..workers import BackgroundWorker
from .scaling import to_float


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
        self.given = 0  # batches handed out so far
        self._refills = []  # (batches given, the generator's state) before each call to the generator

    def next(self):
        self.given += 1
        return self._next_random() if self.method == "random" else self._next_shuffled()

    def state_after(self, batches):
        """What `resume` needs to continue after the first `batches` batches, as plain JSON values. The
        stream draws ahead of training, so this is the generator's state before the call that drew batch
        `batches + 1`, and how many batches had been given then; older states are dropped."""
        if batches > self.given:
            raise ValueError(f"only {self.given} batches were drawn, not {batches}")
        usable = [i for i, (given, _) in enumerate(self._refills) if given <= batches]
        if not usable:
            return {"given": 0, "rng": None}  # before the first draw: the generator as it was made
        del self._refills[:usable[-1]]
        given, state = self._refills[0]
        return {"given": given, "rng": state}

    def resume(self, state, batches):
        """Continue after the first `batches` batches, from what `state_after(batches)` gave."""
        if state["rng"] is not None:
            self.rng.bit_generator.state = state["rng"]
        self._drawn, self._position, self.given, self._refills = self._drawn[:0], 0, state["given"], []
        for _ in range(batches - state["given"]):
            self.next()

    def _remember_state(self):
        self._refills.append((self.given - 1, self.rng.bit_generator.state))

    def _next_random(self):
        if self._position == len(self._drawn):
            self._remember_state()
            batches = max(1, self.BLOCK_ROWS // self.batch_size)
            self._drawn = self.rng.integers(0, self.train_size, (batches, self.batch_size))
            self._position = 0
        self._position += 1
        return self._drawn[self._position - 1]

    def _next_shuffled(self):
        if self._position >= len(self._drawn):
            self._remember_state()
            self._drawn = self.rng.permutation(self.train_size)
            self._position = 0
        batch = self._drawn[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        return batch


class BatchStream:
    """`count` mini-batches from `sampler`, as `(indices, x)`: `x` holds those rows of `images` as `dtype`.

    Rows are gathered (and uint8 pixels scaled) a block of about `GATHER_ROWS`
    at a time. With `background`, a worker thread gathers the next block into
    a second buffer while the loop trains on this one; without, each block is
    gathered when it is needed. Each `x` is a view into a reused buffer: use
    it before asking for the next batch. Iterate once, then call `close()`,
    also after stopping early.
    """

    GATHER_ROWS = 1000  # 3 MB of float32 per block: big enough to amortise the hand-over, small enough for cache

    def __init__(self, images, sampler, dtype, count, background):
        self.images = images
        self.sampler = sampler
        self.count = count
        self.batches_per_block = max(1, self.GATHER_ROWS // sampler.batch_size)
        rows = self.batches_per_block * sampler.batch_size
        self.blocks = [np.empty((rows, images.shape[1]), dtype) for _ in range(2 if background else 1)]
        self.staging = None if images.dtype == dtype else np.empty((rows, images.shape[1]), images.dtype)
        self.worker = BackgroundWorker("batches", background)

    def __iter__(self):
        left = self.count
        batches = self._draw(left)
        slot = 0
        fetch = self._start(batches, slot)
        while batches:
            block = fetch()
            left -= len(batches)
            upcoming = self._draw(left)
            slot = (slot + 1) % len(self.blocks)
            fetch = self._start(upcoming, slot)
            offset = 0
            for indices in batches:
                yield indices, block[offset:offset + len(indices)]
                offset += len(indices)
            batches = upcoming

    def close(self):
        self.worker.close()

    def _draw(self, left):
        return [self.sampler.next() for _ in range(min(left, self.batches_per_block))]

    def _start(self, batches, slot):
        """A function that returns the block of `batches`: gathering starts now on the worker, or in line when called."""
        return self.worker.defer(self._gather, batches, slot) if batches else None

    def _gather(self, batches, slot):
        """The rows of `batches`, one after another, into block buffer `slot`."""
        indices = np.concatenate(batches)
        block = self.blocks[slot][:len(indices)]
        # mode="clip": the sampler's indices are always in range, and the default "raise" copies the output once more.
        if self.staging is None:
            return np.take(self.images, indices, axis=0, out=block, mode="clip")
        return to_float(np.take(self.images, indices, axis=0, out=self.staging[:len(indices)], mode="clip"), block)
