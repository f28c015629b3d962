"""Trials trained on Dask workers: a local cluster of one process per core, or any running cluster, one code path.

Each trial is one task, `run_trial`, training one run folder exactly as
`sgdlab train` would (one BLAS thread; the background thread that
evaluates beside training only where a worker has a second core to
itself), so its results do not depend on which worker trains it. The training
data reaches every worker once, in a worker plugin (`TrainingData`), and is
shared by all the trials there: the scheduler gives it to each worker that
joins, so a worker that replaces a lost one (the nanny's restart of the only
worker, say) has it too, where data scattered to the workers would die with
the last one holding it. A worker that dies takes its trial's progress since
the trial's last checkpoint with it, no more: Dask gives the task to another
worker, which continues the run folder from that checkpoint (the folders must
therefore be on a file system every worker sees, as they are on one machine).
Asked to stop (Ctrl-C), the running trials stop after their iteration and are
saved as interrupted, ready to resume; the others do not start.

The local cluster speaks TLS with credentials made for it alone
(`Security.temporary()`), held by this process and given to its workers: no
other process of the machine can connect to it and run code there. Dask's
own log messages and warnings are kept off the terminal, in this process and
in the local workers: sgdlab says in one line what went wrong.
"""

import contextlib
import logging
import signal
import socket
import threading
import time
import uuid
import warnings
from pathlib import Path

from ..engine.threads import one_blas_thread
from ..errors import SgdlabError, TrainingDiverged
from .run import RunObserver, finished_history, resume_run, train_run

STOP_POLL_SECONDS = 0.25  # how often a running trial asks whether the sweep is being stopped
STOP_WAIT_SECONDS = 120  # how long a stopping sweep waits for its running trials to save
CONNECT_SECONDS = 10  # how long a sweep tries to reach a --scheduler
SILENT = logging.CRITICAL + 1  # the level of Dask's log handlers while a sweep runs: above every message


@contextlib.contextmanager
def trial_cluster(workers=1, scheduler=None):
    """A Dask client: on the cluster whose scheduler is at `scheduler` (`tcp://HOST:PORT`), else on a new local
    cluster of `workers` processes, one thread each, listening on 127.0.0.1 only and speaking TLS with
    credentials of its own. Dask says nothing on the terminal meanwhile."""
    with dask_quiet():
        if scheduler is not None:
            with connect(scheduler) as client:
                yield client
        else:
            with local_cluster(workers) as client:
                yield client


@contextlib.contextmanager
def dask_quiet():
    """Dask's log messages and warnings kept from the terminal (in this process; `local_cluster` silences its
    workers): a lost worker, a trial's error or a port taken are sgdlab's to report, in its own words."""
    from distributed.utils import silence_logging_cmgr

    with silence_logging_cmgr(SILENT), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"distributed(\.|$)")
        yield


@contextlib.contextmanager
def local_cluster(workers):
    """A client of a new cluster of `workers` processes on this machine (see `trial_cluster`)."""
    import dask
    from distributed import Client, LocalCluster
    from distributed.security import Security

    # The workers ignore Ctrl-C: it reaches this process (and, from a terminal, every process of the group),
    # and this one stops the trials so that they save. (Only the main thread may change signal handlers.)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:
        with dask.config.set(worker_config()):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   protocol="tls", security=Security.temporary(), dashboard_address=None,
                                   silence_logs=SILENT)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    with cluster, Client(cluster) as client:  # the cluster's credentials
        yield client


def connect(scheduler):
    """A Dask client of the cluster whose scheduler is at `scheduler`, or an SgdlabError saying how to start one."""
    from distributed import Client
    from distributed.security import Security

    # Checked before a Client is made: one that fails half-made is closed by the garbage collector later, at any
    # moment, and that can deadlock the next cluster's start in this process.
    if scheduler.startswith("tls://") and Security().get_connection_args("client")["ssl_context"] is None:
        raise SgdlabError(f"cannot reach the Dask scheduler at {scheduler} (no TLS credentials are configured): "
                          "give the cluster's TLS credentials in Dask's configuration (distributed.comm.tls.ca-file, "
                          "distributed.comm.tls.client.cert and .key)")
    try:
        _knock(scheduler)  # where nothing listens, refused at once: Dask's client would try again until its timeout
        return Client(scheduler, timeout=f"{CONNECT_SECONDS}s")
    except (OSError, ValueError) as exc:
        raise SgdlabError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start one with "
                          "'dask scheduler' and its workers with 'dask worker ADDRESS', or leave out "
                          "--scheduler to use this machine's cores") from None


