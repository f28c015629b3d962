"""A run's charts drawn by a child process that starts with training, so matplotlib's import is not waited for.

Importing matplotlib takes about half a second. `sgdlab train` therefore
starts this module as a child process before it trains: the child imports
matplotlib on the second core while the first trains, then waits for the
finished history on its standard input and draws `accuracy.png` and
`loss.png`. It runs at the lowest priority, on cycles training leaves idle
(in the trainer's session: Linux weighs each session's processes as one
group, so a child in a session of its own would get a full share whatever
its priority), and in a process group of its own, so Ctrl-C in the terminal
reaches only the trainer. It exits quietly if its input closes without a
history. When the child cannot do the job, the charts are drawn in this
process instead: they never depend on it. Nor is a child started where this
process has imported matplotlib already (a notebook, the lab page, a worker
past its first run): drawing here then costs no import, and a child would pay
for one again.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

DRAW_TIMEOUT_SECONDS = 60  # far more than two charts take; a child that hangs is given up on


class ChartProcess:
    """The child process; `plot_history(history, run_dir)` hands it the history, `close()` ends it unused."""

    def __init__(self):
        own_group = {"process_group": 0} if os.name == "posix" else {}
        self.process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **own_group)

    @classmethod
    def start(cls):
        """A started `ChartProcess`, or None if the system cannot start one or this process has matplotlib loaded
        already (the caller then draws itself)."""
        if matplotlib_loaded():
            return None
        try:
            return cls()
        except OSError as exc:
            logger.debug("no chart process (%s): the charts will be drawn after training", exc)
            return None

    def plot_history(self, history, run_dir):
        """Write accuracy.png and loss.png into `run_dir` (by the child if it can); returns their paths."""
        from .charts import chart_paths, plot_history

        errors = self._finish(json.dumps({"history": history.to_dict(), "run_dir": str(run_dir)}).encode())
        if self.process.returncode == 0:
            return chart_paths(run_dir)
        logger.debug("the chart process failed (%s); drawing here instead", errors)
        return plot_history(history, run_dir)

    def close(self):
        """End the child if it never got a history: it exits once its input closes."""
        if self.process.returncode is None:
            self._finish(b"")

    def _finish(self, job):
        """Send `job` (or nothing), wait for the child to exit and return what it wrote to stderr."""
        try:
            _, errors = self.process.communicate(job, timeout=DRAW_TIMEOUT_SECONDS)
            return errors.decode(errors="replace").strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.process.kill()
            self.process.communicate()
            return str(exc)


def matplotlib_loaded():
    """Whether this process has imported what the charts are drawn with (see `charts.figure_class`)."""
    return "matplotlib.figure" in sys.modules


def main():
    from ..training.history import History
    from .charts import figure_class, plot_history

    if hasattr(os, "nice"):
        os.nice(19)  # the lowest priority: importing matplotlib must not take a core from training
    figure_class()  # matplotlib imported while the run trains
    job = sys.stdin.buffer.read()
    if not job:  # the trainer stopped without a history to draw
        return 0
    job = json.loads(job)
    plot_history(History.from_dict(job["history"]), Path(job["run_dir"]))
    return 0


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    os._exit(status)  # the trainer waits for this exit: skip the interpreter's teardown (0.1-0.2 s with matplotlib)
