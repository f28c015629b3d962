"""The lab page in a notebook: a run trained in a cell, followed by the page shown inline beside it.

`LiveLab` is `sgdlab train --live` for Jupyter: the same `LiveRun` observer,
`LiveLabRun` and `LabServer` (on 127.0.0.1, a free port, a fresh random
token), with the page shown as an IFrame instead of opened in a browser
(outside a notebook, its address is printed)::

    from sgdlab import LiveLab, TrainConfig

    lab = LiveLab()
    lab                                   # a cell ending in it shows the page inline
    run_dir, history = lab.train(TrainConfig(iters=2000))   # the page follows the run

The page's controls work as on the command line (pause, one step, stop, a new
learning rate), and watching changes nothing of the run: its history and
weights are those of the same `train_run` unwatched, bit for bit. One
`LiveLab` trains one run; the page stays up, to look around and draw digits,
until `lab.close()` (or the kernel ends).

Below the frame, a link opens the page in a tab of its own.
"""

import html

from ..errors import SgdlabError, TrainingDiverged
from ..runs.run import train_run
from ..training.config import TrainConfig
from .catalog import Lab, LiveLabRun, MnistOnce
from .feed import RunFeed
from .live import LiveRun
from .serving import LabServer

RUN_ID = "live"
FRAME_HEIGHT = 760  # pixels: the status line, the controls and the two charts without scrolling


class LiveLab:
    """A lab page serving the run this notebook trains (see the module's docstring for an example).

    `data_dir`: where MNIST is (default: as `load_mnist` finds it); `data`:
    what `load_mnist(normalize=False)` returns, when the notebook has it
    already. The server starts at once, so the page can be shown before
    training; `url` is its address, with the token that opens it.
    """

    def __init__(self, data_dir=None, data=None, height=FRAME_HEIGHT):
        self.data_dir, self.height = data_dir, height
        self.data = MnistOnce(data_dir, data)
        self.live = LiveRun(RunFeed("starting", {}, live=True))
        self.server = LabServer(Lab([LiveLabRun(RUN_ID, self.live, self.data)])).start()
        if not _in_a_notebook():  # a script, or a terminal's Python: nothing would show the page
            print(f"lab page: {self.url}", flush=True)

    @property
    def url(self):
        return self.server.url

    def train(self, config=None, **options):
        """Train `config` (a `TrainConfig`; the book's by default) as `sgdlab.train_run` does, into a run folder,
        with the page following; returns `(run_dir, history)`.

        `options` are `train_run`'s (`out`, `overwrite`, `plot`, `background`,
        `checkpoint_every`). A run stopped from the page or by interrupting the
        kernel is saved and returned with `history.stopped` set, as Ctrl-C does.
        """
        if self.live.trainer is not None:
            raise SgdlabError("this LiveLab has trained its run already: make a new LiveLab() for another")
        try:
            run_dir, history = train_run(config if config is not None else TrainConfig(), data_dir=self.data_dir,
                                         data=self.data(), observer=self.live, **options)
        except TrainingDiverged as exc:
            self.live.diverged(exc)
            raise
        self.live.ended(history)
        return run_dir, history

    def iframe(self, width="100%", height=None):
        """The page as an `IPython.display.IFrame` (its address carries the token)."""
        from IPython.display import IFrame

        return IFrame(self.url, width=width, height=height or self.height)

    def _repr_html_(self):
        """What a notebook shows for a cell ending in the lab: the page itself, and a link that opens it in a tab
        of its own (full size; and where the browser refuses to show it framed)."""
        link = f'<a href="{html.escape(self.url)}" target="_blank" rel="noopener">open the lab page in a new tab</a>'
        return f"{self.iframe()._repr_html_()}<p>{link}</p>"

    def close(self):
        """Stop the page's server (a training still running is not stopped: use the page's Stop, or interrupt)."""
        self.server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f"LiveLab({self.url})"


def _in_a_notebook():
    """Whether this runs in a Jupyter kernel, where a cell ending in the lab shows its page."""
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and hasattr(shell, "kernel")
