"""One background thread, or none: how sgdlab overlaps work on a second core.

NumPy releases the GIL in its array loops, so a second thread really runs
beside the training thread. With `background=False` the same work runs in
line, so results never depend on whether there was a second core.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial


class BackgroundWorker:
    """A single worker thread named `sgdlab-<name>`, or none; `close()` it when done, also after stopping early."""

    def __init__(self, name, background):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sgdlab-{name}") if background else None

    def submit(self, function, *args):
        """A `Future` of `function(*args)`: started on the thread, or computed here now."""
        if self.executor is not None:
            return self.executor.submit(function, *args)
        done = Future()
        done.set_result(function(*args))
        return done

    def defer(self, function, *args):
        """A function returning `function(*args)`: started on the thread now, or computed here when called."""
        if self.executor is not None:
            return self.executor.submit(function, *args).result
        return partial(function, *args)

    def close(self):
        """Wait for the thread's current job; drop the ones not started."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