def _knock(scheduler):
    """Connect to the scheduler's port and leave: an OSError if nothing listens there. The address is read as
    Dask reads it (`HOST:PORT` is tcp, the port defaults to the scheduler's 8786)."""
    from distributed.comm.addressing import parse_address, parse_host_port

    _, location = parse_address(scheduler)
    socket.create_connection(parse_host_port(location, default_port=8786), timeout=CONNECT_SECONDS).close()


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


def training_data_plugin(data):
    """A worker plugin holding `data` (what `load_mnist` returns) for the trials of every worker, named uniquely:
    the scheduler keeps it and hands it to each worker that joins, a lost one's replacement included."""
    from distributed import WorkerPlugin

    class TrainingData(WorkerPlugin):
        def __init__(self, data):
            self.name, self.data = f"sgdlab-data-{uuid.uuid4().hex}", data

    return TrainingData(data)


class TrialSubmitter:
    """Submits trials to `client` with the data they share, and stops them on request; a context whose end
    takes the data off the workers (a cluster may outlive the sweep)."""

    def __init__(self, client, data, background=False):
        from distributed import Event

        self.client, self.background = client, background
        plugin = training_data_plugin(data)
        client.register_plugin(plugin)  # once per worker, not per trial
        self.data_name = plugin.name
        self.stop_event = Event(f"sgdlab-stop-{uuid.uuid4().hex}", client=client)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        with contextlib.suppress(Exception):  # a cluster already gone holds nothing
            self.client.unregister_worker_plugin(self.data_name)

    def submit(self, trial, config, out, data_dir, sweep_file, sweep):
        """A future of `run_trial` for trial number `trial` of `sweep`, training `config` into `out`."""
        return self.client.submit(run_trial, trial, config, Path(out).resolve(), data_dir, self.data_name,
                                  self.stop_event.name, Path(sweep_file).resolve(), self.background,
                                  sweep.checkpoint_every, sweep.charts,
                                  key=f"sgdlab-trial-{trial}-{uuid.uuid4().hex[:8]}", pure=False)

    def stop(self, futures):
        """Ask the running trials to stop and save, and wait for them; those not started return at once, unrun."""
        from distributed import wait

        self.stop_event.set()
        with contextlib.suppress(TimeoutError):
            wait(futures, timeout=STOP_WAIT_SECONDS)


def run_trial(trial, config, out, data_dir, data_name, stop_event_name, sweep_file, background, checkpoint_every,
              charts):
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
    data = worker.plugins[data_name].data
    history = finished_history(out)  # a trial whose worker died after saving it
    if history is None:
        observer = StopWhenAsked(stop_event)
        with one_blas_thread():
            try:
                if (Path(out) / "config.json").exists():  # a worker died training it: from its last checkpoint
                    _, history = resume_run(out, data_dir=data_dir, plot=charts, observer=observer,
                                            background=background, checkpoint_every=checkpoint_every, data=data,
                                            report=charts)
                else:
                    _, history = train_run(config, out=out, data_dir=data_dir, plot=charts, observer=observer,
                                           background=background, data=data, checkpoint_every=checkpoint_every,
                                           report=charts)
            except TrainingDiverged as exc:  # an outcome, not a failure to retry
                history = exc.history
    return trial_outcome(trial, history, str(worker.name))


def trial_outcome(trial, history, worker):
    """What the sweep records of a trial: its status, the accuracies of the weights it kept (its last evaluation's,
    or with early stopping its best one's), its training seconds and the worker."""
    status = "finished" if history.stopped is None else "interrupted" if history.interrupted else "diverged"
    kept = -1 if history.best_iteration is None else history.iteration.index(history.best_iteration)
    accuracies = {key: getattr(history, key)[kept] if getattr(history, key) else None
                  for key in ("val_acc", "train_acc", "test_acc")}
    return {"trial": trial, "status": status, **accuracies, "seconds": history.seconds[-1] if history.seconds else None,
            "worker": worker}


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
