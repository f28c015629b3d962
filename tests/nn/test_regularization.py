"""Dropout, batch normalization and the chapter-6 network, against transcriptions of the book's formulas.

The references below are written out here from the book's `common/layers.py`
(Dropout, BatchNormalization) and `common/multi_layer_net_extend.py`, element
by element or feature by feature, so that each test compares sgdlab with the
formula rather than with sgdlab's own arithmetic. (The one deliberate
difference from the book: sgdlab's cross-entropy is the exact log-softmax one,
without the book's 1e-7 inside the log, so the reference is exact too.)
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdlab.errors import ConfigError
from sgdlab.nn.gradient import numerical_gradient
from sgdlab.nn.layers import BATCH_NORM_EPS, ActivationLayer, Affine, BatchNormalization, Dropout, frozen_training
from sgdlab.nn.network import MultiLayerNet, TwoLayerNet

BOOK_EPS = 10e-7  # the book's constant, spelled as the book spells it


# --- the book's formulas, transcribed -----------------------------------------------------------------

def book_dropout_train(x, draws, ratio):
    """Each unit kept where its uniform draw exceeds the ratio, zeroed elsewhere."""
    out = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        if draws[index] > ratio:
            out[index] = x[index]
    return out


def book_dropout_test(x, ratio):
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] * (1.0 - ratio)
    return out


def column_mean_and_variance(x, j):
    """The mean and the population variance (divided by N) of column j, by plain sums."""
    column = [float(x[i, j]) for i in range(x.shape[0])]
    mean = math.fsum(column) / len(column)
    return mean, math.fsum((value - mean) ** 2 for value in column) / len(column)


def book_batch_norm_train(x, gamma, beta):
    """(out, means, variances): each feature normalised by its batch mean and variance, then gamma * xn + beta."""
    n, d = x.shape
    out, means, variances = np.empty((n, d)), np.empty(d), np.empty(d)
    for j in range(d):
        mean, var = column_mean_and_variance(x, j)
        for i in range(n):
            out[i, j] = gamma[j] * (x[i, j] - mean) / math.sqrt(var + BOOK_EPS) + beta[j]
        means[j], variances[j] = mean, var
    return out, means, variances


def book_batch_norm_test(x, gamma, beta, running_mean, running_var):
    n, d = x.shape
    out = np.empty((n, d))
    for j in range(d):
        for i in range(n):
            out[i, j] = gamma[j] * (x[i, j] - running_mean[j]) / math.sqrt(running_var[j] + BOOK_EPS) + beta[j]
    return out


BOOK_ACTIVATIONS = {
    "relu": lambda h: np.where(h > 0, h, 0.0),
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
    "tanh": np.tanh,
}


def book_scores(net, x, train, draws=None):
    """MultiLayerNetExtend.predict: (Affine, [BatchNorm], activation, [Dropout]) per hidden layer, last Affine.
    `draws[i]` are the uniform draws of hidden layer i's dropout mask (training mode only)."""
    params, hidden_layers = net.params, len(net.sizes) - 2
    h = x
    for i in range(1, hidden_layers + 1):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        if net.use_batchnorm:
            gamma, beta = params[f"gamma{i}"], params[f"beta{i}"]
            if train:
                h = book_batch_norm_train(h, gamma, beta)[0]
            else:
                statistics = net.running_statistics
                h = book_batch_norm_test(h, gamma, beta, statistics[f"running_mean{i}"], statistics[f"running_var{i}"])
        h = BOOK_ACTIVATIONS[net.activation](h)
        if net.use_dropout:
            h = book_dropout_train(h, draws[i - 1], net.dropout_ratio) if train else book_dropout_test(h, net.dropout_ratio)
    last = hidden_layers + 1
    return h @ params[f"W{last}"] + params[f"b{last}"]


def book_softmax(scores):
    out = np.empty_like(scores)
    for i, row in enumerate(scores):
        exps = np.exp(row - row.max())
        out[i] = exps / exps.sum()
    return out


