"""`sgdlab train --live` and `sgdlab view` from the command line: their options, their errors, the address
they print, and the warning when asked to listen beyond this machine."""

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.cli.commands import run


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    from sgdlab.runs.run import train_run
    from sgdlab.training.config import TrainConfig

    run_dir, _ = train_run(TrainConfig(iters=30, hidden_size=10), out=tmp_path_factory.mktemp("view") / "run",
                           data_dir=data_dir, plot=False)
    return run_dir


def start(*argv):
    """`sgdlab ARGV` in a child process, once it has printed the page's address: (process, address)."""
    process = subprocess.Popen([sys.executable, "-m", "sgdlab", *map(str, argv)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    while line := process.stdout.readline():
        if match := re.match(r"lab page: (http://\S+)$", line.strip()):
            return process, match[1]
    raise AssertionError(f"no address printed: {process.stderr.read()}")


def end(process):
    """Ctrl-C until it ends (one pressed while a run saves is held, as it should be, and the page stays up)."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
    out, err = process.communicate(timeout=10)
    return process.returncode, out, err


def test_view_serves_run_folders_at_a_tokened_loopback_address_until_ctrl_c(finished_run):
    process, address = start("view", finished_run, "--no-browser")
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}", address)
        origin, token = address.split("/?token=")
        request = urllib.request.Request(f"{origin}/api/runs", headers={"X-Sgdlab-Token": token})
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.loads(response.read())
        assert [(run["name"], run["status"]) for run in runs] == [("run", "finished")]
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"{origin}/api/runs", timeout=10)
    finally:
        code, _, err = end(process)
    assert (code, err) == (0, "")  # Ctrl-C ends the page, not in error


def test_listening_beyond_the_loopback_address_asked_for_is_warned_of(finished_run):
    process, address = start("view", finished_run, "--no-browser", "--host", "127.0.0.2")  # not 127.0.0.1
    code, _, err = end(process)
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
    code = subprocess.run([sys.executable, "-m", "sgdlab", "train", "--data-dir", str(data_dir), "--out",
                           str(tmp_path / "run"), "--iters", "40", "--hidden-size", "10", "--quiet"],
                          timeout=120).returncode
    assert code == 0
    (tmp_path / "run" / "history.json").unlink()  # as if killed before saving: it starts again
    process, _ = start("train", "--resume", tmp_path / "run", "--live", "--no-browser")
    while line := process.stdout.readline():  # Ctrl-C once the run is saved and the page stays up for looking
        if "the lab page stays up" in line:
            break
    code, _, err = end(process)
    assert (code, err) == (0, "")
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["loss"]) == 40
