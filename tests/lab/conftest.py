"""A convolutional net's finished run, for the lab's tests of what the page shows of one."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def conv_run(data_dir, tmp_path_factory):
    """The folder of a finished run of a small SimpleConvNet (8 filters of 5x5, 20 hidden units; 200 iterations of
    Adam, evaluated every 100) with its report.html."""
    from sgdlab.data import load_mnist
    from sgdlab.nn.network import SimpleConvNet
    from sgdlab.runs.run_folder import save_run
    from sgdlab.training.config import TrainConfig
    from sgdlab.training.trainer import Trainer

    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, data_dir=data_dir)
    config = TrainConfig(iters=200, eval_every=100, optimizer="adam", lr=0.001)
    network = SimpleConvNet(conv_param={"filter_num": 8}, hidden_size=20, rng=0, dtype=np.float32)
    history = Trainer(network, config.make_optimizer(), config, background=False).fit(x_train, t_train, x_test, t_test)
    folder = tmp_path_factory.mktemp("conv") / "conv-run"
    return save_run(folder, config, network, history, plot=False, extra_settings={"data_dir": str(data_dir)},
                    test_set=(x_test, t_test))