def book_cross_entropy(scores, labels):
    total = 0.0
    for row, label in zip(scores, labels):
        top = row.max()
        total += top + math.log(sum(math.exp(s - top) for s in row)) - row[label]
    return total / len(labels)


def book_weight_decay(net, decay_lambda):
    """0.5 * lambda * sum(W ** 2) over W1 .. Wn, weight by weight."""
    total = 0.0
    for i in range(1, len(net.sizes)):
        total += sum(float(w) * float(w) for w in net.params[f"W{i}"].ravel())
    return 0.5 * decay_lambda * total


def batch(rng, n=8, n_in=6, n_classes=3):
    return rng.random((n, n_in)), rng.integers(0, n_classes, n)


def train_a_little(net, rng, steps=4, lr=0.1):
    """A few SGD steps in training mode: they move the running statistics and draw dropout masks."""
    for _ in range(steps):
        x, t = batch(rng, n_in=net.sizes[0], n_classes=net.sizes[-1])
        grads = net.gradient(x, t)
        for key, grad in grads.items():
            net.params[key] -= lr * grad


def snapshot(arrays):
    return {key: value.copy() for key, value in arrays.items()}


def assert_same_arrays(actual, expected):
    assert list(actual) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


# --- Dropout ------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(ratio=st.floats(0.0, 0.95), rows=st.integers(1, 7), cols=st.integers(1, 7), seed=st.integers(0, 2 ** 32 - 1))
def test_dropout_training_keeps_exactly_the_units_whose_draw_from_its_generator_exceeds_the_ratio(ratio, rows, cols,
                                                                                                  seed):
    x = np.random.default_rng(seed ^ 0xABCDEF).standard_normal((rows, cols))
    layer = Dropout(ratio, rng=seed)
    reference = np.random.default_rng(seed)
    for train_flg in ({}, {"train_flg": True}, {}):  # each training pass draws the generator's next mask
        draws = reference.random(x.shape)
        np.testing.assert_array_equal(layer.forward(x, **train_flg), book_dropout_train(x, draws, ratio))


@settings(max_examples=25, deadline=None)
@given(ratio=st.floats(0.0, 0.95), seed=st.integers(0, 2 ** 32 - 1))
def test_dropout_test_mode_scales_every_unit_by_the_kept_fraction(ratio, seed):
    x = np.random.default_rng(seed).standard_normal((4, 5))
    layer = Dropout(ratio, rng=seed)
    layer.forward(x)  # a training mask exists: test mode must not use it
    expected = book_dropout_test(x, ratio)
    np.testing.assert_array_equal(layer.forward(x, train_flg=False), expected)
    np.testing.assert_array_equal(layer.forward(x, False), expected)


def test_dropout_backward_passes_dout_only_where_the_unit_was_kept():
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((6, 9)), rng.standard_normal((6, 9))
    layer = Dropout(0.4, rng=11)
    layer.forward(x)
    draws = np.random.default_rng(11).random(x.shape)
    dout_before = dout.copy()
    dx = layer.backward(dout)
    expected = np.zeros_like(dout)
    for i, j in np.ndindex(dout.shape):
        if draws[i, j] > 0.4:
            expected[i, j] = dout[i, j]
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dout, dout_before)
    assert 0 < np.count_nonzero(dx) < dx.size


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.8])
def test_dropout_keeps_about_one_minus_the_ratio_of_a_large_array(ratio):
    x = np.ones((500, 400))
    out = Dropout(ratio, rng=3).forward(x)
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert np.mean(out) == pytest.approx(1 - ratio, abs=0.005)  # 200000 draws: the standard error is < 0.0012
    assert np.mean(out) == pytest.approx(np.mean(Dropout(ratio).forward(x, train_flg=False)), abs=0.005)


