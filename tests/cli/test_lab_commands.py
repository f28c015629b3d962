"""`sgdlab train --live` and `sgdlab view` from the command line: their options, their errors, the address
they print, and the warning when asked to listen beyond this machine."""

import contextlib
import json
import re
import signal
import socket
import urllib.request

import pytest

from tests.cli.commands import run
from tests.processes import lab_page, press_ctrl_c


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    from sgdlab.runs.run import train_run
    from sgdlab.training.config import TrainConfig

    run_dir, _ = train_run(TrainConfig(iters=30, hidden_size=10), out=tmp_path_factory.mktemp("view") / "run",
                           data_dir=data_dir, plot=False)
    return run_dir


def test_view_serves_run_folders_at_a_tokened_loopback_address_until_ctrl_c(finished_run):
    with lab_page("view", finished_run, "--no-browser") as (process, address):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}", address)
        origin, token = address.split("/?token=")
        request = urllib.request.Request(f"{origin}/api/runs", headers={"X-Sgdlab-Token": token})
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())
        assert [(run["name"], run["status"]) for run in runs] == [("run", "finished")]
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"{origin}/api/runs", timeout=10)
        code, _, err = press_ctrl_c(process)
    assert (code, err) == (0, "")  # one Ctrl-C ends the page, not in error


def test_a_second_ctrl_c_while_the_page_closes_changes_nothing(finished_run):
    """A user presses twice: the second press, once the page has stopped listening, must not end the command by
    the signal (exit -2) nor as interrupted (130): the page ended as the first press asked."""
    with lab_page("view", finished_run, "--no-browser") as (process, address):
        port = int(address.split(":")[2].split("/")[0])
        process.send_signal(signal.SIGINT)
        while process.poll() is None:  # until the page no longer answers: it is closing
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        code = process.returncode
    assert (code, err) == (0, "")


def test_listening_beyond_the_loopback_address_asked_for_is_warned_of(finished_run):
    with lab_page("view", finished_run, "--no-browser", "--host", "127.0.0.2") as (process, address):  # not 127.0.0.1
        code, _, err = press_ctrl_c(process)
    assert address.startswith("http://127.0.0.2:")
    assert err.startswith("sgdlab: warning: the lab page listens on 127.0.0.2, beyond this machine")


def test_a_port_in_use_and_bad_ports_are_named(capsys, finished_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(capsys, "view", finished_run, "--no-browser", "--port", port)
    assert (code, out) == (1, "")
    assert err == (f"sgdlab view: error: cannot listen on 127.0.0.1:{port} (Address already in use): give another "
                   "--port, or leave it out for a free one\n")
    code, _, err = run(capsys, "train", "--live", "--port", "70000")
    assert code == 2 and "argument --port: must be a port number from 0 to 65535, got '70000'" in err


def test_view_names_folders_that_hold_no_runs(capsys, tmp_path):
    code, out, err = run(capsys, "view", tmp_path / "nothing", "--no-browser")
    assert (code, out) == (1, "")
    assert err == (f"sgdlab view: error: {tmp_path / 'nothing'}: no such run folder; give run folders written by "
                   "'sgdlab train'\n")


def test_a_run_resumed_with_live_is_watched_to_its_end(data_dir, tmp_path):
    from sgdlab.runs.run import train_run
    from sgdlab.training.config import TrainConfig

    train_run(TrainConfig(iters=40, hidden_size=10), out=tmp_path / "run", data_dir=data_dir)
    (tmp_path / "run" / "history.json").unlink()  # as if killed before saving: it starts again
    with lab_page("train", "--resume", tmp_path / "run", "--live", "--no-browser") as (process, _):
        said = []
        while line := process.stdout.readline():  # Ctrl-C once the run is saved and the page stays up for looking
            said.append(line)
            if "the lab page stays up" in line:
                break
        code, out, err = press_ctrl_c(process)
    assert (code, err, out) == (0, "", "")  # nothing more said once the page ends
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["loss"]) == 40
    assert sum("results saved" in line for line in said) == 1  # said once, before the page stays up


def test_one_ctrl_c_while_a_live_run_trains_stops_it_saves_it_and_ends_the_page(data_dir, tmp_path):
    with lab_page("train", "--live", "--no-browser", "--data-dir", data_dir, "--out", tmp_path / "run", "--iters",
                  "1000000", "--hidden-size", "5", "--no-plot") as (process, _):
        while line := process.stdout.readline():
            if line.startswith("epoch"):  # training, its first evaluation made
                break
        code, out, err = press_ctrl_c(process)
    assert code == 130 and "Traceback" not in err and "the lab page stays up" not in out
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["stopped"].startswith("interrupted by SIGINT after iteration")
    assert err.endswith(f"sgdlab train: {history['stopped']}; results so far saved in {tmp_path / 'run'}\n")


def test_view_demo_shows_the_shipped_deep_convnet_reading_a_digit(data_dir):
    import io

    from PIL import Image

    from sgdlab import load_mnist
    from sgdlab.runs.shipped_model import shipped_model_path

    (_, _), (x_test, t_test) = load_mnist(normalize=False, flatten=False, data_dir=data_dir)
    png = io.BytesIO()
    Image.fromarray(x_test[0, 0]).save(png, format="PNG")
    with lab_page("view", "--demo", "--no-browser", "--data-dir", data_dir) as (process, address):
        origin, token = address.split("/?token=")
        headers = {"X-Sgdlab-Token": token}
        with urllib.request.urlopen(urllib.request.Request(f"{origin}/api/runs", headers=headers), timeout=30) as reply:
            (demo,) = json.loads(reply.read())
        upload = urllib.request.Request(f"{origin}/api/runs/{demo['id']}/predict", data=png.getvalue(),
                                        headers={**headers, "Content-Type": "image/png", "X-Sgdlab-Filename": "7.png"})
        with urllib.request.urlopen(upload, timeout=60) as reply:
            read = json.loads(reply.read())
        code, _, err = press_ctrl_c(process)
    assert demo["name"] == "deep_convnet.npz" and code == 0
    assert err == f"sgdlab view: showing the DeepConvNet shipped with sgdlab, {shipped_model_path()}\n"
    assert read["prediction"] == t_test[0] == 7
    # every convolution's feature maps for the digit: after its activation, and after the pooling of each block
    assert sorted({maps["convolution"] for maps in read["feature_maps"]}) == [1, 2, 3, 4, 5, 6]
