"""The runs a lab page serves from folders: finished, stopped, and in progress in another process (followed
through their checkpoints), and the folders given to `sgdlab view`."""

import shutil

import numpy as np
import pytest

from sgdlab.errors import SgdlabError
from sgdlab.lab.catalog import Lab, folder_runs
from sgdlab.runs.run import train_run
from sgdlab.training.config import TrainConfig
from sgdlab.training.history import History
from sgdlab.training.trainer import Trainer


@pytest.fixture(scope="module")
def stopped_run(data_dir, tmp_path_factory):
    """A run stopped by Ctrl-C after 150 of its 300 iterations: history.json marked stopped, and a checkpoint."""
    folder = tmp_path_factory.mktemp("stopped") / "run"
    fit = Trainer.fit

    def ctrl_c_at_150(self, *args, on_iteration=None, **kwargs):
        def then_stop(iteration, loss):
            if iteration == 150:
                raise KeyboardInterrupt
        return fit(self, *args, on_iteration=then_stop, **kwargs)

    Trainer.fit = ctrl_c_at_150
    try:
        train_run(TrainConfig(iters=300, hidden_size=20, eval_every=100), out=folder, data_dir=data_dir, plot=False)
    finally:
        Trainer.fit = fit
    return folder


def test_a_stopped_run_is_read_from_its_history_and_one_in_progress_from_its_checkpoint(stopped_run, tmp_path):
    in_progress = shutil.copytree(stopped_run, tmp_path / "running")
    for name in ("history.json", "history.csv", "model.npz", "report.html"):
        (in_progress / name).unlink()  # what a run still training shows: config.json and its checkpoint
    stopped, running = folder_runs([stopped_run, in_progress])
    for run in (stopped, running):
        run.refresh()
    assert stopped.feed.status == "stopped" and stopped.feed.message == {  # by its code, for the page's language
        "code": "run.interrupted", "params": {"iteration": 150}, "text": "interrupted after iteration 150"}
    assert running.feed.status == "in progress" and len(running.feed.loss.means) == 150
    assert [row["iteration"] for row in running.feed.evaluations] == [0, 100]  # those made on schedule
    recorded = History.load(stopped_run / "history.json")
    assert [row["train_loss"] for row in stopped.feed.evaluations] == recorded.train_loss
    assert [row["test_loss"] for row in running.feed.evaluations] == recorded.test_loss[:2]
    assert all(loss > 0 for loss in recorded.train_loss + recorded.test_loss)
    assert running.inspection()["iteration"] == 150 and len(running.inspection()["per_digit"]) == 10
    labels = [run["label"] for run in Lab([stopped, running]).summary()]
    assert labels == ["run", "running"]  # the same settings: named by their folders


def test_a_run_whose_files_cannot_be_read_says_why_by_its_code(stopped_run, tmp_path):
    damaged = shutil.copytree(stopped_run, tmp_path / "damaged")
    (damaged / "history.json").write_text('{"loss": [')
    run = folder_runs([damaged])[0]
    run.refresh()
    said = run.feed.message
    assert said["code"] == "run.unreadable" and said["text"] == f"cannot read the run's files: {said['params']['problem']}"
    assert "history.json" in said["params"]["problem"]  # sgdlab's own words for what is wrong, as a value


def test_view_takes_run_folders_and_folders_of_runs_and_names_what_it_cannot_use(stopped_run, tmp_path):
    shutil.copytree(stopped_run, tmp_path / "experiment" / "a")
    shutil.copytree(stopped_run, tmp_path / "experiment" / "b")
    (tmp_path / "experiment" / "summary.json").write_text("{}")
    assert [(run.id, run.feed.name) for run in folder_runs([tmp_path / "experiment"])] == [("0-a", "a"), ("1-b", "b")]
    with pytest.raises(SgdlabError, match="no such run folder"):
        folder_runs([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SgdlabError, match="holds no run folders"):
        folder_runs([tmp_path / "empty"])


def test_a_run_whose_network_does_not_take_mnists_images_shows_no_digits(stopped_run, tmp_path):
    from PIL import Image

    from sgdlab.nn.network import SimpleConvNet
    from sgdlab.runs.model_file import save_model

    folder = shutil.copytree(stopped_run, tmp_path / "run")
    # 784 values per sample, as MNIST's, but four 14x14 channels: evaluate refuses it, and so does the page
    save_model(folder / "model.npz", SimpleConvNet((4, 14, 14), {"filter_num": 2, "filter_size": 3}, 5, rng=0))
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(tmp_path / "digit.png")
    (run,) = folder_runs([folder])
    run.refresh()
    assert run.feed.snapshot.input_shape == (4, 14, 14)
    assert set(run.inspection()) == {"iteration"}  # no filters, mistakes or gradients of a network MNIST cannot feed
    with open(tmp_path / "digit.png", "rb") as image, pytest.raises(SgdlabError, match="has no MNIST network"):
        run.read_digit(image)


def test_a_model_file_alone_is_looked_into_and_reads_digits_without_curves(data_dir, tmp_path):
    import pickle

    from PIL import Image

    from sgdlab.data.digit_images import load_digit_image
    from sgdlab.nn.network import SimpleConvNet
    from sgdlab.runs.book_params import import_book_params

    network = SimpleConvNet(conv_param={"filter_num": 3, "filter_size": 5, "pad": 0, "stride": 1}, hidden_size=8,
                            weight_init_std=0.1, rng=0)
    (tmp_path / "params.pkl").write_bytes(pickle.dumps({key: value for key, value in network.params.items()}))
    import_book_params(tmp_path / "params.pkl", TrainConfig(net="simple-convnet", filter_num=3, hidden_size=8),
                       tmp_path / "book.npz")
    (run,) = folder_runs([tmp_path / "book.npz"], data_dir)
    assert (run.id, run.feed.name, run.feed.status, run.feed.evaluations) == ("0-book.npz", "book.npz", "finished", [])
    assert run.feed.settings == {"net": "simple-convnet", "imported_from": "params.pkl"}
    found = run.inspection()
    assert found["filters"].startswith("data:image/png") and found["weights"] is None
    assert sum(map(sum, found["confusion"])) == 10000 and len(found["per_digit"]) == 10
    image = tmp_path / "digit.png"
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(image)
    read = run.read_digit(image)
    assert len(read["probabilities"]) == 10 and len(read["feature_maps"]) == 2
    pixels = load_digit_image(image).astype(np.float64).reshape(1, 1, 28, 28)
    np.testing.assert_allclose(read["probabilities"], network.predict(pixels)[0], rtol=1e-6)