def test_dropout_ratio_zero_keeps_everything():
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((30, 20)), rng.standard_normal((30, 20))
    layer = Dropout(0.0, rng=4)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(dout), dout)
    np.testing.assert_array_equal(layer.forward(x, train_flg=False), x)


@pytest.mark.parametrize("ratio", [1, 1.0, -0.1, 1.5, float("nan"), float("inf"), "a", "0.5", None, True])
def test_dropout_ratios_outside_zero_to_one_are_refused_naming_dropout_ratio(ratio):
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError, match="dropout_ratio"):
        Dropout(ratio)
    with pytest.raises(ConfigError, match="dropout_ratio"):
        MultiLayerNet(4, [3], 2, use_dropout=True, dropout_ratio=ratio)
    if ratio is not None:  # dropout_ration=None means it was not given
        with pytest.raises(ConfigError, match="dropout_ratio"):
            MultiLayerNet(4, [3], 2, use_dropout=True, dropout_ration=ratio)


def test_dropout_draws_a_fresh_mask_each_forward_but_one_mask_inside_frozen_training():
    x = np.ones((20, 30))
    layer = Dropout(0.5, rng=3)
    reference = np.random.default_rng(3)

    def next_mask():
        return book_dropout_train(x, reference.random(x.shape), 0.5)

    first, second = layer.forward(x), layer.forward(x)
    np.testing.assert_array_equal(first, next_mask())
    np.testing.assert_array_equal(second, next_mask())
    assert not np.array_equal(first, second)

    with frozen_training([layer]):
        frozen = next_mask()
        for _ in range(3):
            np.testing.assert_array_equal(layer.forward(x), frozen)
        np.testing.assert_array_equal(layer.backward(2 * x), 2 * frozen)  # backward uses that one mask too
    assert not np.array_equal(frozen, second)

    with frozen_training([layer]):  # entering again draws a new mask, then keeps it
        again = next_mask()
        np.testing.assert_array_equal(layer.forward(x), again)
        np.testing.assert_array_equal(layer.forward(x), again)
    assert not np.array_equal(again, frozen)

    np.testing.assert_array_equal(layer.forward(x), next_mask())  # outside: fresh masks again


def test_frozen_training_ends_even_when_its_body_raises():
    x = np.ones((10, 10))
    layer = Dropout(0.5, rng=8)
    with pytest.raises(RuntimeError):
        with frozen_training([layer]):
            layer.forward(x)
            raise RuntimeError("interrupted")
    assert not np.array_equal(layer.forward(x), layer.forward(x))


# --- BatchNormalization -------------------------------------------------------------------------------

def test_batch_norm_eps_is_the_books():
    assert BATCH_NORM_EPS == BOOK_EPS == 1e-6


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 9), d=st.integers(1, 5), scale=st.sampled_from([1e-3, 0.1, 1.0, 20.0]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_batch_norm_training_forward_is_the_per_feature_formula(n, d, scale, seed):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, d)) + rng.standard_normal(d)  # at scale 1e-3 the variance is near eps
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    expected, _, _ = book_batch_norm_train(x, gamma, beta)
    out = BatchNormalization(gamma, beta).forward(x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-9 * (1 + np.abs(gamma).max() + np.abs(beta).max()))


@pytest.mark.parametrize("momentum", [None, 0.5, 0.99])
def test_running_statistics_start_at_zero_and_follow_the_momentum_recurrence(momentum):
    rng = np.random.default_rng(5)
    d = 4
    gamma, beta = 1 + rng.random(d), rng.standard_normal(d)
    layer = BatchNormalization(gamma, beta) if momentum is None else BatchNormalization(gamma, beta, momentum=momentum)
    m = 0.9 if momentum is None else momentum  # the book's default
    assert layer.running_mean.shape == layer.running_var.shape == (d,)
    assert not layer.running_mean.any() and not layer.running_var.any()
    expected_mean, expected_var = [0.0] * d, [0.0] * d
    for step, n in enumerate([8, 3, 12, 5, 2]):
        x = (step + 1) * rng.standard_normal((n, d)) + 3.0
        layer.forward(x, train_flg=True)
        for j in range(d):
            mean, var = column_mean_and_variance(x, j)
            expected_mean[j] = m * expected_mean[j] + (1 - m) * mean
            expected_var[j] = m * expected_var[j] + (1 - m) * var
        np.testing.assert_allclose(layer.running_mean, expected_mean, rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, expected_var, rtol=1e-12)


