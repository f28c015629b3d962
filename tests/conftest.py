"""Fixtures shared by several test files."""

import os
import shutil

import pytest

from sgdlab.data.mnist import default_data_dir

CHROMIUM = os.environ.get("SGDLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
UNSEEN_CHROMIUM_FEATURES = "WebUIOmniboxPopup,WebUIOmniboxAimPopup"  # the address bar's popup, which a headless
# window has no use for, made ready in two renderers of its own for every window: about 0.6 s of processor time for
# each page a test opens (opening a blank page takes half that)
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def pytest_addoption(parser, pluginmanager):
    """Without pytest-xdist (`-p no:xdist`, or not installed) pyproject's `-n auto --maxprocesses 4 --dist worksteal`
    are accepted, and the tests run one at a time in pytest's own process, as with `-n 0`."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist")
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None)  # as xdist does: -n is short
        group.addoption("--maxprocesses", default=None)
        group.addoption("--dist", default="no")


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (`-p no:xdist`) there is no such hook
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker more than the cores this process may use (pyproject's `--maxprocesses` bounds it). The
    browser tests spend most of their time waiting for what the page shows next (a redraw paced to its cost, a
    run's next evaluation), the command tests for their child processes: another worker uses those waits.
    `-n logical` and a count in PYTEST_XDIST_AUTO_NUM_WORKERS are left to pytest-xdist."""
    from sgdlab.engine.threads import usable_cores

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or config.option.numprocesses == "logical":
        return None
    return usable_cores() + 1


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config):
    """With pytest-xdist's workers, each worker, and each process a test starts, runs
    BLAS on one thread: a pool of BLAS threads per worker crowds the cores the other workers use, and its threads
    spin waiting for one another (the readable layers' small products took several times as long, in CPU time
    too). A count the user set in any of the variables is kept, and then none is set (OpenBLAS reads its own
    before OpenMP's: setting it beside a user's OMP_NUM_THREADS would override that). The tests of the BLAS
    limits set the counts they need themselves."""
    workers = config.option.numprocesses if config.pluginmanager.has_plugin("xdist") else 0
    user_set = any(os.environ.get(name) for name in BLAS_THREADS)  # an empty one is unset, as BLAS reads it
    if (workers or 0) > 1 and not hasattr(config, "workerinput") and not user_set:  # in the workers' parent
        for name in BLAS_THREADS:
            os.environ[name] = "1"  # read by each worker's BLAS as it loads


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, driven by Playwright (a test that needs it fails in CI where it is missing, and is skipped
    elsewhere)."""
    playwright = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        message = "Chromium not found: install Debian's chromium package (or set SGDLAB_CHROMIUM to its path)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM,
                                         args=[f"--disable-features={UNSEEN_CHROMIUM_FEATURES}"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the real MNIST files: $SGDLAB_DATA, else the download cache; skips without them."""
    folder = default_data_dir()
    if not all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in MNIST_FILES):
        pytest.skip(f"real MNIST not found in {folder}: set SGDLAB_DATA to a folder holding the four MNIST "
                    "files, or run 'sgdlab train' once to download them")
    return folder


@pytest.fixture(scope="session")
def data_dir(mnist_dir, tmp_path_factory):
    """Links to the real MNIST files in a writable folder, where the decoded cache is written once for the run's
    workers."""
    from sgdlab.data import mnist

    from tests.once import made_once

    def link_and_decode(folder):
        names = {spec.name for spec in mnist.FILES} | {spec.gz_name for spec in mnist.FILES}
        for source in mnist_dir.iterdir():
            if source.name in names:
                (folder / source.name).symlink_to(source)
        mnist.load_mnist(normalize=False, data_dir=folder)  # writes the decoded cache

    return made_once(tmp_path_factory, "mnist", link_and_decode)


@pytest.fixture
def restart_dropout_masks():
    """Give every dropout layer of a network a generator in the same state, so that two passes draw the same
    masks: `restart_dropout_masks(network)`."""
    import numpy as np

    def restart(network, seed=5):
        for layer in network.dropout_layers:
            layer.rng = np.random.default_rng(seed)

    return restart


@pytest.fixture
def terminal_signals():
    """Ctrl-C, SIGTERM and SIGHUP act in this process as at a terminal for the test, even when the tests run under
    nohup or in a background job (where they are ignored); see tests/processes.py."""
    from tests.processes import signals_at_their_defaults

    with signals_at_their_defaults():
        yield


@pytest.fixture(scope="session")
def _local_clusters():
    """`client_of(workers)`: a client of a local Dask cluster of `workers` processes, made by sgdlab's own
    `local_cluster` on first use and kept for the session (closed, its processes ended, at its end)."""
    import contextlib

    from sgdlab.runs.trial_cluster import dask_quiet, local_cluster

    clients = {}
    with contextlib.ExitStack() as stack:
        @contextlib.contextmanager
        def client_of(workers):
            if workers not in clients:
                with dask_quiet():
                    clients[workers] = stack.enter_context(local_cluster(workers))
            yield clients[workers]

        yield client_of


@pytest.fixture(scope="module")
def shared_local_clusters(_local_clusters):
    """The sweeps of a module train on the session's local clusters rather than each starting its own: a sweep still
    submits its trials, gives them its data and stops them as on a cluster of its own. (The clusters that sweeps
    start themselves are tested in tests/runs/test_trial_cluster.py and by the command-line sweeps run in child
    processes.)"""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sgdlab.runs.trial_cluster.local_cluster", _local_clusters)
        yield
