"""When Ctrl-C (and SIGTERM, SIGHUP) may stop a run: between its iterations, never while it saves.

Ctrl-C raises KeyboardInterrupt wherever the program happens to be. A run
stops cleanly only between two iterations: inside one, the dropout masks
may be drawn and the running statistics moved for an update never made;
after the loop, the last evaluation or the saving would be lost. So a run's
stretch from the start of training to its saved results is wrapped in
`interrupts_deferred()`, which holds any such signal; the training loop
asks `pending()` after each iteration and stops there. The command line
also turns SIGTERM and SIGHUP (a `timeout`, a container stop, a closed
terminal) into KeyboardInterrupt outside those stretches
(`interrupt_on_termination`). A signal the process was started to ignore
(`nohup`, a worker process) stays ignored.

Once the command line has taken a signal as the request to end (the page
closed, the run stopped and saved), it calls `absorb_further_interrupts()`:
a second press while it closes or exits changes neither what it does nor
its exit code (instead of ending it by the signal, half closed).

Signal handlers belong to the main thread: elsewhere these contexts change
nothing.
"""

import contextlib
import signal
import threading

TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_held = None  # the active deferral's held signals (a list), or None


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _handlers(signums, handler):
    """`handler` for each of `signums` that is not ignored, the earlier handlers back afterwards (where no other
    has been set since)."""
    previous = {signum: signal.getsignal(signum) for signum in signums}
    taken = [signum for signum, old in previous.items() if old is not signal.SIG_IGN]
    for signum in taken:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum in taken:
            if signal.getsignal(signum) is handler:  # one set since (`absorb_further_interrupts`) is kept
                signal.signal(signum, previous[signum])


def absorb_further_interrupts():
    """The program is ending as the signal it took asked: from now on Ctrl-C, SIGTERM and SIGHUP are ignored,
    here and once any deferral ends (ignored, not handled: Python puts its handlers back to the default as it
    exits, when a signal would still end it by the signal). For the command line only: a library keeps its
    caller's signals."""
    if not _in_main_thread():
        return
    for signum in (signal.SIGINT, *TERMINATION_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def interrupt_on_termination():
    """Within: SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does."""
    if not _in_main_thread():
        yield
        return
    with _handlers(TERMINATION_SIGNALS, _raise_interrupt):
        yield


def _no_signal():
    return None


@contextlib.contextmanager
def interrupts_deferred():
    """Within: Ctrl-C, SIGTERM and SIGHUP are held. Yields `pending()`, which takes a held signal and returns
    its name (None if there is none). Nested, the outermost one holds for all."""
    global _held
    if not _in_main_thread():
        yield _no_signal
        return
    if _held is not None:
        yield _take
        return
    _held = []
    try:
        with _handlers((signal.SIGINT, *TERMINATION_SIGNALS), lambda signum, frame: _held.append(signum)):
            yield _take
    finally:
        _held = None


def _take():
    if not _held:
        return None
    name = signal.Signals(_held[0]).name
    _held.clear()
    return name