def test_batch_norm_test_mode_normalises_by_the_running_statistics():
    rng = np.random.default_rng(6)
    d = 5
    gamma, beta = 1 + rng.random(d), rng.standard_normal(d)
    layer = BatchNormalization(gamma, beta)
    for _ in range(3):
        layer.forward(2 * rng.standard_normal((10, d)) + 1)
    running_mean, running_var = layer.running_mean.copy(), layer.running_var.copy()
    x = rng.standard_normal((7, d))
    out = layer.forward(x, train_flg=False)
    np.testing.assert_allclose(out, book_batch_norm_test(x, gamma, beta, running_mean, running_var), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(layer.running_mean, running_mean)  # test mode moves nothing
    np.testing.assert_array_equal(layer.running_var, running_var)
    np.testing.assert_array_equal(layer.forward(x[2:3], train_flg=False), out[2:3])  # per sample, not per batch


def test_batch_norm_uses_running_statistics_it_is_given():
    rng = np.random.default_rng(7)
    gamma, beta = 1 + rng.random(3), rng.standard_normal(3)
    running_mean, running_var = rng.standard_normal(3), rng.random(3)
    layer = BatchNormalization(gamma, beta, running_mean=running_mean.copy(), running_var=running_var.copy())
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.forward(x, train_flg=False),
                               book_batch_norm_test(x, gamma, beta, running_mean, running_var), rtol=1e-12)


def test_frozen_training_leaves_the_running_statistics_unchanged():
    rng = np.random.default_rng(8)
    d = 4
    gamma, beta = 1 + rng.random(d), rng.standard_normal(d)
    layer = BatchNormalization(gamma, beta)
    layer.forward(rng.standard_normal((6, d)) + 2)
    running_mean, running_var = layer.running_mean.copy(), layer.running_var.copy()
    with frozen_training([layer]):
        for _ in range(3):
            x = 3 * rng.standard_normal((5, d)) - 1
            np.testing.assert_allclose(layer.forward(x), book_batch_norm_train(x, gamma, beta)[0], rtol=1e-9,
                                       atol=1e-9)  # still the batch's own statistics
        np.testing.assert_array_equal(layer.running_mean, running_mean)
        np.testing.assert_array_equal(layer.running_var, running_var)
    x = rng.standard_normal((5, d))
    layer.forward(x)  # outside, they follow again
    _, mean, var = book_batch_norm_train(x, gamma, beta)
    np.testing.assert_allclose(layer.running_mean, 0.9 * running_mean + 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 * running_var + 0.1 * var, rtol=1e-12)


@pytest.mark.parametrize("n, spread", [(2, 1.0), (2, 0.003), (3, 1.0), (5, 1.0), (8, 0.01), (16, 1.0), (40, 2.0)])
def test_batch_norm_backward_matches_the_numerical_gradient_of_the_formula(n, spread):
    rng = np.random.default_rng(n)
    d = 4
    x = spread * rng.standard_normal((n, d)) + rng.standard_normal(d)
    gamma, beta = 0.5 + rng.random(d), rng.standard_normal(d)
    weights = rng.standard_normal((n, d))
    layer = BatchNormalization(gamma.copy(), beta.copy())
    layer.forward(x, train_flg=True)
    dx = layer.backward(weights)

    def weighted_output(_):
        return float(np.sum(book_batch_norm_train(x, gamma, beta)[0] * weights))

    h = 1e-5 * spread  # the formula changes on the scale of the spread
    for name, analytic, wrt in (("dx", dx, x), ("dgamma", layer.dgamma, gamma), ("dbeta", layer.dbeta, beta)):
        numerical = numerical_gradient(weighted_output, wrt, h=h if wrt is x else 1e-5)
        assert analytic.shape == wrt.shape, name
        scale = np.max(np.abs(numerical))
        assert np.max(np.abs(analytic - numerical)) <= 1e-7 * max(scale, 1.0), (name, analytic, numerical)
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-9 * max(1.0, np.abs(dx).max()))  # shift invariance


