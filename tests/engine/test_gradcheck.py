"""The gradient check passes every correct network and fails every broken backward pass."""

import itertools

import numpy as np
import pytest

from sgdlab.engine import backprop, gradcheck
from sgdlab.engine.gradcheck import extrapolated_gradient, gradient_check
from sgdlab.engine.perturbation import CachedForward, numerical_gradient_fast
from sgdlab.nn import layers
from sgdlab.nn.activations import activation_names, get_activation
from sgdlab.nn.network import MultiLayerNet

INPUTS, CLASSES = 12, 4
GRID = {  # every correct configuration: each combination of these passes
    "activation": activation_names(),
    "use_batchnorm": (False, True),
    "dropout_ratio": (0.0, 0.3),
    "weight_decay_lambda": (0.0, 0.1),
    "weight_init_std": (0.001, 0.01, 0.1, 1.0, "xavier", "he"),
    "depth": (1, 2, 3, 4, 5, 6),
    "batch": (1, 2, 7, 30, 100),
    "seed": (0, 1, 2),
}
QUICK_SAMPLE = 24  # configurations drawn from the grid for the quick loop, by a fixed seed
SLOW_SAMPLE = 2000


def mnist_like_batch(rng, n, n_in=INPUTS, n_classes=CLASSES):
    """Pixels quantised to k/255, most of them 0, as MNIST's are."""
    pixels = rng.integers(0, 256, (n, n_in)) * (rng.random((n, n_in)) < 0.3)
    return pixels / 255.0, rng.integers(0, n_classes, n)


def network_of(configuration):
    """A network and a batch for one point of the grid; hidden widths drawn from 3 to 8 by its seed."""
    rng = np.random.default_rng(configuration["seed"])
    hidden = rng.integers(3, 9, configuration["depth"]).tolist()
    network = MultiLayerNet(INPUTS, hidden, CLASSES, configuration["activation"],
                            weight_init_std=configuration["weight_init_std"],
                            weight_decay_lambda=configuration["weight_decay_lambda"],
                            use_dropout=configuration["dropout_ratio"] > 0,
                            dropout_ratio=configuration["dropout_ratio"] or 0.5,
                            use_batchnorm=configuration["use_batchnorm"], rng=rng)
    return network, *mnist_like_batch(rng, configuration["batch"])


def sample_of_the_grid(size, seed):
    """`size` distinct points of the grid, drawn by `seed`: the same ones every run."""
    points = list(itertools.product(*GRID.values()))
    chosen = np.random.default_rng(seed).choice(len(points), size, replace=False)
    return [dict(zip(GRID, points[i])) for i in sorted(chosen)]


def label(configuration):
    return "-".join(str(value) for value in configuration.values())


def assert_passes(configuration):
    """Every parameter compared agrees. One none of whose entries could be compared is not verified (no pass),
    which happens to a correct net only to a bias still at 0 before relu whose every nudge crosses the kink:
    after several layers of the book's 0.01 weights, the layer's inputs are within h of 0 in every sample."""
    network, x, t = network_of(configuration)
    checks = gradient_check(network, x, t)
    for check in checks:
        if not check.checked:
            assert check.name.startswith("b") and not network.params[check.name].any(), check
    assert [check.name for check in checks if check.checked and not check.passed] == [], [
        (check.name, check.max_abs_diff, check.max_rel_error, check.noise) for check in checks]


@pytest.mark.parametrize("configuration", sample_of_the_grid(QUICK_SAMPLE, seed=22), ids=label)
def test_every_correct_network_passes(configuration):
    assert_passes(configuration)


@pytest.mark.slow
@pytest.mark.parametrize("configuration", sample_of_the_grid(SLOW_SAMPLE, seed=23), ids=label)
def test_every_correct_network_passes_on_a_larger_sample(configuration):
    assert_passes(configuration)


