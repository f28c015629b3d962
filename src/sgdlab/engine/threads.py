"""The cores and BLAS threads the fast paths run on."""

import os

from threadpoolctl import threadpool_limits


def usable_cores():
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def one_blas_thread():
    """A context in which BLAS uses one thread.

    Batch-100 products gain little from more, and results then depend
    neither on the core count nor on what runs on the second core.
    """
    return threadpool_limits(limits=1, user_api="blas")
