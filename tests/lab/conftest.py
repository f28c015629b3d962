"""A convolutional net's finished run, for the lab's tests of what the page shows of one."""

import pytest


@pytest.fixture(scope="session")
def conv_run(data_dir, tmp_path_factory):
    """The folder of a finished run of a small SimpleConvNet (8 filters of 5x5, 20 hidden units; 200 iterations of
    the chapter-7 run's Adam on the first 2000 training images, evaluated every 100) with its report.html, trained
    once for the run's workers. (The first 2000 images, not all 60000: each evaluation then measures 2000 training
    images, which is all the page needs to show, rather than 60000 through the convolution.)"""
    from sgdlab.runs.run import train_run
    from sgdlab.training.config import TrainConfig

    from tests.once import made_once

    config = TrainConfig(net="simple-convnet", filter_num=8, hidden_size=20, iters=200, train_size=2000,
                         eval_every=100)
    folder = made_once(tmp_path_factory, "conv",
                       lambda folder: train_run(config, out=folder / "conv-run", data_dir=data_dir, plot=False))
    return folder / "conv-run"
