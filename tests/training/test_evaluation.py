import threading
import time

import numpy as np

from sgdlab.training.evaluation import Evaluator, as_labels, count_correct
from sgdlab.nn.network import MultiLayerNet, TwoLayerNet


def dataset(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 8), dtype=np.uint8), rng.integers(0, 3, n)


def test_count_correct_in_chunks_matches_one_pass(monkeypatch):
    pixels, labels = dataset()
    network = TwoLayerNet(8, 5, 3, weight_init_std=1.0, rng=0)
    floats = pixels / 255
    expected = int(np.count_nonzero(network.scores(floats).argmax(axis=1) == labels))
    assert 0 < expected < len(labels)
    monkeypatch.setattr("sgdlab.training.evaluation.CHUNK_ROWS", 7)
    assert count_correct(network, pixels, labels) == expected
    assert count_correct(network, floats, labels) == expected


def test_with_two_cores_each_half_of_the_images_is_counted_on_its_own_core(monkeypatch):
    from sgdlab.training import evaluation

    pixels, labels = dataset(n=51)
    network = TwoLayerNet(8, 5, 3, weight_init_std=1.0, rng=0)
    expected = int(np.count_nonzero(network.scores(pixels / 255).argmax(axis=1) == labels))
    monkeypatch.setattr(evaluation, "CHUNK_ROWS", 7)
    counted = []  # (images, thread) of each part counted
    count_part = evaluation._measure

    def recorded(network, x, labels, chunk_rows, scores=None):
        counted.append((len(x), threading.current_thread().name))
        return count_part(network, x, labels, chunk_rows, scores)

    monkeypatch.setattr(evaluation, "_measure", recorded)
    monkeypatch.setattr(evaluation, "usable_cores", lambda: 2)
    assert count_correct(network, pixels, labels) == expected
    assert sorted(images for images, _ in counted) == [25, 26]
    assert len({thread for _, thread in counted}) == 2
    halves = np.full((51, 3), np.nan)  # and the scores, when asked, each half's into its rows
    assert evaluation.measure_set(network, pixels, labels, halves)[0] == expected
    counted.clear()
    monkeypatch.setattr(evaluation, "usable_cores", lambda: 1)
    assert count_correct(network, pixels, labels) == expected
    assert counted == [(51, threading.current_thread().name)]
    whole = np.full((51, 3), np.nan)
    assert evaluation.measure_set(network, pixels, labels, whole)[0] == expected
    np.testing.assert_array_equal(halves, whole)
    np.testing.assert_allclose(whole, network.scores(pixels / 255), atol=1e-6)  # (pixels scaled in float32)


def test_an_evaluation_measures_each_sets_loss_as_the_network_defines_it():
    """The loss of a whole set, from the scores the accuracy is counted from: the book's `network.loss` (mean
    cross-entropy plus weight decay's term) at test time, in chunks and in halves alike."""
    pixels, labels = dataset(n=51)
    network = MultiLayerNet(8, [5], 3, weight_init_std=1.0, weight_decay_lambda=0.1, rng=0)
    evaluator = Evaluator(pixels, labels, pixels[:20], labels[:20], time.perf_counter(), background=True,
                          validation=(pixels[20:], labels[20:]))  # on a copy of the network, as training evaluates
    evaluator.submit(network, 0)
    evaluator.submit(network, 1, test=False)
    first, second = evaluator.finished(wait=True)
    evaluator.close()
    for measured, (x, t) in ((first.train_loss, (pixels, labels)), (first.test_loss, (pixels[:20], labels[:20])),
                             (first.val_loss, (pixels[20:], labels[20:]))):
        assert np.isclose(measured, network.loss(x / 255, t), rtol=1e-5)
    assert network.weight_decay() > 0.01
    assert second.test_loss is None and second.test_acc is None and second.train_loss == first.train_loss


def test_a_diverged_networks_loss_is_recorded_as_not_measured():
    pixels, labels = dataset()
    network = TwoLayerNet(8, 5, 3, rng=0)
    network.params["W1"][...] = np.nan
    evaluator = Evaluator(pixels, labels, pixels, labels, time.perf_counter(), background=False)
    evaluator.submit(network, 0)
    (measured,) = evaluator.finished()
    evaluator.close()
    assert measured.train_loss is None and measured.test_loss is None


