"""The fast numerical gradient against the textbook per-element central difference."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgdlab.engine import perturbation
from sgdlab.engine.perturbation import _distinct_pairs, numerical_gradient_fast
from sgdlab.nn.activations import activation_names
from sgdlab.nn.layers import frozen_training
from sgdlab.nn.network import MultiLayerNet, TwoLayerNet

AGREEMENT = 1e-9  # absolute, every element of every parameter


def mnist_like_batch(rng, n, n_in, n_classes=10):
    """Pixels quantised to k/255, most of them 0, as MNIST's are; repeated values included."""
    pixels = rng.integers(0, 256, (n, n_in)) * (rng.random((n, n_in)) < 0.3)
    return pixels / 255.0, rng.integers(0, n_classes, n)


def assert_agrees_with_textbook(network, x, t, agreement=AGREEMENT, **options):
    """Both methods on the same network, in training mode with the same dropout masks."""
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    with frozen_training(network.layers):
        expected_loss = network.loss(x, t, train_flg=True)
    statistics = {key: value.copy() for key, value in network.running_statistics.items()}
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    textbook = network.numerical_gradient(x, t)
    for layer in network.dropout_layers:
        layer.rng = np.random.default_rng(11)
    loss, fast = numerical_gradient_fast(network, x, t, **options)
    assert loss == pytest.approx(expected_loss, rel=1e-14)
    assert list(fast) == list(textbook) == list(network.params)
    for key in textbook:
        assert fast[key].shape == textbook[key].shape
        np.testing.assert_allclose(fast[key], textbook[key], rtol=0, atol=agreement, err_msg=key)
    for key, value in network.running_statistics.items():  # neither method moved them
        np.testing.assert_array_equal(value, statistics[key])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("activation", activation_names())
