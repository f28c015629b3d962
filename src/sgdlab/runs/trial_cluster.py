"""Trials trained on Dask workers: a local cluster of one process per core, or any running cluster, one code path.

Each trial is one task, `run_trial`, training one run folder exactly as
`sgdlab train` would (one BLAS thread; the background thread that
evaluates beside training only where a worker has a second core to
itself), so its results do not depend on which worker trains it. The training
data is scattered to every worker once and shared by all the trials there.
A worker that dies takes its trial's progress since the trial's last
checkpoint with it, no more: Dask gives the task to another worker, which
continues the run folder from that checkpoint (the folders must therefore be
on a file system every worker sees, as they are on one machine). Asked to
stop (Ctrl-C), the running trials stop after their iteration and are saved
as interrupted, ready to resume; the others do not start.
"""

import contextlib
import logging
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

from ..engine.threads import one_blas_thread
from ..errors import SgdlabError, TrainingDiverged
from .run import RunObserver, finished_history, resume_run, train_run

STOP_POLL_SECONDS = 0.25  # how often a running trial asks whether the sweep is being stopped
STOP_WAIT_SECONDS = 120  # how long a stopping sweep waits for its running trials to save
CONNECT_SECONDS = 10  # how long a sweep tries to reach a --scheduler


@contextlib.contextmanager
def trial_cluster(workers=1, scheduler=None):
    """A Dask client: on the cluster whose scheduler is at `scheduler` (`tcp://HOST:PORT`), else on a new local
    cluster of `workers` processes, one thread each, listening on 127.0.0.1 only."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with connect(scheduler) as client:
            yield client
        return
    # The workers ignore Ctrl-C: it reaches this process (and, from a terminal, every process of the group),
    # and this one stops the trials so that they save. (Only the main thread may change signal handlers.)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:
        with dask.config.set(worker_config()):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    with cluster, Client(cluster) as client:
        yield client


def connect(scheduler):
    """A Dask client of the cluster whose scheduler is at `scheduler`, or an SgdlabError saying how to start one."""
    from distributed import Client

    try:
        _knock(scheduler)  # where nothing listens, refused at once: Dask's client would try again until its timeout
        return Client(scheduler, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, ValueError) as exc:
        raise SgdlabError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start one with "
                          "'dask scheduler' and its workers with 'dask worker ADDRESS', or leave out "
                          "--scheduler to use this machine's cores") from None


def _knock(scheduler):
    """Connect to the scheduler's port and leave: an OSError if nothing listens there."""
    from urllib.parse import urlsplit

    address = urlsplit(scheduler)
    socket.create_connection((address.hostname, address.port), timeout=CONNECT_SECONDS).close()


def worker_config():
    """Dask settings under which a worker trains as fast as `sgdlab train`: glibc's own memory trimming (Dask's
    fixed 64 KiB threshold turns off its adaptive mmap threshold, and every large temporary array then costs page
    faults: a quarter slower), and no sampling profiler, frequent monitors (for a dashboard there is none of) or
    20 ms event-loop tick taking the GIL from training."""
    import dask

    environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    return {"distributed.nanny.pre-spawn-environ": {name: value for name, value in environ.items()
                                                    if name != "MALLOC_TRIM_THRESHOLD_"},
            "distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "5s",
            "distributed.worker.memory.monitor-interval": "5s", "distributed.admin.tick.interval": "1s"}


class TrialSubmitter:
    """Submits trials to `client` with the data they share, and stops them on request."""

    def __init__(self, client, data, background=False):
        from distributed import Event

        self.client, self.background = client, background
        self.data = client.scatter(data, broadcast=True, hash=False)  # once per worker, not per trial
        self.stop_event = Event(f"sgdlab-stop-{uuid.uuid4().hex}", client=client)

    def submit(self, trial, config, out, data_dir, sweep_file):
        """A future of `run_trial` for trial number `trial`, training `config` into `out`."""
        return self.client.submit(run_trial, trial, config, Path(out).resolve(), data_dir, self.data,
                                  self.stop_event.name, Path(sweep_file).resolve(), self.background,
                                  key=f"sgdlab-trial-{trial}-{uuid.uuid4().hex[:8]}", pure=False)

    def stop(self, futures):
        """Ask the running trials to stop and save, and wait for them; those not started return at once, unrun."""
        from distributed import wait

        self.stop_event.set()
        with contextlib.suppress(TimeoutError):
            wait(futures, timeout=STOP_WAIT_SECONDS)


def run_trial(trial, config, out, data_dir, data, stop_event_name, sweep_file, background):
    """In a worker: train (or continue) one trial's run folder; returns its outcome as `trial_outcome` gives it,
    or None if the sweep was stopped before it started."""
    from distributed import Event, get_worker

    worker = get_worker()
    if not Path(sweep_file).exists():
        raise SgdlabError(f"worker {worker.name} ({worker.address}) cannot see the sweep folder {Path(out).parent}: "
                          "the workers must share the file system the sweep is written to")
    stop_event = Event(stop_event_name)
    if stop_event.is_set():
        return None
    history = finished_history(out)  # a trial whose worker died after saving it
    if history is None:
        observer = StopWhenAsked(stop_event)
        with one_blas_thread():
            try:
                if (Path(out) / "config.json").exists():  # a worker died training it: from its last checkpoint
                    _, history = resume_run(out, data_dir=data_dir, observer=observer, background=background,
                                            data=data)
                else:
                    _, history = train_run(config, out=out, data_dir=data_dir, observer=observer,
                                           background=background, data=data)
            except TrainingDiverged as exc:  # an outcome, not a failure to retry
                history = exc.history
    return trial_outcome(trial, history, str(worker.name))


def trial_outcome(trial, history, worker):
    """What the sweep records of a trial: its status, its last accuracies, its training seconds and the worker."""
    status = "finished" if history.stopped is None else "interrupted" if history.interrupted else "diverged"
    last = {key: getattr(history, key)[-1] if getattr(history, key) else None
            for key in ("val_acc", "train_acc", "test_acc", "seconds")}
    return {"trial": trial, "status": status, **last, "worker": worker}


class StopWhenAsked(RunObserver):
    """Stops the trial after its iteration (as Ctrl-C stops `sgdlab train`) once the sweep's stop event is set,
    asking the scheduler at most every STOP_POLL_SECONDS."""

    def __init__(self, stop_event):
        self.stop_event = stop_event
        self.next_poll = time.monotonic() + STOP_POLL_SECONDS

    def iteration(self, iteration, loss):
        now = time.monotonic()
        if now >= self.next_poll:
            self.next_poll = now + STOP_POLL_SECONDS
            if self.stop_event.is_set():
                raise KeyboardInterrupt
