"""`sgdlab ARGV` run in-process by the command-line tests."""

import signal

from sgdlab.cli import main

from tests.processes import TERMINAL_SIGNALS


def run(capsys, *argv):
    """`sgdlab ARGV` in-process: (exit code, stdout, stderr), whether main returned or exited; the signal
    dispositions as they were before (a command that ended on Ctrl-C ignores any further one, as it exits)."""
    before = {signum: signal.getsignal(signum) for signum in TERMINAL_SIGNALS}
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as exc:
        code = exc.code
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    out, err = capsys.readouterr()
    return code, out, err
