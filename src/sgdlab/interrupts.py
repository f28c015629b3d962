"""When Ctrl-C (and SIGTERM, SIGHUP) may stop a run: during its iterations, never while it saves.

Ctrl-C raises KeyboardInterrupt wherever the program happens to be. A run
stops cleanly only if that happens inside its training loop, which then
evaluates and saves what it has; anywhere else (the last evaluation, writing
the results) it would lose the run. So a run's stretch from the start of
training to its saved results is wrapped in `interrupts_deferred()`, which
holds any such signal, and only its loop in `interrupts_allowed()`, where
the signal raises as usual and one held before is raised on entering. The
command line also turns SIGTERM and SIGHUP (a `timeout`, a container stop,
a closed terminal) into the same KeyboardInterrupt (`interrupt_on_termination`).

Signal handlers belong to the main thread: elsewhere these contexts change
nothing.
"""

import contextlib
import signal
import threading

TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_deferral = None  # the active deferral: {"held": [signal numbers], "allowing": bool}


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _handlers(signums, handler):
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def interrupt_on_termination():
    """Within: SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does."""
    if not _in_main_thread():
        yield
        return
    with _handlers(TERMINATION_SIGNALS, _raise_interrupt):
        yield


@contextlib.contextmanager
def interrupts_deferred():
    """Within: Ctrl-C, SIGTERM and SIGHUP are held, except inside `interrupts_allowed()`. Nested, the outermost
    one counts. Yields a function telling whether one was held and not raised."""
    global _deferral
    if not _in_main_thread() or _deferral is not None:
        state = _deferral
        yield lambda: bool(state and state["held"])
        return
    state = _deferral = {"held": [], "allowing": False}

    def hold_or_raise(signum, frame):
        if state["allowing"]:
            _raise_interrupt(signum, frame)
        state["held"].append(signum)

    try:
        with _handlers((signal.SIGINT, *TERMINATION_SIGNALS), hold_or_raise):
            yield lambda: bool(state["held"])
    finally:
        _deferral = None


@contextlib.contextmanager
def interrupts_allowed():
    """Within a deferral: the signals raise KeyboardInterrupt again, one held before at once."""
    state = _deferral
    if state is None or not _in_main_thread():
        yield
        return
    if state["held"]:
        signum = state["held"].pop()
        state["held"].clear()
        raise KeyboardInterrupt(signal.Signals(signum).name)
    state["allowing"] = True
    try:
        yield
    finally:
        state["allowing"] = False
