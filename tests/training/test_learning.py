"""Learning on the real MNIST: the floors a correct implementation always clears.

The book-length runs (10000 iterations, minutes for the numerical one) are marked `slow`:
`python -m pytest -m "not slow"` leaves them out of the quick loop.
"""

import numpy as np
import pytest

from sgdlab import SGD, Adam, ConvNet, SimpleConvNet, TrainConfig, Trainer, TwoLayerNet, load_mnist
from sgdlab.engine.gradcheck import gradient_check
from sgdlab.nn.optimizers import OPTIMIZERS


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(data_dir=mnist_dir)


def fit(mnist, **settings):
    (x_train, t_train), (x_test, t_test) = mnist
    trainer = Trainer.from_config(TrainConfig(**settings))
    return trainer, trainer.fit(x_train, t_train, x_test, t_test)


def test_short_backprop_run_learns(mnist):
    _, history = fit(mnist, iters=1000)
    assert history.test_acc[0] < 0.2  # chance level before training
    assert history.test_acc[-1] > 0.8
    assert np.mean(history.loss[-100:]) < 0.8 < np.mean(history.loss[:10])


@pytest.mark.parametrize("activation, weight_init_std", [("tanh", 0.01), ("tanh", "xavier"), ("relu", "he")])
def test_other_activations_learn(mnist, activation, weight_init_std):
    _, history = fit(mnist, iters=1000, activation=activation, weight_init_std=weight_init_std)
    assert history.test_acc[-1] > 0.88
    assert np.mean(history.loss[-100:]) < 0.6 < np.mean(history.loss[:10])


@pytest.mark.parametrize("optimizer", [name for name in OPTIMIZERS if name != "sgd"])  # sgd: chapter 4's rate
def test_every_optimizer_learns_at_its_book_learning_rate(mnist, optimizer):
    trainer, history = fit(mnist, iters=1000, optimizer=optimizer)
    assert trainer.optimizer.lr == trainer.optimizer.default_lr
    assert history.test_acc[-1] > 0.84
    assert np.mean(history.loss[-100:]) < 0.7 < np.mean(history.loss[:10])


def test_a_deeper_relu_net_with_weight_decay_learns(mnist):
    trainer, history = fit(mnist, iters=1000, hidden_sizes=(100, 50), activation="relu", weight_init_std="he",
                           weight_decay=1e-4)
    assert trainer.network.sizes == (784, 100, 50, 10)
    assert history.test_acc[-1] > 0.92
    assert np.mean(history.loss[-100:]) < 0.4 < np.mean(history.loss[:10])


@pytest.mark.slow  # the quick loop's convolutional net learns from the command line (tests/cli/test_conv_commands.py)
def test_a_convnet_learns(mnist):
    (x_train, t_train), (x_test, t_test) = mnist
    network = ConvNet((1, 28, 28), [{"type": "convolution", "filter_num": 8, "filter_size": 5}, {"type": "relu"},
                                    {"type": "pooling", "pool_size": 2, "stride": 2}, {"type": "affine", "output_size": 50},
                                    {"type": "relu"}], 10, weight_init_std="he", rng=0, dtype=np.float32)
    trainer = Trainer(network, Adam(0.001), TrainConfig(iters=300, train_size=20000, optimizer="adam"))
    history = trainer.fit(x_train, t_train, x_test, t_test)
    assert history.test_acc[0] < 0.2  # chance level before training
    assert history.test_acc[-1] > 0.9  # (about 0.95)
    assert np.mean(history.loss[-30:]) < 0.4 < np.mean(history.loss[:10]) / 4


@pytest.fixture(scope="module")
def book_run(mnist):
    return fit(mnist)  # 10000 iterations, batch 100, lr 0.1, 50 hidden units, backprop, float32


@pytest.fixture(scope="module")
def book_run_float64(mnist):
    return fit(mnist, dtype="float64")


@pytest.mark.slow
def test_book_configuration_reaches_the_books_accuracy(book_run):
    _, history = book_run
    assert len(history.iteration) == 18
    assert history.test_acc[-1] >= 0.94
    assert history.train_acc[-1] >= 0.94
    assert abs(history.train_acc[-1] - history.test_acc[-1]) < 0.02  # no overfitting at this size