def test_batch_norm_takes_image_batches_reshaped_per_row_as_the_book():
    rng = np.random.default_rng(9)
    n, c, hh, ww = 5, 2, 3, 3
    x = rng.standard_normal((n, c, hh, ww)) + 1
    d = c * hh * ww
    gamma, beta = 1 + rng.random(d), rng.standard_normal(d)
    images, rows = BatchNormalization(gamma, beta), BatchNormalization(gamma, beta)
    out = images.forward(x)
    assert out.shape == x.shape
    expected, means, variances = book_batch_norm_train(x.reshape(n, -1), gamma, beta)
    np.testing.assert_allclose(out, expected.reshape(x.shape), rtol=1e-9, atol=1e-9)
    assert images.running_mean.shape == (d,)
    np.testing.assert_allclose(images.running_mean, 0.1 * means, rtol=1e-12)
    np.testing.assert_allclose(images.running_var, 0.1 * variances, rtol=1e-12)
    dout = rng.standard_normal(x.shape)
    dx = images.backward(dout)
    rows.forward(x.reshape(n, -1))
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, rows.backward(dout.reshape(n, -1)).reshape(x.shape), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(images.dgamma, rows.dgamma, rtol=1e-12)
    test_out = images.forward(x, train_flg=False)
    assert test_out.shape == x.shape
    np.testing.assert_allclose(test_out, book_batch_norm_test(x.reshape(n, -1), gamma, beta, images.running_mean,
                                                              images.running_var).reshape(x.shape), rtol=1e-12)


# --- MultiLayerNet with the chapter-6 options ---------------------------------------------------------

def layer_kind(layer):
    for kind in (Affine, BatchNormalization, ActivationLayer, Dropout):
        if isinstance(layer, kind):
            return kind.__name__
    return type(layer).__name__


@pytest.mark.parametrize("hidden", [[5], [5, 4], [5, 4, 3]])
@pytest.mark.parametrize("use_batchnorm", [False, True])
@pytest.mark.parametrize("use_dropout", [False, True])
def test_layers_and_params_are_in_the_books_order(hidden, use_batchnorm, use_dropout):
    net = MultiLayerNet(6, hidden, 3, use_batchnorm=use_batchnorm, use_dropout=use_dropout, dropout_ratio=0.25, rng=0)
    expected_kinds = []
    for _ in hidden:
        expected_kinds += ["Affine", *(["BatchNormalization"] * use_batchnorm), "ActivationLayer",
                           *(["Dropout"] * use_dropout)]
    assert [layer_kind(layer) for layer in net.layers] == expected_kinds + ["Affine"]

    depth = len(hidden) + 1
    expected_keys = [f"{name}{i}" for i in range(1, depth + 1) for name in ("W", "b")]
    if use_batchnorm:
        expected_keys += [f"{name}{i}" for i in range(1, depth) for name in ("gamma", "beta")]
    assert list(net.params) == expected_keys
    assert list(net.running_statistics) == ([f"{name}{i}" for i in range(1, depth) for name in
                                             ("running_mean", "running_var")] if use_batchnorm else [])

    affines = [layer for layer in net.layers if isinstance(layer, Affine)]
    for i, affine in enumerate(affines, start=1):
        assert affine.W is net.params[f"W{i}"] and affine.b is net.params[f"b{i}"]
    assert [layer for layer in net.layers if isinstance(layer, BatchNormalization)] == net.batch_norm_layers
    assert [layer for layer in net.layers if isinstance(layer, Dropout)] == net.dropout_layers
    for i, (layer, width) in enumerate(zip(net.batch_norm_layers, hidden), start=1):
        assert layer.gamma is net.params[f"gamma{i}"] and layer.beta is net.params[f"beta{i}"]
        np.testing.assert_array_equal(layer.gamma, np.ones(width))
        np.testing.assert_array_equal(layer.beta, np.zeros(width))
        assert layer.momentum == 0.9
        assert not net.running_statistics[f"running_mean{i}"].any()
        assert not net.running_statistics[f"running_var{i}"].any()
    assert all(layer.dropout_ratio == 0.25 for layer in net.dropout_layers)
    assert all(layer.activation.name == "relu" for layer in net.layers if isinstance(layer, ActivationLayer))