@pytest.mark.parametrize("sizes", [(12, 6, 4), (12, 5, 4, 4), (10, 4, 3, 3, 4)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_agrees_with_textbook(seed, activation, sizes, weight_decay):
    rng = np.random.default_rng(seed)
    network = MultiLayerNet(sizes[0], list(sizes[1:-1]), sizes[-1], activation, weight_init_std=0.5, rng=rng,
                            weight_decay_lambda=weight_decay)
    network.params["b1"] = rng.standard_normal(sizes[1])  # relu units on both sides of their kink
    x, t = mnist_like_batch(rng, 9, sizes[0], sizes[-1])
    assert_agrees_with_textbook(network, x, t)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("activation", activation_names())
@pytest.mark.parametrize("hidden", [[6], [5, 4], [4, 3, 3], [4, 3, 3, 3, 3]])
@pytest.mark.parametrize("chapter_6", [{"use_dropout": True, "dropout_ratio": 0.3}, {"use_batchnorm": True},
                                       {"use_dropout": True, "use_batchnorm": True, "weight_decay_lambda": 0.1}],
                         ids=["dropout", "batchnorm", "all"])
def test_agrees_with_textbook_with_dropout_and_batch_norm(seed, activation, hidden, chapter_6):
    rng = np.random.default_rng(seed)
    network = MultiLayerNet(12, hidden, 4, activation, weight_init_std=0.5, rng=rng, **chapter_6)
    for key in network.params:
        if key.startswith(("gamma", "beta")):  # not their starting ones and zeros: every term of the formula
            network.params[key] = network.params[key] + 0.3 * rng.standard_normal(network.params[key].shape)
    x, t = mnist_like_batch(rng, 9, 12, 4)
    assert_agrees_with_textbook(network, x, t, agreement=1e-8 if network.use_batchnorm else AGREEMENT)


def test_a_training_step_moves_the_running_statistics_by_the_batch_once():
    rng = np.random.default_rng(8)
    network = MultiLayerNet(12, [5, 4], 4, rng=rng, use_batchnorm=True)
    reference = network.copy()
    x, t = mnist_like_batch(rng, 9, 12, 4)
    numerical_gradient_fast(network, x, t, follow_statistics=True)
    reference.loss(x, t, train_flg=True)
    for key, value in reference.running_statistics.items():
        np.testing.assert_allclose(network.running_statistics[key], value, rtol=1e-12, err_msg=key)
        assert np.any(value != 0)


@pytest.mark.parametrize("use_series", [True, False])
@pytest.mark.parametrize("workers", [1, 2])
def test_every_evaluation_path_agrees(use_series, workers, monkeypatch):
    monkeypatch.setattr(perturbation, "CHUNK_ELEMENTS", 7)  # many parts, inputs split across chunks
    rng = np.random.default_rng(3)
    network = TwoLayerNet(12, 6, 4, weight_init_std=0.5, rng=rng)
    x, t = mnist_like_batch(rng, 8, 12, 4)
    assert_agrees_with_textbook(network, x, t, use_series=use_series, workers=workers)


def test_one_hot_targets_and_trained_size_weights():
    rng = np.random.default_rng(4)
    network = TwoLayerNet(12, 6, 4, weight_init_std=2.0, rng=rng)  # large weights: more series terms
    x, labels = mnist_like_batch(rng, 8, 12, 4)
    assert_agrees_with_textbook(network, x, np.eye(4)[labels])


def test_falls_back_to_recomputing_when_the_series_would_be_long(monkeypatch):
    monkeypatch.setattr(perturbation, "MAX_SERIES_TERMS", 1)
    rng = np.random.default_rng(5)
    network = TwoLayerNet(12, 6, 4, weight_init_std=1.0, rng=rng)
    assert_agrees_with_textbook(network, *mnist_like_batch(rng, 8, 12, 4))


def test_series_term_count():
    assert perturbation._series_terms(0.0) == 1
    assert perturbation._series_terms(1e-6) == 3  # (1e-6)^4 / 4! is far below float64 rounding
    assert perturbation._series_terms(0.5) > perturbation._series_terms(1e-3)
    assert perturbation._series_terms(1e3) is None


def test_leaves_params_untouched():
    rng = np.random.default_rng(6)
    network = TwoLayerNet(12, 6, 4, weight_init_std=0.5, rng=rng)
    before = {k: v.copy() for k, v in network.params.items()}
    numerical_gradient_fast(network, *mnist_like_batch(rng, 8, 12, 4))
    for key in before:
        np.testing.assert_array_equal(network.params[key], before[key])


def test_zero_inputs_give_exactly_zero_gradient():
    rng = np.random.default_rng(7)
    network = TwoLayerNet(12, 6, 4, weight_init_std=0.5, rng=rng)
    x, t = mnist_like_batch(rng, 8, 12, 4)
    x[:, 3] = 0.0  # no sample sees input 3: nudging its weights changes nothing
    _, grads = numerical_gradient_fast(network, x, t)
    np.testing.assert_array_equal(grads["W1"][3], 0.0)
    np.testing.assert_array_equal(network.numerical_gradient(x, t)["W1"][3], 0.0)


@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from([0.25, 0.5, 1.0, 1e-300, 0.3])), min_size=1, max_size=40))
def test_distinct_pairs_groups_exactly_the_equal_pairs(pairs):
    row = np.array([r for r, _ in pairs])
    value = np.array([v for _, v in pairs])
    distinct_rows, distinct_values, group = _distinct_pairs(row, value)
    assert len(set(zip(distinct_rows.tolist(), distinct_values.tolist()))) == len(distinct_rows)
    np.testing.assert_array_equal(distinct_rows[group], row)
    np.testing.assert_array_equal(distinct_values[group], value)


def test_real_mnist_batch_agrees_with_textbook(mnist_dir):
    from sgdlab import load_mnist

    (x_train, t_train), _ = load_mnist(data_dir=mnist_dir)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        batch = rng.integers(0, len(x_train), 20)
        network = TwoLayerNet(784, 4, 10, rng=seed)
        assert_agrees_with_textbook(network, x_train[batch].astype(np.float64), t_train[batch])


def hidden_pre_activations(network, x):
    """Each hidden layer's input to its activation in training mode (no dropout in these nets)."""
    forward = perturbation.CachedForward(network, np.asarray(x, np.float64), np.zeros(len(x), int))
    return forward.pre_activations