def test_as_labels_accepts_one_hot_rows():
    np.testing.assert_array_equal(as_labels(np.eye(3)[[2, 0, 1]]), [2, 0, 1])
    np.testing.assert_array_equal(as_labels([1, 2]), [1, 2])


def test_evaluations_use_a_snapshot_and_come_back_in_order():
    pixels, labels = dataset()
    network = TwoLayerNet(8, 5, 3, weight_init_std=1.0, rng=0)
    expected = []
    evaluator = Evaluator(pixels, labels, pixels[:20], labels[:20], time.perf_counter(), background=True)
    for iteration in range(5):
        expected.append((iteration, network.accuracy(pixels / 255, labels), network.accuracy(pixels[:20] / 255, labels[:20])))
        evaluator.submit(network, iteration)
        network.params["W1"] += 0.5  # changing the weights after submitting does not change that evaluation
    results = list(evaluator.finished(wait=True))
    evaluator.close()
    assert [(r.iteration, r.train_acc, r.test_acc) for r in results] == expected
    assert all(r.seconds >= 0 for r in results)
    assert list(evaluator.finished()) == []


def test_a_result_not_taken_stays_queued():
    pixels, labels = dataset()
    network = TwoLayerNet(8, 5, 3, rng=0)
    evaluator = Evaluator(pixels, labels, pixels, labels, time.perf_counter(), background=False)
    for iteration in (0, 1, 2):
        evaluator.submit(network, iteration)
    for result in evaluator.finished():
        assert result.iteration == 0
        break  # as when Ctrl-C interrupts the caller's handling of the first result
    assert [result.iteration for result in evaluator.finished()] == [1, 2]


def test_unflattened_images_are_counted_like_flat_ones():
    pixels, labels = dataset()
    network = TwoLayerNet(8, 5, 3, weight_init_std=1.0, rng=0)
    assert count_correct(network, pixels.reshape(50, 1, 2, 4), labels) == count_correct(network, pixels, labels)


def test_no_more_than_one_evaluation_waits_behind_the_running_one():
    pixels, labels = dataset()
    network = TwoLayerNet(8, 5, 3, rng=0)
    evaluator = Evaluator(pixels, labels, pixels, labels, time.perf_counter(), background=True)
    started, release = threading.Event(), threading.Event()
    evaluate = evaluator._evaluate

    def held_evaluation(network, iteration, test):  # the first evaluation runs until the test lets it end
        started.set()
        release.wait()
        return evaluate(network, iteration, test)

    evaluator._evaluate = held_evaluation
    third_submitted = threading.Event()

    def submit_third():
        evaluator.submit(network, 2)
        third_submitted.set()

    try:
        evaluator.submit(network, 0)
        assert started.wait(timeout=60)
        evaluator.submit(network, 1)
        assert evaluator.waiting() == 1
        submitter = threading.Thread(target=submit_third)
        submitter.start()
        assert not third_submitted.wait(timeout=0.5)  # a second one would wait: the submit waits for room instead
        assert evaluator.waiting() == 1
    finally:
        release.set()
    assert third_submitted.wait(timeout=60)
    submitter.join(timeout=60)
    assert [result.iteration for result in evaluator.finished(wait=True)] == [0, 1, 2]
    evaluator.close()


def test_the_evaluation_next_to_run_is_not_counted_as_waiting_before_the_worker_picks_it_up():
    from concurrent.futures import Future

    pixels, labels = dataset()
    evaluator = Evaluator(pixels, labels, pixels, labels, time.perf_counter(), background=True)
    ended, next_to_run, submitted = Future(), Future(), Future()
    ended.set_result(None)
    evaluator.pending = [ended, next_to_run, submitted]  # the running one just ended; its thread not yet on the next
    assert evaluator.waiting() == 1
    evaluator.pending = [ended]
    assert evaluator.waiting() == 0
    evaluator.close()