def test_the_books_spelling_dropout_ration_is_dropout_ratio(restart_dropout_masks):
    rng = np.random.default_rng(10)
    x, t = batch(rng)
    book = MultiLayerNet(6, [5, 5], 3, use_dropout=True, dropout_ration=0.3, rng=2)
    plain = MultiLayerNet(6, [5, 5], 3, use_dropout=True, dropout_ratio=0.3, rng=2)
    assert book.dropout_ratio == plain.dropout_ratio == 0.3
    assert [layer.dropout_ratio for layer in book.dropout_layers] == [0.3, 0.3]
    assert book.architecture() == plain.architecture()
    np.testing.assert_array_equal(book.predict(x), plain.predict(x))
    restart_dropout_masks(book)
    restart_dropout_masks(plain)
    assert book.loss(x, t, train_flg=True) == plain.loss(x, t, train_flg=True)
    assert MultiLayerNet(6, [5], 3, use_dropout=True).dropout_ratio == 0.5  # the book's default
    assert MultiLayerNet(6, [5], 3, use_dropout=True, dropout_ratio=0.3, dropout_ration=0.3).dropout_ratio == 0.3
    with pytest.raises(ConfigError, match="dropout_ratio 0.3 and dropout_ration 0.2 are the same setting"):
        MultiLayerNet(6, [5], 3, use_dropout=True, dropout_ratio=0.3, dropout_ration=0.2)


NET_SHAPES = [[5], [5, 4], [4, 5, 4], [5, 4, 4, 3], [4, 4, 3, 4, 4]]  # depths 2 to 6


@pytest.mark.parametrize("hidden", NET_SHAPES, ids=lambda hidden: f"depth{len(hidden) + 1}")
@pytest.mark.parametrize("use_dropout", [False, True], ids=["", "dropout"])
@pytest.mark.parametrize("use_batchnorm", [False, True], ids=["", "batchnorm"])
@pytest.mark.parametrize("weight_decay_lambda", [0.0, 0.1], ids=["", "decay"])
def test_backprop_matches_the_numerical_gradient_in_training_mode(hidden, use_dropout, use_batchnorm,
                                                                   weight_decay_lambda, restart_dropout_masks):
    rng = np.random.default_rng(len(hidden))
    x, t = batch(rng)
    net = MultiLayerNet(6, hidden, 3, activation="sigmoid" if len(hidden) % 2 else "relu", weight_init_std=0.8,
                        use_dropout=use_dropout, dropout_ratio=0.3, use_batchnorm=use_batchnorm,
                        weight_decay_lambda=weight_decay_lambda, rng=len(hidden) + 10)
    for key in net.params:
        if not key.startswith("W"):  # away from the initial ones and zeros; nonzero biases also keep the
            # pre-activation of a row that relu and dropout zeroed entirely off relu's kink at exactly 0
            net.params[key] += 0.3 * rng.standard_normal(net.params[key].shape)
    restart_dropout_masks(net)
    grads = net.gradient(x, t)
    statistics = snapshot(net.running_statistics)
    if use_batchnorm:
        assert all(value.any() for value in statistics.values())  # the training pass moved them
    restart_dropout_masks(net)
    numerical = net.numerical_gradient(x, t)
    assert_same_arrays(net.running_statistics, statistics)
    assert list(numerical) == list(net.params)
    assert set(grads) == set(net.params)
    for key in numerical:
        assert grads[key].shape == net.params[key].shape, key
        scale = np.max(np.abs(numerical[key]))
        assert np.max(np.abs(grads[key] - numerical[key])) <= 1e-6 * max(scale, 1e-2), (key, grads[key], numerical[key])


