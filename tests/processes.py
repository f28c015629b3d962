"""Processes the tests start: with the signal dispositions a command typed at a terminal has, and ended and
reaped however the test ends.

A process inherits the signals its parent ignores: under `nohup` SIGHUP,
in a script's background job SIGINT and SIGQUIT. The tests may run like
that, yet what they check (Ctrl-C stops a run and saves it, SIGHUP stops
it as Ctrl-C does) is what a user at a terminal gets; so the children
start with every such signal at its default. Nor do they inherit
PYTHONUNBUFFERED: what they print reaches the test when sgdlab flushes it,
as it reaches a user's pipe.
"""

import contextlib
import os
import signal
import subprocess
import sys

TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)
PRESS_TIMEOUT = 120  # seconds a process may take to end after one Ctrl-C, on a loaded machine


def as_at_a_terminal():
    """A `preexec_fn`: the child takes Ctrl-C, SIGQUIT, SIGTERM and SIGHUP as a command typed at a terminal."""
    for signum in TERMINAL_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def sgdlab_command(*argv):
    return [sys.executable, "-m", "sgdlab", *map(str, argv)]


@contextlib.contextmanager
def started(command, also=None, **popen):
    """`command` running as a child (the `Popen` is yielded), `also()` called in it before it starts, if given;
    on the way out, whatever happened, it is killed if it still runs (with its process group, when
    `start_new_session` made it lead one) and reaped."""
    def prepare():
        as_at_a_terminal()
        if also is not None:
            also()

    popen.setdefault("env", {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"})
    process = subprocess.Popen(command, preexec_fn=prepare, **popen)
    try:
        yield process
    finally:
        end_for_good(process, group=popen.get("start_new_session", False))
        with process:  # its pipes closed
            pass


def end_for_good(process, group=False):
    if group:  # the group's other processes (Dask's workers) may outlive its leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait()


def press_ctrl_c(process, timeout=PRESS_TIMEOUT, group=False):
    """Ctrl-C, pressed once (to the process group when `group`), and what the process said until it ended:
    (exit code, stdout, stderr)."""
    if group:
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches every process of its foreground group
    else:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def ctrl_c_where_python_drops_exceptions():
    """Ctrl-C, delivered to this process while a weakref's callback runs (Dask's client and the garbage collector run
    many): Python reports what a handler raises there ("Exception ignored in") and goes on without it."""
    import weakref

    class Doomed:
        pass

    doomed = Doomed()
    callback = weakref.ref(doomed, lambda _: signal.raise_signal(signal.SIGINT))
    del doomed  # the callback runs here, and the signal's handler inside it
    assert callback() is None


@contextlib.contextmanager
def signals_at_their_defaults():
    """Within, in this process: Ctrl-C raises KeyboardInterrupt and SIGTERM, SIGHUP and SIGQUIT have their default
    actions, whatever the tests were started with; the dispositions before come back afterwards."""
    before = {signum: signal.getsignal(signum) for signum in TERMINAL_SIGNALS}
    for signum in TERMINAL_SIGNALS:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def lab_page(*argv):
    """`sgdlab ARGV` (view, or train --live) in a child process, once it has printed the lab page's address:
    yields (the process, the address); ended as `started` ends it."""
    import re

    with started(sgdlab_command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        while line := process.stdout.readline():
            if match := re.match(r"lab page: (http://\S+)$", line.strip()):
                yield process, match[1]
                return
        raise AssertionError(f"no address printed: {process.stderr.read()}")
