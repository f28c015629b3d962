import numpy as np
import pytest

from sgdlab.nn.network import ConvNet, MultiLayerNet
from sgdlab.training.config import TrainConfig
from sgdlab.training.evaluation import Evaluator
from sgdlab.training.trainer import Trainer
from sgdlab.training.weight_distribution import PERCENTILES, weight_percentiles
from tests.training.blobs import blobs


def test_the_percentiles_are_tensorboards_the_normal_distributions_at_half_one_and_one_and_a_half_std():
    from statistics import NormalDist

    sigmas = [NormalDist().inv_cdf(p / 100) for p in PERCENTILES[1:-1]]
    np.testing.assert_allclose(sigmas, [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], atol=2e-3)
    assert (PERCENTILES[0], PERCENTILES[-1]) == (0.0, 100.0)


def test_every_weight_array_is_spread_and_no_bias_nor_batch_norm_parameter():
    network = ConvNet(layers=[{"type": "convolution", "filter_num": 4, "filter_size": 3, "pad": 1},
                              {"type": "batch_norm"}, {"type": "relu"}, {"type": "pooling", "pool_size": 2},
                              {"type": "affine", "output_size": 6}, {"type": "relu"}], rng=3)
    found = weight_percentiles(network)
    assert list(found) == ["W1", "W2", "W3"]  # the convolution's, the hidden affine layer's, the output layer's
    assert network.params["W1"].ndim == 4 and network.params["W2"].ndim == 2
    for key, values in found.items():
        assert values == list(np.percentile(network.params[key], PERCENTILES))
        assert values[0] == network.params[key].min() and values[-1] == network.params[key].max()


def test_an_array_with_a_weight_not_finite_has_no_spread():
    network = MultiLayerNet(6, [5], 3, rng=0)
    network.params["W2"][0, 0] = np.inf
    found = weight_percentiles(network)
    assert found["W2"] is None and found["W1"] == list(np.percentile(network.params["W1"], PERCENTILES))


@pytest.mark.parametrize("background", [False, True])
def test_each_evaluation_records_the_spread_of_the_weights_it_evaluated(background, monkeypatch):
    submitted = {}  # the weights as each evaluation was asked for, by iteration
    submit = Evaluator.submit

    def noting(self, network, iteration, test=True):
        submitted[iteration] = {key: network.params[key].copy() for key in network.decayed_keys}
        return submit(self, network, iteration, test)

    monkeypatch.setattr(Evaluator, "submit", noting)
    config = TrainConfig(iters=30, batch_size=7, hidden_sizes=(5, 4), lr=0.5, eval_every=10)
    trainer = Trainer.from_config(config, input_size=6, output_size=3, background=background)
    history = trainer.fit(*blobs(60, seed=0), *blobs(30, seed=1))
    assert history.iteration == [0, 10, 20, 30] and sorted(submitted) == history.iteration
    for iteration, spread in zip(history.iteration, history.weight_percentiles):
        assert list(spread) == ["W1", "W2", "W3"]
        for key, values in spread.items():
            assert values == list(np.percentile(submitted[iteration][key], PERCENTILES)), (iteration, key)
    assert history.weight_percentiles[0] != history.weight_percentiles[-1]  # training moved the weights