def test_the_training_loss_is_the_books_with_the_layers_masks_and_the_weight_decay(restart_dropout_masks):
    rng = np.random.default_rng(11)
    x, t = batch(rng, n=10)
    net = MultiLayerNet(6, [5, 4], 3, use_dropout=True, dropout_ratio=0.4, use_batchnorm=True,
                        weight_decay_lambda=0.05, rng=3)
    train_a_little(net, rng)
    restart_dropout_masks(net, seed=5)
    loss = net.loss(x, t, train_flg=True)
    draws = [np.random.default_rng(5).random((len(x), width)) for width in (5, 4)]
    expected = book_cross_entropy(book_scores(net, x, train=True, draws=draws), t) + book_weight_decay(net, 0.05)
    assert loss == pytest.approx(expected, rel=1e-10)


def test_predict_and_accuracy_are_the_books_deterministic_test_mode():
    rng = np.random.default_rng(12)
    net = MultiLayerNet(6, [5, 4], 3, use_dropout=True, dropout_ratio=0.3, use_batchnorm=True, rng=4)
    train_a_little(net, rng)
    x, t = batch(rng, n=30)
    statistics = snapshot(net.running_statistics)
    first, second = net.predict(x), net.predict(x)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, book_softmax(book_scores(net, x, train=False)), rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(net.predict(x, train_flg=False), first)
    accuracy = net.accuracy(x, t)
    assert accuracy == net.accuracy(x, t) == pytest.approx(np.mean(first.argmax(axis=1) == t))
    assert net.loss(x, t) == net.loss(x, t)
    assert_same_arrays(net.running_statistics, statistics)


def test_the_training_loss_with_dropout_differs_between_calls():
    rng = np.random.default_rng(13)
    x, t = batch(rng, n=20)
    net = MultiLayerNet(6, [8, 8], 3, use_dropout=True, dropout_ratio=0.5, rng=5)
    losses = [net.loss(x, t, train_flg=True) for _ in range(3)]
    assert len(set(losses)) == 3
    assert net.loss(x, t) == net.loss(x, t, train_flg=False)


def test_weight_decay_with_batchnorm_penalises_the_weights_only():
    rng = np.random.default_rng(14)
    x, t = batch(rng, n=12)
    decay_lambda = 0.3
    plain = MultiLayerNet(6, [5, 4], 3, use_batchnorm=True, rng=6)
    decayed = MultiLayerNet(6, [5, 4], 3, use_batchnorm=True, rng=6, weight_decay_lambda=decay_lambda)
    for key in plain.params:
        if key.startswith(("gamma", "beta")):  # nonzero, so that a penalty on them would show
            value = 1.5 + rng.standard_normal(plain.params[key].shape)
            plain.params[key] = value
            decayed.params[key] = value
    train_a_little(plain, np.random.default_rng(1), steps=1, lr=0.0)  # some running statistics for test mode
    train_a_little(decayed, np.random.default_rng(1), steps=1, lr=0.0)
    penalty = book_weight_decay(plain, decay_lambda)
    for train_flg in (False, True):
        assert decayed.loss(x, t, train_flg) - plain.loss(x, t, train_flg) == pytest.approx(penalty, rel=1e-10)
    plain_grads, decayed_grads = plain.gradient(x, t), decayed.gradient(x, t)
    for key in plain.params:
        expected = plain_grads[key] + decay_lambda * plain.params[key] if key.startswith("W") else plain_grads[key]
        np.testing.assert_allclose(decayed_grads[key], expected, rtol=1e-12, atol=1e-15, err_msg=key)


