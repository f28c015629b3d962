"""A convolutional net's finished run, for the lab's tests of what the page shows of one."""

import pytest


@pytest.fixture(scope="session")
def conv_run(data_dir, tmp_path_factory):
    """The folder of a finished run of a small SimpleConvNet (8 filters of 5x5, 20 hidden units; 200 iterations of
    the chapter-7 run's Adam, evaluated every 100) with its report.html."""
    from sgdlab.runs.run import train_run
    from sgdlab.training.config import TrainConfig

    config = TrainConfig(net="simple-convnet", filter_num=8, hidden_size=20, iters=200, eval_every=100)
    folder, _ = train_run(config, out=tmp_path_factory.mktemp("conv") / "conv-run", data_dir=data_dir, plot=False)
    return folder
