"""The training step and the whole-set forward pass on convolutional nets: the same numbers as the layers.

`network.loss_and_gradient` walks the book's layers (im2col, a matrix product, col2im, argmax pooling);
`BackpropStep` runs the in-place forms on buffers allocated once, in its own order (relu after a max pooling)
and layout (a convolution's outputs in the blocks its pooling reads). In float64 the two agree to rounding:
relative differences of at most 1e-10 of each gradient's largest entry (the order of the sums differs).
"""

import math

import numpy as np
import pytest

from sgdlab.engine import backprop
from sgdlab.engine.backprop import BackpropStep
from sgdlab.engine.forward import ForwardPass, execution_order
from sgdlab.nn.network import ConvNet, DeepConvNet, SimpleConvNet, TwoLayerNet

CONV = {"type": "convolution"}
NETS = {
    "SimpleConvNet": lambda dtype: SimpleConvNet(weight_init_std=0.1, rng=0, dtype=dtype),
    "pad, stride, batch norm, dropout": lambda dtype: ConvNet((1, 14, 14), [
        {**CONV, "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "batch_norm"}, {"type": "relu"},
        {"type": "pooling", "pool_size": 2, "stride": 2},  # tiled: read in blocks
        {**CONV, "filter_num": 5, "filter_size": 3, "stride": 2, "pad": 1}, {"type": "tanh"},  # input gradient
        {"type": "pooling", "pool_size": 2, "stride": 1}, {"type": "dropout", "ratio": 0.3},  # overlapping windows
        {"type": "affine", "output_size": 7}, {"type": "relu"}], 5, weight_decay_lambda=0.01, rng=1, dtype=dtype),
    "two conv-relu-pool blocks": lambda dtype: ConvNet((1, 12, 12), [
        {**CONV, "filter_num": 3, "filter_size": 3, "pad": 1}, {"type": "relu"}, {"type": "pooling", "pool_size": 2},
        {**CONV, "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "relu"},  # blocks and an input gradient
        {"type": "pooling", "pool_size": 3, "stride": 3},
        {"type": "pooling", "pool_size": 2, "stride": 1, "pad": 1}], 4, weight_init_std=0.5, rng=2, dtype=dtype),
    # the book's chapter-8 DeepConvNet at a small size: conv after conv, padding 1 and 2, He weights, dropout
    "deep: conv-conv-pool blocks, pad 1 and 2": lambda dtype: ConvNet((1, 12, 12), [
        {**CONV, "filter_num": 3, "filter_size": 3, "pad": 1}, {"type": "relu"},
        {**CONV, "filter_num": 3, "filter_size": 3, "pad": 1}, {"type": "relu"}, {"type": "pooling", "pool_size": 2},
        {**CONV, "filter_num": 4, "filter_size": 3, "pad": 1}, {"type": "relu"},
        {**CONV, "filter_num": 4, "filter_size": 3, "pad": 2}, {"type": "relu"}, {"type": "pooling", "pool_size": 2},
        {**CONV, "filter_num": 5, "filter_size": 3, "pad": 1}, {"type": "relu"},
        {**CONV, "filter_num": 5, "filter_size": 3, "pad": 1}, {"type": "relu"}, {"type": "pooling", "pool_size": 2},
        {"type": "affine", "output_size": 6}, {"type": "relu"}, {"type": "dropout", "ratio": 0.5}], 4,
        weight_init_std="he", rng=3, dtype=dtype),
    # channels enough for the chunk forms: shifted products (pad 1 into a pooling's blocks, pad 2), columns (stride 2)
    "shifted products and columns": lambda dtype: ConvNet((1, 12, 12), [
        {**CONV, "filter_num": 8, "filter_size": 3, "pad": 1}, {"type": "relu"},
        {**CONV, "filter_num": 8, "filter_size": 3, "pad": 1}, {"type": "relu"}, {"type": "pooling", "pool_size": 2},
        {**CONV, "filter_num": 9, "filter_size": 3, "pad": 2}, {"type": "relu"},
        {**CONV, "filter_num": 8, "filter_size": 4, "stride": 2, "pad": 1}, {"type": "relu"},
        {"type": "affine", "output_size": 6}], 4, weight_init_std="he", rng=4, dtype=dtype),
}


def batch(network, n=10, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.random((n, math.prod(network.input_shape))).astype(network.dtype)
    x[:, :50] = 0  # blank rows, as MNIST's borders: equal outputs, ties for the pooling's first maximum
    return x, rng.integers(0, network.output_size, n)


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("chunk_bytes", [None, 30_000], ids=["whole", "chunks"])
def test_the_training_step_gives_the_layers_loss_and_gradients(name, dtype, tolerance, chunk_bytes,
                                                               restart_dropout_masks, monkeypatch):
    if chunk_bytes:  # the leading per-sample layers split, in chunks of a few rows, the last one shorter
        monkeypatch.setattr(backprop, "CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(backprop, "SPLIT_BYTES", chunk_bytes)
    network = NETS[name](dtype)
    x, t = batch(network)
    reference = NETS[name](np.float64)
    reference.load_weights(network.weights())
    restart_dropout_masks(reference)
    expected_loss, expected = reference.loss_and_gradient(x.astype(np.float64), t)
    step = BackpropStep(network, len(x))
    assert bool(step.segments) == bool(chunk_bytes)
    for _ in range(2):  # and again on the same buffers
        restart_dropout_masks(network)
        loss, grads = step(x, t)
        assert loss == pytest.approx(expected_loss, rel=tolerance)
        assert list(grads) == list(expected)
        # A gradient that is zero in exact arithmetic (a bias before batch norm) is rounding noise on both
        # sides: judged against a hundredth of the net's largest gradient.
        floor = 0.01 * max(np.max(np.abs(grad)) for grad in expected.values())
        for key in expected:
            scale = max(np.max(np.abs(expected[key])), floor)
            assert np.max(np.abs(grads[key] - expected[key])) <= tolerance * scale, key
            assert grads[key].dtype == dtype
    x_images = x.reshape(len(x), *network.input_shape)
    restart_dropout_masks(network)
    np.testing.assert_array_equal(step(x_images, t)[1]["W1"], grads["W1"])  # rows or images alike


def test_relu_runs_after_max_pooling_and_a_convolution_writes_in_its_blocks():
    network = NETS["two conv-relu-pool blocks"](np.float64)
    assert execution_order(network.layers) == [0, 2, 1, 3, 5, 6, 4, 7]  # the second relu after both poolings
    step = BackpropStep(network, 4)
    assert [work["blocks"] for work in (step.workspaces[0], step.workspaces[3])] == [(2, 2), (3, 3)]
    assert step.workspaces[1]["blocked"] and step.workspaces[4]["blocked"] and not step.workspaces[5]["blocked"]


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("rows", [10, 4])  # whole and chunked, with a last partial chunk of 2
def test_the_forward_pass_gives_the_test_time_scores(name, rows):
    network = NETS[name](np.float64)
    for value in network.running_statistics.values():
        value[...] = np.random.default_rng(4).random(value.shape) + 0.5
    x, _ = batch(network)
    forward = ForwardPass(network, rows)
    scores = np.concatenate([forward.scores(x[start:start + rows]).copy() for start in range(0, len(x), rows)])
    np.testing.assert_allclose(scores, network.scores(x), rtol=1e-12, atol=1e-14)


def test_the_first_layers_input_gradient_is_not_computed():
    network = SimpleConvNet(rng=0)
    step = BackpropStep(network, 2)
    assert step.input_grads[0] is None and "dpadded" in step.workspaces[0]
    x, t = batch(network, n=2)
    before = x.copy()
    step(x, t)
    np.testing.assert_array_equal(x, before)


def test_an_evaluations_chunks_stay_in_cache_unless_that_leaves_too_few_images_and_always_in_bounded_memory():
    from sgdlab.training.evaluation import CACHED_BYTES, CHUNK_BYTES, CHUNK_ROWS, MIN_CHUNK_ROWS, chunk_rows

    def buffers(network, rows):
        return ForwardPass(network, rows).nbytes

    simple = SimpleConvNet(rng=0, dtype=np.float32)
    rows = chunk_rows(simple)
    assert MIN_CHUNK_ROWS < rows < CHUNK_ROWS and buffers(simple, rows) <= CACHED_BYTES < buffers(simple, 2 * rows)
    deep = DeepConvNet(rng=0, dtype=np.float32)  # 16 MB would hold 19 of its images
    assert chunk_rows(deep) == MIN_CHUNK_ROWS and CACHED_BYTES < buffers(deep, MIN_CHUNK_ROWS) <= CHUNK_BYTES
    assert chunk_rows(TwoLayerNet(784, 50, 10, rng=0)) == CHUNK_ROWS


def test_whole_sets_are_evaluated_in_chunks_of_bounded_memory():
    from sgdlab.training.evaluation import CACHED_BYTES, chunk_rows, count_correct

    network = SimpleConvNet(rng=0, dtype=np.float32)
    rows = chunk_rows(network)
    assert 100 < rows < 1000 and ForwardPass(network, rows).nbytes <= CACHED_BYTES
    x, _ = batch(network, n=rows + 3)
    labels = network.scores(x).argmax(axis=1)
    labels[:7] = (labels[:7] + 1) % 10
    assert count_correct(network, x, labels) == len(x) - 7


@pytest.mark.parametrize("rows, chunks", [(20, 0), (40, 1), (100, 1), (250, 2)])
def test_a_batch_with_more_than_a_little_work_is_split_in_halves_of_chunks_of_bounded_buffers(rows, chunks):
    """The split into halves (two cores' work) and the chunks' size are decided apart: a mid-sized batch is split
    however large a chunk may be."""
    network = SimpleConvNet(rng=0, dtype=np.float32)
    step = BackpropStep(network, rows)
    per_row = sum(out[0].nbytes for out in step.outputs[:3]) * 2  # the convolution, relu and pooling's
    assert (per_row * rows > backprop.SPLIT_BYTES) == bool(step.segments)
    assert [len(halves[0]) for first, stop, halves in step.segments[:1]] == ([chunks] if chunks else [])
    for first, stop, halves in step.segments[:1]:
        assert all((end - start) * per_row <= backprop.CHUNK_BYTES for half in halves for start, end in half)


def test_the_chunks_give_the_same_numbers_with_one_core_or_two(monkeypatch):
    monkeypatch.setattr(backprop, "CHUNK_BYTES", 4 << 20)  # several chunks in each half
    network = SimpleConvNet(rng=0, dtype=np.float32)
    x, t = batch(network, n=100)
    step = BackpropStep(network, len(x))
    assert [(first, stop, len(halves[0])) for first, stop, halves in step.segments] == [(0, 3, 3), (3, 6, 1)]  # 6 chunks of 16 or 17 rows
    _, grads = step(x, t)
    two_cores = {key: grad.copy() for key, grad in grads.items()}
    monkeypatch.setattr(backprop, "_second_core", lambda: None)
    _, grads = step(x, t)
    for key, grad in grads.items():
        np.testing.assert_array_equal(grad, two_cores[key])


def test_a_step_called_outside_training_runs_blas_on_one_thread_and_gives_the_callers_back():
    """A user's script or a notebook calls the step without the trainer's `one_blas_thread`: the step holds it
    itself, on both halves' threads, or each half would start a BLAS pool of its own and crowd the cores."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas"}

    network = SimpleConvNet(weight_init_std=0.1, rng=0, dtype=np.float32)
    step = BackpropStep(network, 100)
    assert step.segments  # the batch is split in halves, the second on a worker thread where there are two cores
    seen = []
    for layer in (step.layers[0], step.layers[-1]):  # the first runs on the halves, the last on this thread
        def recorded(*args, method=layer.forward_into, **kwargs):
            seen.append(blas_threads())
            return method(*args, **kwargs)

        def recorded_back(*args, method=layer.backward_into, **kwargs):
            seen.append(blas_threads())
            return method(*args, **kwargs)

        layer.forward_into, layer.backward_into = recorded, recorded_back
    x = np.random.default_rng(0).random((100, 1, 28, 28), dtype=np.float32)
    labels = np.arange(100) % 10
    with threadpool_limits(limits=2, user_api="blas"):  # what the caller has
        if blas_threads() != {2}:
            pytest.skip("this BLAS runs on one thread here")
        step(x, labels)
        assert blas_threads() == {2}  # given back
    assert len(seen) >= 4 and all(threads == {1} for threads in seen), seen
