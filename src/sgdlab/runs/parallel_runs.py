"""Several independent runs trained at once, one process per core, each exactly as it would train alone.

The variants of an experiment share nothing but the data files, and a
single run keeps one core busy (its products use one BLAS thread), so a
second core trains a second variant. Each worker process trains one run at
a time through `train_run`, with the same seed and settings as alone, so
the results do not depend on the number of workers. With one worker the
runs are trained here, one after another, the second core then doing a
run's evaluations and charts as for `sgdlab train`.

Progress comes back through a queue. Ctrl-C (held while the runs train,
and looked for between two polls of them) asks every running run to stop
after its current iteration, as Ctrl-C stops `sgdlab train`: each is
evaluated, saved and returned as stopped, and the runs not yet started are
skipped.

A worker ends with the process that started it, however that one ends (even
by SIGKILL, which leaves it no time to stop them): a worker left training
would hold its run folder's lock, and no `--resume` could continue it.
"""

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..data import load_mnist
from ..errors import SgdlabError, TrainingDiverged
from ..interrupts import TERMINATION_SIGNALS, interrupts_deferred
from .run import RunObserver, resume_run, train_run

PARENT_GONE = 1  # a worker's exit status when it ends because its parent has
PROGRESS_STEPS = 200  # progress reports per run, at most
POLL_SECONDS = 0.1  # how often the caller relays progress while the workers train


def train_runs(jobs, workers=1, progress=None):
    """Train every job, `{name: (config, out, overwrite, data_dir, resume)}` (`resume`: continue the run in `out`,
    see `resume_run`); returns `({name: history}, interrupted)`.

    `progress(name, done, total)` is called in this process as runs advance.
    A diverged run is returned with its `history.stopped` saying so. After
    Ctrl-C, `interrupted` is True and only the runs that started are returned.
    """
    progress = progress or (lambda name, done, total: None)
    if workers <= 1 or len(jobs) <= 1:
        return _train_here(jobs, progress)
    return _train_in_workers(jobs, min(workers, len(jobs)), progress)


def _train_here(jobs, progress):
    histories, loaded = {}, {}
    with interrupts_deferred() as pending:  # held between the runs too, and taken before the next one
        for name, job in jobs.items():
            if pending() is not None:
                return histories, True
            histories[name] = train_job(name, *job, send=lambda message: progress(*message), background=None,
                                        loaded=loaded)
            if histories[name].interrupted:
                return histories, True
    return histories, False


def _train_in_workers(jobs, workers, progress):
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or BLAS state inherited
    messages, stop = context.Queue(), context.Event()
    histories, interrupted = {}, False
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(messages, stop)) as pool:
        futures = {pool.submit(train_job, name, *job): name for name, job in jobs.items()}
        pending = set(futures)
        try:
            with interrupts_deferred() as asked_to_stop:  # held, not raised where it lands: see sweep._as_completed
                while pending:
                    if asked_to_stop() is not None:
                        raise KeyboardInterrupt
                    done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
                    _relay(messages, progress)
                    for future in done:
                        try:
                            future.result()  # a worker's error is raised here
                        except BrokenProcessPool:
                            raise SgdlabError(f"a worker process died while training {futures[future]} (killed, "
                                              "or out of memory): what finished is saved in its folder") from None
        except BaseException as exc:
            with interrupts_deferred():  # a second Ctrl-C waits, too, for the runs to save
                stop.set()  # the running ones stop after their iteration and save; the others never start
                for future in pending:
                    future.cancel()
                wait(pending)
            if not isinstance(exc, KeyboardInterrupt):
                raise
            interrupted = True
        if not interrupted:
            _relay(messages, progress)
        for future, name in futures.items():
            if future.done() and not future.cancelled() and future.exception() is None and future.result():
                histories[name] = future.result()
    return {name: histories[name] for name in jobs if name in histories}, interrupted


def _relay(messages, progress):
    while True:
        try:
            progress(*messages.get_nowait())
        except queue.Empty:
            return


_worker = {}  # in a worker process: where its progress goes and the caller's request to stop


def _start_worker(messages, stop):
    for signum in (signal.SIGINT, *TERMINATION_SIGNALS):  # they reach the caller, which asks the runs to stop
        signal.signal(signum, signal.SIG_IGN)
    _worker.update(send=messages.put, stop=stop)
    _killed_with_parent()
    threading.Thread(target=exit_with_parent, name="sgdlab-parent-watch", daemon=True).start()


def _killed_with_parent():
    """On Linux, have the kernel kill this process when its parent ends (prctl's PR_SET_PDEATHSIG): at once,
    whatever it is doing. `exit_with_parent` does the same everywhere, a moment later."""
    if not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != multiprocessing.parent_process().pid:  # it ended before it could be asked
        os._exit(PARENT_GONE)


def exit_with_parent():
    """Return never: wait until the parent process has ended, then end this one. The parent holds one end of a
    pipe to each process it starts (multiprocessing's own), which reaches its end when the parent does."""
    multiprocessing.parent_process().join()
    os._exit(PARENT_GONE)


def train_job(name, config, out, overwrite, data_dir, resume, send=None, background=False, loaded=None):
    """Train one job (in a worker: reporting to the caller's queue, without background threads); returns its
    history, also when it diverged, or None if the caller asked to stop before it started. `loaded` keeps
    MNIST by folder for the next jobs (in a worker: the worker's own)."""
    stop = _worker.get("stop")
    if stop is not None and stop.is_set():
        return None
    reporter = JobReporter(name, send or _worker["send"], stop)
    loaded = loaded if loaded is not None else _worker.setdefault("loaded", {})
    key = str(data_dir)
    if key not in loaded:
        loaded[key] = load_mnist(normalize=False, copy=False, data_dir=data_dir)
    try:
        if resume:
            _, history = resume_run(out, data_dir=data_dir, observer=reporter, background=background,
                                    data=loaded[key])
        else:
            _, history = train_run(config, out=out, overwrite=overwrite, data_dir=data_dir, observer=reporter,
                                   background=background, data=loaded[key])
    except TrainingDiverged as exc:  # a finding too (a plain net at a large weight scale): recorded as such
        history = exc.history
    return history


class JobReporter(RunObserver):
    """Sends `(name, done, total)` about PROGRESS_STEPS times per run, and turns the caller's request to stop
    into the KeyboardInterrupt that stops a run after its iteration."""

    def __init__(self, name, send, stop):
        self.name, self.send, self.stop = name, send, stop
        self.total = self.step = None

    def started(self, run_dir, trainer, x_train, t_train):
        self.total = trainer.config.iterations(trainer.config.data_rows(len(x_train))[0])
        self.step = max(1, self.total // PROGRESS_STEPS)
        self.send((self.name, 0, self.total))

    def iteration(self, iteration, loss):
        if self.stop is not None and self.stop.is_set():
            raise KeyboardInterrupt
        if iteration % self.step == 0 or iteration == self.total:
            self.send((self.name, iteration, self.total))