@pytest.mark.slow
def test_float32_learns_as_well_as_float64(book_run, book_run_float64):
    (_, h32), (_, h64) = book_run, book_run_float64
    assert h64.test_acc[-1] >= 0.94
    np.testing.assert_allclose(h32.test_acc, h64.test_acc, atol=0.005)
    np.testing.assert_allclose(h32.train_acc, h64.train_acc, atol=0.005)


def test_numerical_gradient_training_lowers_the_loss_and_matches_backprop(mnist):
    settings = {"iters": 15, "batch_size": 50, "hidden_size": 3, "lr": 1.0, "weight_init_std": 0.1}
    numerical, h_numerical = fit(mnist, grad="numerical", **settings)
    backprop, h_backprop = fit(mnist, grad="backprop", dtype="float64", **settings)
    (x_train, t_train), _ = mnist
    fresh = Trainer.from_config(TrainConfig(**settings)).network
    probe = slice(0, 1000)
    assert numerical.network.loss(x_train[probe], t_train[probe]) < fresh.loss(x_train[probe], t_train[probe])
    np.testing.assert_allclose(h_numerical.loss, h_backprop.loss, rtol=1e-7)
    for key in backprop.network.params:
        np.testing.assert_allclose(numerical.network.params[key], backprop.network.params[key], atol=1e-7)


def numerical_and_backprop_runs(mnist, make_network, iters=4):
    (x_train, t_train), (x_test, t_test) = mnist
    runs = []
    for grad in ("numerical", "backprop"):
        config = TrainConfig(grad=grad, iters=iters, batch_size=20, train_size=200, lr=0.1, dtype="float64")
        trainer = Trainer(make_network(), SGD(0.1), config)
        runs.append((trainer, trainer.fit(x_train, t_train, x_test[:200], t_test[:200])))
    return runs


def test_a_smooth_convnet_trains_by_numerical_gradients_as_by_backprop(mnist):
    """The Trainer's grad="numerical" on a conv net without kinks (tanh, no pooling): the same losses and
    weights as backprop's, to the central difference's truncation, over a few SGD steps."""
    (numerical, h_numerical), (backprop, h_backprop) = numerical_and_backprop_runs(mnist, lambda: ConvNet(
        (1, 28, 28), [{"type": "convolution", "filter_num": 3, "filter_size": 4, "stride": 4}, {"type": "tanh"},
                      {"type": "affine", "output_size": 10}, {"type": "tanh"}], 10, weight_init_std="xavier", rng=0))
    assert h_numerical.loss[-1] < h_numerical.loss[0]
    np.testing.assert_allclose(h_numerical.loss, h_backprop.loss, rtol=1e-7)
    for key in backprop.network.params:
        np.testing.assert_allclose(numerical.network.params[key], backprop.network.params[key], rtol=0, atol=1e-7)


def test_a_simple_convnet_trains_by_numerical_gradients(mnist):
    """SimpleConvNet (small) by grad="numerical": it learns as backprop does, but for the few nudges that cross
    a relu's kink or change a pooling window's winner, where the central difference is no derivative."""
    (_, h_numerical), (_, h_backprop) = numerical_and_backprop_runs(mnist, lambda: SimpleConvNet(
        conv_param={"filter_num": 4, "filter_size": 5}, hidden_size=10, weight_init_std="he", rng=0), iters=8)
    assert np.mean(h_numerical.loss[-3:]) < h_numerical.loss[0]
    np.testing.assert_allclose(h_numerical.loss, h_backprop.loss, rtol=1e-2)


def test_gradient_check_of_the_book_network_on_real_images(mnist):
    (x_train, t_train), _ = mnist
    network = TwoLayerNet(rng=0)
    for check in gradient_check(network, x_train[:3].astype(np.float64), t_train[:3]):
        assert check.max_abs_diff < 1e-9, check
        assert check.max_rel_error < 1e-6, check


@pytest.mark.slow
def test_book_configuration_with_numerical_gradients_trains_like_backprop(mnist, book_run_float64):
    backprop, h_backprop = book_run_float64
    numerical, h_numerical = fit(mnist, grad="numerical")  # the chapter's own method, all 10000 iterations
    assert h_numerical.test_acc[-1] >= 0.94
    np.testing.assert_allclose(h_numerical.loss, h_backprop.loss, rtol=0, atol=1e-7)
    for key in backprop.network.params:
        np.testing.assert_allclose(numerical.network.params[key], backprop.network.params[key], rtol=0, atol=1e-6)
