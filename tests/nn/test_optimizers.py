import numpy as np
import pytest

from sgdlab.errors import ConfigError
from sgdlab.nn.optimizers import SGD


def test_one_sgd_step_by_hand():
    params = {"W1": np.array([[1.0, -2.0]]), "b1": np.array([0.5])}
    grads = {"W1": np.array([[0.5, 1.0]]), "b1": np.array([-1.0])}
    SGD(lr=0.1).update(params, grads)
    np.testing.assert_allclose(params["W1"], [[0.95, -2.1]], rtol=1e-15)
    np.testing.assert_allclose(params["b1"], [0.6], rtol=1e-15)


def test_update_is_in_place():
    W = np.ones(3)
    SGD(lr=1.0).update({"W": W}, {"W": np.ones(3)})
    np.testing.assert_array_equal(W, 0.0)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan")])
def test_non_positive_learning_rate_is_refused(lr):
    with pytest.raises(ConfigError, match="learning rate must be a positive number"):
        SGD(lr=lr)


def test_update_leaves_the_gradients_alone_and_repeats_exactly():
    W = np.array([1.0, 2.0])
    grads = {"W": np.array([0.5, -0.5])}
    optimizer = SGD(lr=0.1)
    optimizer.update({"W": W}, grads)
    optimizer.update({"W": W}, grads)
    np.testing.assert_array_equal(grads["W"], [0.5, -0.5])
    np.testing.assert_allclose(W, [0.9, 2.1], rtol=1e-15)


def test_an_optimizer_needs_a_name_of_its_own():
    from sgdlab.nn.optimizers import OPTIMIZERS, Optimizer

    with pytest.raises(TypeError, match="needs a name of its own"):
        class Unnamed(SGD):  # inherits "sgd": would replace SGD in the registry
            pass
    with pytest.raises(TypeError, match="needs a name of its own"):
        class Duplicate(Optimizer):
            name = "sgd"
    assert OPTIMIZERS == {"sgd": SGD}
