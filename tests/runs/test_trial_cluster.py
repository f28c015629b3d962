"""The local Dask cluster a sweep trains on: only its own client may run code there, whatever else runs on the
machine; a real cluster of the sweep's own making, on 127.0.0.1, closed at the end of each test."""

import json
import subprocess
import sys

import pytest

from sgdlab.runs.trial_cluster import trial_cluster

# Another process of the machine, trying to run code on the cluster's scheduler, workers and nannies: through a
# client without credentials, over plain TCP, with credentials of its own, and by a worker's "run" handler
# directly. It prints how each attempt ended; code that runs writes the marker file.
INTRUDER = """
import asyncio, gc, json, sys
from pathlib import Path
from distributed import Client
from distributed.core import rpc
from distributed.protocol.pickle import dumps
from distributed.security import Security

scheduler, marker, servers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


def plant():
    Path(marker).write_text("ran")


async def run_directly(address, security):
    async with rpc(address, connection_args=security.get_connection_args("client"), timeout=5) as server:
        return await server.run(function=dumps(plant))


attempts = {}
for name, address, security in (("client without credentials", scheduler, None),
                                ("client over tcp", scheduler.replace("tls://", "tcp://"), None),
                                ("client with other credentials", scheduler, Security.temporary())):
    try:
        with Client(address, security=security, timeout="5s") as client:
            client.run(plant)
            client.run_on_scheduler(plant)
        attempts[name] = "ran"
    except Exception as exc:
        attempts[name] = type(exc).__name__
    # A Client that failed half-made is closed when collected: left to the collector, that may come during the next
    # attempt and hold it up until its timeout (untried). Collected now, each attempt reaches the cluster.
    gc.collect()
for address in servers:
    for name, security in (("without credentials", Security()), ("with other credentials", Security.temporary())):
        try:
            asyncio.run(run_directly(address, security))
            attempts[f"{address} {name}"] = "ran"
        except Exception as exc:
            attempts[f"{address} {name}"] = type(exc).__name__
print(json.dumps(attempts))
"""


def test_only_the_sweeps_own_client_can_run_code_on_its_local_cluster(tmp_path):
    marker = tmp_path / "intruder-ran"
    with trial_cluster(workers=1) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        workers = client.scheduler_info()["workers"]
        servers = [*workers, *(info["nanny"] for info in workers.values() if info.get("nanny"))]
        assert len(servers) == 2 and all(server.startswith("tls://127.0.0.1:") for server in servers)
        intruder = subprocess.run([sys.executable, "-c", INTRUDER, address, str(marker), json.dumps(servers)],
                                  capture_output=True, text=True, timeout=300)
        assert intruder.returncode == 0, intruder.stderr
        attempts = json.loads(intruder.stdout.splitlines()[-1])
        assert len(attempts) == 3 + 2 * len(servers)
        assert "ran" not in attempts.values() and not marker.exists(), attempts
        # The cluster's own client, holding the credentials, runs code there: the refusals above are not chance.
        assert client.run(lambda: "ran") == {server: "ran" for server in workers}


def test_a_scheduler_is_knocked_on_at_the_address_dask_would_use():
    import socket

    from sgdlab.runs.trial_cluster import _knock

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for address in (f"tcp://127.0.0.1:{port}", f"127.0.0.1:{port}", f"localhost:{port}"):
            _knock(address)  # something listens: no error, however `dask scheduler`'s address is written
    with pytest.raises(OSError):
        _knock(f"127.0.0.1:{port}")  # the listener closed: nothing there any more


def test_a_trial_that_stopped_early_is_scored_by_the_weights_it_kept():
    from sgdlab.runs.trial_cluster import trial_outcome
    from sgdlab.training.history import History

    history = History(10, loss=[1.0] * 30)
    for iteration, val_acc in ((0, 0.5), (10, 0.8), (20, 0.7), (30, 0.75)):
        history.record_evaluation(iteration, val_acc + 0.1, val_acc - 0.1, iteration / 10, val_acc)
    assert trial_outcome(3, history, "w")["val_acc"] == 0.75  # the last evaluation's, without early stopping
    history.best_iteration = 10
    assert trial_outcome(3, history, "w") == {"trial": 3, "status": "finished", "val_acc": 0.8, "train_acc": 0.9,
                                              "test_acc": 0.8 - 0.1, "seconds": 3.0, "worker": "w"}