@pytest.mark.parametrize("activation", activation_names())
@pytest.mark.parametrize("weight_init_std", [0.001, 0.01, 1.0])
def test_batch_norm_after_small_or_large_weights_passes(activation, weight_init_std):
    """Where the central difference's truncation after batch norm once failed correct nets, on 100 samples."""
    rng = np.random.default_rng(7)
    network = MultiLayerNet(30, [10, 10, 10], CLASSES, activation, weight_init_std=weight_init_std, rng=rng,
                            use_batchnorm=True, use_dropout=True, dropout_ratio=0.2)
    x, t = mnist_like_batch(rng, 100, 30)
    assert all(check.passed for check in gradient_check(network, x, t))


def test_extrapolation_removes_the_truncation_error_of_the_central_difference():
    rng = np.random.default_rng(8)
    network = MultiLayerNet(30, [10, 10], CLASSES, "tanh", weight_init_std=0.01, rng=rng, use_batchnorm=True)
    x, t = mnist_like_batch(rng, 100, 30)
    backprop_grads = network.gradient(x, t)
    _, central = numerical_gradient_fast(network, x, t)
    extrapolated, kinks, _ = extrapolated_gradient(network, x, t)
    assert kinks is None  # tanh is smooth

    def worst(grads):
        return max(np.max(np.abs(grads[key] - backprop_grads[key])) / np.max(np.abs(backprop_grads[key]))
                   for key in ("W1", "W2", "gamma1"))

    assert worst(central) > 1e-6  # the book's h, as the old check judged: a correct net failed
    assert worst(extrapolated) < 1e-8


def test_a_step_too_coarse_for_a_later_batch_norm_shrinks(monkeypatch):
    """gamma2 of this net feeds a batch norm over two samples whose features hardly spread: at h the
    differences disagree by 1% of the gradient; the check differentiates it again with a smaller step."""
    configuration = dict(activation="tanh", use_batchnorm=True, dropout_ratio=0.0, weight_decay_lambda=0.0,
                         weight_init_std=1.0, depth=3, batch=2, seed=1)
    network, x, t = network_of(configuration)
    steps_taken = []
    central_differences = gradcheck.central_differences
    monkeypatch.setattr(gradcheck, "central_differences",
                        lambda *args, steps, **options: steps_taken.append(dict(steps)) or
                        central_differences(*args, steps=steps, **options))
    checks = {check.name: check for check in gradient_check(network, x, t)}
    assert all(check.passed for check in checks.values())
    assert checks["gamma2"].max_rel_error < 1e-9
    assert steps_taken[-1]["gamma2"] < steps_taken[0]["gamma2"] / 10
    assert steps_taken[-1]["beta2"] == steps_taken[-1]["gamma2"]


def test_entries_whose_nudge_crosses_a_kink_are_counted_not_compared():
    rng = np.random.default_rng(9)
    network = MultiLayerNet(INPUTS, [6, 5], CLASSES, "relu", weight_init_std="he", rng=rng, use_batchnorm=True)
    x, t = mnist_like_batch(rng, 30, INPUTS)
    y = CachedForward(network, x, t).pre_activations[1]
    network.params["beta2"][2] -= y[4, 2] - 1e-9  # unit 2 of layer 2 sits 1e-9 above its kink for sample 4
    checks = {check.name: check for check in gradient_check(network, x, t)}
    assert all(check.passed for check in checks.values() if check.checked)
    assert checks["beta2"].kinks == checks["gamma2"].kinks == 1  # beta2[2] moves that unit by h: across
    # through batch norm, nearly every nudge of layer 1 moves it, even at a hundredth of the step; gamma1 and
    # beta1 not one of them is compared: they are not verified, which is no pass
    assert checks["W1"].kinks >= checks["W1"].size - 2
    assert [name for name, check in checks.items() if not check.checked] == ["gamma1", "beta1"]
    assert not checks["gamma1"].passed and not checks["beta1"].passed
    assert checks["W3"].kinks == checks["b3"].kinks == 0  # the scores have no kink after them
    extrapolated, kinks, _ = extrapolated_gradient(network, x, t)
    assert kinks["beta2"].tolist() == [False, False, True, False, False]
    assert kinks["W2"][:, 2].all() and not kinks["W2"][:, [0, 1, 3, 4]].any()  # batch norm is per feature
    # what was left out: across the kink the central difference is no derivative
    beta2 = network.gradient(x, t)["beta2"]
    assert abs(extrapolated["beta2"][2] - beta2[2]) > 1e-3 * np.max(np.abs(beta2))