def test_copy_reproduces_predict_exactly_with_the_running_statistics():
    rng = np.random.default_rng(15)
    net = MultiLayerNet(6, [5, 4], 3, use_dropout=True, dropout_ratio=0.2, use_batchnorm=True,
                        weight_decay_lambda=0.01, rng=7)
    train_a_little(net, rng, steps=5)
    x, t = batch(rng, n=20)
    clone = net.copy()
    assert clone.architecture() == net.architecture()
    assert all(value.any() for value in net.running_statistics.values())
    assert_same_arrays(clone.running_statistics, net.running_statistics)
    assert_same_arrays(clone.params, net.params)
    expected = net.predict(x)
    np.testing.assert_array_equal(clone.predict(x), expected)
    assert clone.accuracy(x, t) == net.accuracy(x, t)
    train_a_little(net, rng, steps=2)  # the original goes on; the copy shares nothing with it
    np.testing.assert_array_equal(clone.predict(x), expected)
    for key, value in clone.running_statistics.items():
        assert not np.shares_memory(value, net.running_statistics[key])


def test_two_layer_net_takes_dropout_and_batchnorm_and_keeps_chapter_4s_defaults(restart_dropout_masks):
    default = TwoLayerNet(rng=0)
    assert default.activation == "sigmoid" and default.weight_init_std == 0.01
    assert not default.use_dropout and not default.use_batchnorm and default.weight_decay_lambda == 0
    assert [layer_kind(layer) for layer in default.layers] == ["Affine", "ActivationLayer", "Affine"]

    net = TwoLayerNet(784, 50, 10, use_dropout=True, dropout_ratio=0.2, use_batchnorm=True, rng=0)
    assert [layer_kind(layer) for layer in net.layers] == ["Affine", "BatchNormalization", "ActivationLayer", "Dropout",
                                                           "Affine"]
    assert net.layers[2].activation.name == "sigmoid"
    assert list(net.params) == ["W1", "b1", "W2", "b2", "gamma1", "beta1"]
    assert np.std(net.params["W1"]) == pytest.approx(0.01, rel=0.02)
    assert np.std(net.params["W2"]) == pytest.approx(0.01, rel=0.1)
    architecture = net.architecture()
    assert architecture["class"] == "TwoLayerNet"
    assert architecture["use_dropout"] is True and architecture["use_batchnorm"] is True
    assert architecture["dropout_ratio"] == 0.2

    small = TwoLayerNet(6, 5, 3, weight_init_std=1.0, use_dropout=True, use_batchnorm=True, rng=1)
    x, t = batch(np.random.default_rng(16))
    restart_dropout_masks(small)
    grads = small.gradient(x, t)
    restart_dropout_masks(small)
    numerical = small.numerical_gradient(x, t)
    for key in small.params:
        scale = np.max(np.abs(numerical[key]))
        assert np.max(np.abs(grads[key] - numerical[key])) <= 1e-6 * max(scale, 1e-2), key


def test_multi_layer_net_defaults_to_relu_with_he_init_as_the_book():
    net = MultiLayerNet(784, [100, 100], 10, rng=0)
    assert net.activation == "relu" and net.weight_init_std == "relu"
    assert not net.use_dropout and not net.use_batchnorm and net.weight_decay_lambda == 0
    assert net.dropout_ratio == 0.5
    assert all(layer.activation.name == "relu" for layer in net.layers if isinstance(layer, ActivationLayer))
    for key, fan_in, rel in (("W1", 784, 0.02), ("W2", 100, 0.03), ("W3", 100, 0.08)):
        assert np.std(net.params[key]) == pytest.approx(math.sqrt(2.0 / fan_in), rel=rel), key
    for key in ("b1", "b2", "b3"):
        assert not net.params[key].any()
