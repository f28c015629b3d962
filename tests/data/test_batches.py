import threading

import numpy as np
import pytest

from sgdlab.data.batches import BatchSampler, BatchStream


def test_epoch_sampling_visits_every_sample_once_per_epoch():
    sampler = BatchSampler(60, 7, "epoch", np.random.default_rng(0))
    for _ in range(2):
        seen = np.concatenate([sampler.next() for _ in range(9)])
        np.testing.assert_array_equal(np.sort(seen), np.arange(60))


def test_random_sampling_draws_independent_batches_in_range():
    sampler = BatchSampler(10, 100, "random", np.random.default_rng(0))
    batch = sampler.next()
    assert batch.shape == (100,) and batch.min() >= 0 and batch.max() < 10
    assert len(np.unique(batch)) == 10  # with replacement, as the book's np.random.choice


@pytest.fixture
def pixels():
    return np.random.default_rng(0).integers(0, 256, (60, 5), dtype=np.uint8)


def streamed(images, method, dtype, count, background):
    """Each (indices, x) of a stream, with x copied out of its reused buffer."""
    stream = BatchStream(images, BatchSampler(60, 7, method, np.random.default_rng(1)), dtype, count, background)
    try:
        return [(indices, x.copy()) for indices, x in stream]
    finally:
        stream.close()


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("method", ["random", "epoch"])
def test_stream_gives_the_samplers_batches_as_normalized_floats(pixels, method, background, monkeypatch):
    monkeypatch.setattr(BatchStream, "GATHER_ROWS", 20)  # 2 batches of 7 per block: many blocks
    sampler = BatchSampler(60, 7, method, np.random.default_rng(1))
    expected = [sampler.next() for _ in range(21)]  # epoch sampling: every 9th batch is a short one of 4
    normalized = np.divide(pixels, np.float32(255), dtype=np.float32)  # load_mnist(normalize=True)
    batches = streamed(pixels, method, np.float64, 21, background)
    assert len(batches) == 21
    for (indices, x), drawn in zip(batches, expected):
        np.testing.assert_array_equal(indices, drawn)
        assert x.dtype == np.float64
        np.testing.assert_array_equal(x, normalized[drawn])


def test_float_images_of_the_networks_dtype_are_gathered_as_they_are(pixels):
    floats = pixels / 255.0
    for indices, x in streamed(floats, "random", np.float64, 5, background=True):
        np.testing.assert_array_equal(x, floats[indices])


@pytest.mark.parametrize("background", [False, True])
def test_no_batches_asked_none_given(pixels, background):
    assert streamed(pixels, "random", np.float32, 0, background) == []


def test_stopping_early_and_closing_leaves_no_thread_behind(pixels, monkeypatch):
    monkeypatch.setattr(BatchStream, "GATHER_ROWS", 14)
    stream = BatchStream(pixels, BatchSampler(60, 7, "random", np.random.default_rng(1)), np.float32, 100, True)
    for number, _ in enumerate(stream):
        if number == 3:
            break
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("sgdlab-batches")]