# --- broken backward passes ---------------------------------------------------------------------------

def book_batch_norm_backward_without_the_factor_2(self, dout):
    """The book's BatchNormalization.backward, the variance's derivative 2 xc / N written xc / N."""
    dout = dout.reshape(dout.shape[0], -1)
    self.dbeta = dout.sum(axis=0)
    self.dgamma = np.sum(self.xn * dout, axis=0)
    dxn = self.gamma * dout
    dxc = dxn / self.std
    dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
    dvar = 0.5 * dstd / self.std
    dxc += (1.0 / self.batch_size) * self.xc * dvar
    dmu = np.sum(dxc, axis=0)
    return (dxc - dmu / self.batch_size).reshape(self.input_shape)


def batch_norm_backward_into_without_the_mean_term(self, x, out, dout, dx, grads, work):
    """The training step's batch-norm backward without dbeta / N, the derivative through the batch mean."""
    dgamma, dbeta = grads
    xn, _, std = work
    np.add.reduce(dout, axis=0, out=dbeta)
    np.multiply(xn, dout, out=dx)
    np.add.reduce(dx, axis=0, out=dgamma)
    np.multiply(xn, dgamma, out=dx)
    dx /= -len(dx)
    dx += dout
    dx *= self.gamma / std
    return dx


def affine_backward_into_with_w_not_transposed(self, x, out, dout, dx, grads, work):
    dW, db = grads
    np.matmul(x.T, dout, out=dW)
    np.add.reduce(dout, axis=0, out=db)
    if dx is not None:
        square = self.W.shape[0] == self.W.shape[1]
        np.matmul(dout, self.W if square else self.W.T, out=dx)  # W for W.T where the shapes do not tell
    return dx


def book_affine_backward_with_dw_transposed(self, dout):
    self.dW = dout.T @ self.x if self.W.shape[0] == self.W.shape[1] else self.x.T @ dout
    self.db = dout.sum(axis=0)
    return (dout @ self.W.T).reshape(self.original_x_shape)


def weight_decay_of_the_wrong_sign(monkeypatch):
    """Both backprops add -lambda W to each weight's gradient instead of +lambda W."""
    loss_and_gradient = MultiLayerNet.loss_and_gradient

    def book(self, x, t):
        loss, grads = loss_and_gradient(self, x, t)
        for i, affine in enumerate(self.affine_layers, start=1):
            grads[f"W{i}"] = grads[f"W{i}"] - 2 * self.weight_decay_lambda * affine.W
        return loss, grads

    backward = backprop.BackpropStep.backward

    def step(self, x):
        grads = backward(self, x)
        for weight, grad in self.decayed:
            grad -= 2 * self.network.weight_decay_lambda * weight
        return grads

    monkeypatch.setattr(MultiLayerNet, "loss_and_gradient", book)
    monkeypatch.setattr(backprop.BackpropStep, "backward", step)


BROKEN = {
    "the book's batch norm, a factor of 2 missing":
        lambda m: m.setattr(layers.BatchNormalization, "backward", book_batch_norm_backward_without_the_factor_2),
    "the training step's batch norm, the mean's term dropped":
        lambda m: m.setattr(layers.BatchNormalization, "backward_into", batch_norm_backward_into_without_the_mean_term),
    "the training step's affine, W not transposed":
        lambda m: m.setattr(layers.Affine, "backward_into", affine_backward_into_with_w_not_transposed),
    "the book's affine, dW transposed":
        lambda m: m.setattr(layers.Affine, "backward", book_affine_backward_with_dw_transposed),
    "the tanh derivative halved":
        lambda m: m.setattr(type(get_activation("tanh")), "backward",
                            lambda self, dout, out: dout * (1.0 - out * out) / 2),
    "the weight decay of the wrong sign": weight_decay_of_the_wrong_sign,
}