def test_a_nudge_that_crosses_a_later_kink_is_recomputed(monkeypatch):
    rng = np.random.default_rng(12)
    network = MultiLayerNet(12, [5, 4, 4], 4, "relu", weight_init_std=0.5, rng=rng)
    x, t = mnist_like_batch(rng, 9, 12, 4)
    x[0] = 0.9  # sample 0 sees every input: every first-layer nudge reaches it
    z2 = hidden_pre_activations(network, x)[1]
    network.params["b2"][0] -= z2[0, 0] - 1e-7  # unit 0 of layer 2 sits 1e-7 above its kink for sample 0
    recomputed = []
    entries = perturbation.RecomputedDifference.entries
    monkeypatch.setattr(perturbation.RecomputedDifference, "entries",
                        lambda self, rows, units, e: recomputed.append(len(rows)) or entries(self, rows, units, e))
    assert_agrees_with_textbook(network, x, t)
    assert sum(recomputed) > 0  # the linear form was not trusted there


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size", [1e-4, 0.3])  # 0.3: many units of the next layer change sign
def test_the_closed_form_after_batch_norm_equals_recomputing_every_nudge(seed, size):
    rng = np.random.default_rng(seed)
    network = MultiLayerNet(12, [6, 5], 4, "relu", weight_init_std=0.5, rng=rng, use_batchnorm=True,
                            use_dropout=True, dropout_ratio=0.3)
    for key in ("gamma1", "beta1", "gamma2", "beta2"):
        network.params[key] = network.params[key] + 0.3 * rng.standard_normal(network.params[key].shape)
    x, t = mnist_like_batch(rng, 9, 12, 4)
    forward = perturbation.CachedForward(network, x, t, find_kinks=True)
    closed = perturbation._coupled_difference(forward, 0)
    assert type(closed) is perturbation.RenormalizedDifference
    recomputed = perturbation.CoupledDifference(forward, 0)
    units = np.repeat(np.arange(6), 3)
    shifts = size * rng.random((len(units), 9))
    for before_normalising in (True, False):
        closed_losses, closed_kinks = closed(units, shifts, before_normalising)
        losses, kinks = recomputed(units, shifts, before_normalising)
        np.testing.assert_allclose(closed_losses, losses, rtol=1e-9, atol=1e-17)
        np.testing.assert_array_equal(closed_kinks, kinks)
        assert np.any(kinks) == (size > 0.01)


def test_a_nudge_that_crosses_a_kink_after_batch_norm_is_exact_and_found():
    rng = np.random.default_rng(13)
    network = MultiLayerNet(12, [5, 4], 4, "relu", weight_init_std=0.5, rng=rng, use_batchnorm=True)
    x, t = mnist_like_batch(rng, 9, 12, 4)
    y2 = hidden_pre_activations(network, x)[1]
    network.params["beta2"][1] -= y2[3, 1] - 1e-7  # unit 1 of layer 2 sits 1e-7 above its kink for sample 3
    assert_agrees_with_textbook(network, x, t, agreement=1e-8)
    _, _, kinks = perturbation.central_differences(network, x, t, find_kinks=True)
    assert kinks["beta2"].tolist() == [False, True, False, False]  # beta2[1] moves that unit by h, past 0
    assert 0 < np.count_nonzero(kinks["W1"]) < kinks["W1"].size  # what moves it enough, and nothing else
    assert not np.any(kinks["W3"])  # nothing after the scores has a kink


@pytest.mark.parametrize("hidden, batch_norm", [([4, 3], False), ([4, 3], True), ([3, 3, 3], True)],
                         ids=["series", "closed-form-after-batch-norm", "recomputed-after-batch-norm"])
def test_kinks_are_the_nudges_that_change_a_relu_input_sign(hidden, batch_norm):
    """Every entry's nudge by +-h, made on a copy and run forward: its kinks are where some relu input
    changes sign (or leaves 0), the same entries `central_differences` names, on every path."""
    rng = np.random.default_rng(15)
    network = MultiLayerNet(6, hidden, 3, "relu", weight_init_std=0.5, rng=rng, use_batchnorm=batch_norm)
    x, t = mnist_like_batch(rng, 5, 6, 3)
    h = 0.05 if not batch_norm else 0.02  # large enough that some nudges cross, not all
    _, _, kinks = perturbation.central_differences(network, x, t, h, find_kinks=True)
    signs = [np.sign(y) for y in hidden_pre_activations(network, x)]
    for key, param in network.params.items():
        expected = np.zeros(param.shape, bool)
        for index in np.ndindex(param.shape):
            for e in (h, -h):
                nudged = network.copy()
                nudged.params[key][index] += e
                moved = [np.sign(y) for y in hidden_pre_activations(nudged, x)]
                expected[index] |= any(np.any(a != b) for a, b in zip(signs, moved))
        np.testing.assert_array_equal(kinks[key], expected, err_msg=key)
    flags = np.concatenate([kinked.ravel() for kinked in kinks.values()])
    assert np.any(flags) and not np.all(flags)


def test_batch_norm_falls_back_to_recomputing_when_the_series_would_be_long(monkeypatch):
    monkeypatch.setattr(perturbation, "MAX_SERIES_TERMS", 1)
    rng = np.random.default_rng(14)
    network = MultiLayerNet(12, [5, 4], 4, "relu", weight_init_std=0.5, rng=rng, use_batchnorm=True)
    assert_agrees_with_textbook(network, *mnist_like_batch(rng, 9, 12, 4), agreement=1e-8)
