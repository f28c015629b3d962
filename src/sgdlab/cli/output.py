"""What the commands print: exit codes, durations and the line per evaluation, and how printing survives a
reader that went away."""

import contextlib
import errno
import os
import sys

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def say(args, message):
    """Print `message` unless the command was given --quiet."""
    if not getattr(args, "quiet", False):
        print(message, flush=True)


def evaluation_line(history):
    mean_loss = history.mean_loss_since_last_evaluation()
    if mean_loss is None:
        loss = "   -  "
    else:  # a diverging run's loss can be huge before it turns infinite: keep the column's width
        loss = f"{mean_loss:.4f}" if mean_loss < 1000 else f"{mean_loss:.0e}"
    validation = f" | val acc {history.val_acc[-1]:.4f}" if history.val_acc else ""
    test = "   -  " if history.test_acc[-1] is None else f"{history.test_acc[-1]:.4f}"  # left for the end
    rate = f" | lr {history.lr[-1]:.3g}" if len(set(history.lr)) > 1 else ""  # once a schedule or a change moved it
    return (f"epoch {history.epoch[-1]:6.2f} | iteration {history.iteration[-1]:6d} | "
            f"train acc {history.train_acc[-1]:.4f}{validation} | test acc {test} | "
            f"loss {loss} | {history.seconds[-1]:7.1f} s{rate}")


def duration(seconds):
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ReaderSafeStream:
    """A text stream that goes quiet, instead of raising, once its reader has gone: `sgdlab train | head -1`
    trains and saves to the end, `sgdlab predict ... | head -1` ends without an error."""

    def __init__(self, stream):
        self._stream = stream
        self._gone = False

    def write(self, text):
        if not self._gone:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._reader_gone(exc)
        return len(text)

    def flush(self):
        if not self._gone:
            try:
                self._stream.flush()
            except OSError as exc:
                self._reader_gone(exc)

    def _reader_gone(self, exc):
        if exc.errno not in (errno.EPIPE, errno.EIO):  # a broken pipe, a terminal that hung up; else a real error
            raise exc
        self._gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError):  # so that the interpreter's last flush
            devnull = os.open(os.devnull, os.O_WRONLY)                  # does not fail on the pipe either
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def reader_safe_output():
    """Within: stdout and stderr are `ReaderSafeStream`s."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = ReaderSafeStream(sys.stdout), ReaderSafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