@pytest.mark.parametrize("activation", activation_names())
@pytest.mark.parametrize("bug", BROKEN)
def test_every_broken_backward_pass_fails(bug, activation, monkeypatch):
    rng = np.random.default_rng(10)
    network = MultiLayerNet(INPUTS, [6, 6], CLASSES, activation, weight_init_std="he", rng=rng, use_batchnorm=True,
                            weight_decay_lambda=0.1)
    x, t = mnist_like_batch(rng, 20, INPUTS)
    assert all(check.passed for check in gradient_check(network, x, t))
    BROKEN[bug](monkeypatch)
    failed = [check.name for check in gradient_check(network, x, t) if not check.passed]
    if bug == "the tanh derivative halved" and activation != "tanh":
        assert failed == []  # only a tanh net is wrong
    else:
        assert failed, bug


def test_the_rounding_allowance_is_far_below_a_real_difference():
    """A parameter's allowance is ROUNDING |L| / step (the smaller step, h/2): for the book's h and a loss
    near ln 4, about 3.5e-9, under a twentieth of the MAX_ABS_DIFF that a wrong backward pass exceeds."""
    rng = np.random.default_rng(11)
    network = MultiLayerNet(INPUTS, [6], CLASSES, "sigmoid", rng=rng)
    x, t = mnist_like_batch(rng, 5, INPUTS)
    _, _, noise = extrapolated_gradient(network, x, t)
    loss = network.loss(x, t)
    assert noise == {key: pytest.approx(gradcheck.ROUNDING * loss / (gradcheck.STEP / 2)) for key in network.params}
    assert max(noise.values()) < gradcheck.MAX_ABS_DIFF / 20


def test_the_lab_pages_gradient_check_shows_the_kinks_apart():
    from sgdlab.training.inspection import gradient_agreement

    rng = np.random.default_rng(12)
    network = MultiLayerNet(INPUTS, [6], CLASSES, "relu", weight_init_std="he", rng=rng)
    x, t = mnist_like_batch(rng, 5, INPUTS)
    z = CachedForward(network, x, t).pre_activations[0]
    network.params["b1"][3] -= z[0, 3] + 1e-9  # unit 3 sits 1e-9 below its kink for sample 0
    rows = {row["name"]: row for row in gradient_agreement(network, x, t)}
    assert rows["b1"]["kinks"] == 1 and rows["b1"]["size"] == 6 and rows["b1"]["passed"]
    assert rows["W2"]["kinks"] == 0


def test_the_lab_pages_gradient_check_says_which_gradients_are_zero():
    """A bias just before batch norm has no gradient (batch norm subtracts it again): both methods give rounding
    noise, whose relative difference of about 1 the page must not leave unexplained."""
    from sgdlab.training.inspection import gradient_agreement

    rng = np.random.default_rng(13)
    network = MultiLayerNet(INPUTS, [6], CLASSES, "tanh", use_batchnorm=True, rng=rng)
    x, t = mnist_like_batch(rng, 5, INPUTS)
    rows = {row["name"]: row for row in gradient_agreement(network, x, t)}
    assert rows["b1"]["is_zero"] and rows["b1"]["passed"]
    assert not rows["W1"]["is_zero"] and not rows["b2"]["is_zero"]


def test_the_lab_pages_gradient_check_of_the_same_weights_gives_the_same_figures_at_every_look():
    """A net with dropout: each look draws its masks from the same seed, so that the page's figures change as the
    weights do, and not from one inspection to the next."""
    from sgdlab.training.inspection import gradient_agreement

    rng = np.random.default_rng(14)
    network = MultiLayerNet(INPUTS, [6, 5], CLASSES, "tanh", use_dropout=True, dropout_ratio=0.5, rng=rng)
    assert len(network.dropout_layers) == 2
    x, t = mnist_like_batch(rng, 5, INPUTS)
    looks = [gradient_agreement(network, x, t) for _ in range(3)]
    assert looks[0] == looks[1] == looks[2]
    assert all(row["passed"] for row in looks[0])
