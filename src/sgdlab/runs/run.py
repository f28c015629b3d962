"""A whole training run: claim the folder, load MNIST, train, save. The command line calls it, and so
can anything else that runs training (a notebook, a page, a sweep), watching it through a `RunObserver`."""

import contextlib

from ..data import default_data_dir, load_mnist
from ..engine.threads import usable_cores
from ..errors import TrainingDiverged
from ..interrupts import interrupts_deferred
from ..plots.chart_process import ChartProcess
from ..plots.charts import plot_history
from ..training.trainer import Trainer
from .run_folder import claim_run_folder, save_run


class RunObserver:
    """What a caller sees of a run; each method does nothing unless overridden."""

    def started(self, run_dir, trainer, x_train, t_train):
        """The folder is claimed and the data loaded (all of it: `trainer.config.data_rows` says how much is used);
        training is about to start."""

    def iteration(self, iteration, loss):
        """An update was made; `loss` is its mini-batch loss."""

    def evaluation(self, history):
        """An evaluation was recorded in `history`."""

    def training_ended(self):
        """Training has ended, one way or another; the results are about to be saved."""


def train_run(config, out=None, overwrite=False, data_dir=None, plot=True, observer=None, background=None):
    """Train `config` on MNIST into a run folder; returns `(run_dir, history)`.

    `out`: the folder (default: a new one under runs/); one holding an earlier
    run is refused unless `overwrite`. A run stopped by Ctrl-C is saved and
    returned with `history.stopped` set; a diverged one is saved without
    charts and raises `TrainingDiverged`, naming the folder. `background`:
    whether a second core evaluates, gathers batches and draws the charts
    beside training (default: when there is one; not when other runs are
    using it).
    """
    background = background if background is not None else usable_cores() > 1
    observer = observer if observer is not None else RunObserver()
    data_settings = {"data_dir": str(data_dir if data_dir is not None else default_data_dir())}
    folder = claim_run_folder(out, overwrite, config, data_settings)  # now, not found unusable after training
    try:
        # uint8 pixels: a quarter of the memory of floats; the trainer scales each batch to 0..1.
        (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, data_dir=data_dir)
        trainer = Trainer.from_config(config, input_size=x_train.shape[1], background=background)
        trainer.check_data(x_train, t_train, x_test, t_test)
        folder.start(config, data_settings)
        observer.started(folder.path, trainer, x_train, t_train)
    except BaseException:  # nothing to save yet
        folder.release()
        raise

    # From here to the saved results, Ctrl-C stops the iterations only (see sgdlab.interrupts).
    with _chart_process(plot and background) as charts, interrupts_deferred():
        try:
            history = _fit(trainer, (x_train, t_train, x_test, t_test), observer)
        except TrainingDiverged as exc:
            save_run(folder.path, config, trainer.network, exc.history, plot=False, extra_settings=data_settings)
            raise TrainingDiverged(f"{exc}; what was recorded is in {folder.path}", exc.history) from None
        save_run(folder.path, config, trainer.network, history, plot=plot, extra_settings=data_settings,
                 draw=charts.plot_history if charts is not None else plot_history)
    return folder.path, history


def _fit(trainer, data, observer):
    try:
        return trainer.fit(*data, on_iteration=observer.iteration, on_evaluation=observer.evaluation)
    finally:
        observer.training_ended()


@contextlib.contextmanager
def _chart_process(start):
    """If `start`, a child process that imports matplotlib on the second core while this one trains (see
    sgdlab.plots.chart_process); else None, and the charts are drawn here."""
    charts = ChartProcess.start() if start else None
    try:
        yield charts
    finally:
        if charts is not None:
            charts.close()
