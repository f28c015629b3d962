"""A whole training run: claim the folder, load MNIST, train, save. The command line calls it, and so
can anything else that runs training (a notebook, a page, a sweep), watching it through a `RunObserver`."""

import contextlib
from pathlib import Path

from ..data import default_data_dir, load_mnist
from ..data.mnist import SAMPLE_SHAPE
from ..engine.threads import usable_cores
from ..errors import ConfigError, SgdlabError, TrainingDiverged
from ..interrupts import interrupts_deferred
from ..plots.chart_process import ChartProcess
from ..plots.charts import plot_history
from ..training.history import History
from ..training.trainer import Trainer
from .checkpoint import load_checkpoint, save_checkpoint
from .run_folder import (CHECKPOINT_NAME, RunFolder, check_folder_name, claim_run_folder, read_run_settings,
                         remove_unfinished_writes, save_run)


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


def train_run(config, out=None, overwrite=False, data_dir=None, plot=True, observer=None, background=None, data=None,
              checkpoint_every=None, report=True):
    """Train `config` on MNIST into a run folder; returns `(run_dir, history)`.

    `out`: the folder (default: a new one under runs/); one holding an earlier
    run is refused unless `overwrite`. At each evaluation the run's state is
    saved in its checkpoint.npz, from which `resume_run` continues it. A run
    stopped by Ctrl-C is saved and returned with `history.stopped` set; a
    diverged one is saved without charts and raises `TrainingDiverged`,
    naming the folder. `background`: whether a second core evaluates,
    gathers batches and draws the charts beside training (default: when
    there is one; not when other runs are using it). `data`: what
    `load_mnist(normalize=False, data_dir=data_dir)` returns, when the
    caller has it already (it trains several runs). `checkpoint_every`:
    iterations between checkpoints instead (see `Trainer.fit`). `report`:
    whether report.html is written (a sweep's trials leave it out unless asked).
    """
    data_settings = _data_settings(data_dir)
    folder = claim_run_folder(out, overwrite, config, data_settings)  # now, not found unusable after training
    return _train_in(folder, config, data_dir, data_settings, None, plot, observer, background, data,
                     checkpoint_every, report=report)


def finished_history(run_dir):
    """The history of the run in `run_dir` if it has ended for good (finished, or diverged), else None."""
    path = Path(run_dir) / "history.json"
    if not path.exists():
        return None
    history = History.load(path)
    return None if history.interrupted else history


def resume_run(run_dir, data_dir=None, plot=True, observer=None, background=None, checkpoint_every=None, lr=None,
               data=None, report=True):
    """Continue the run in `run_dir` with the settings of its config.json, from its last checkpoint (from the
    start if it was stopped before its first); returns `(run_dir, history)` as `train_run` does.

    The finished run's history and weights are those the run would have had
    without the interruption, bit for bit. `data_dir`: where MNIST is now
    (default: where the run found it). `lr`: a new learning rate from the
    checkpoint on, recorded in the history (the way out of a diverged run,
    which continues from its last checkpoint too). `data`, `report`: as for `train_run`.
    """
    run_dir = Path(run_dir)
    config, stored_data_dir = resumable_settings(run_dir)
    data_dir = data_dir if data_dir is not None else stored_data_dir
    data_settings = _data_settings(data_dir)
    checkpoint = run_dir / CHECKPOINT_NAME
    state = load_checkpoint(checkpoint, config.resolved().to_dict()) if checkpoint.exists() else None
    folder = RunFolder(run_dir, made=None, claimed=True, resumed=True)
    return _train_in(folder, config, data_dir, data_settings, state, plot, observer, background, data,
                     checkpoint_every, lr, report)


def resumable_settings(run_dir):
    """The `RunSettings` of the run in `run_dir` to resume, or the error saying why it holds none."""
    check_folder_name(run_dir, "rename the folder to a UTF-8 name and resume the run there")
    if not (Path(run_dir) / "config.json").exists():
        raise ConfigError(f"{run_dir} holds no run to resume (no config.json): give a run folder of 'sgdlab train'")
    return read_run_settings(run_dir)


def _data_settings(data_dir):
    """What config.json records beside the settings: the data folder the run reads MNIST from."""
    return {"data_dir": str(data_dir if data_dir is not None else default_data_dir())}


def _train_in(folder, config, data_dir, data_settings, state, plot, observer, background, data=None,
              checkpoint_every=None, lr=None, report=True):
    background = background if background is not None else usable_cores() > 1
    observer = observer if observer is not None else RunObserver()
    checkpoint = folder.path / CHECKPOINT_NAME
    settings = config.resolved().to_dict()
    with folder.lock():
        remove_unfinished_writes(folder.path)  # a killed process's; none of a live one's, which holds the lock
        try:
            # uint8 pixels: a quarter of the memory of floats; the trainer scales each batch to 0..1.
            (x_train, t_train), (x_test, t_test) = data or load_mnist(normalize=False, copy=False, data_dir=data_dir)
            trainer = Trainer.from_config(config, input_size=SAMPLE_SHAPE, background=background)
            trainer.check_data(x_train, t_train, x_test, t_test)
            if state is not None and state.history.lr_changes and config.lr_schedule == "constant":
                trainer.optimizer.lr = state.history.lr_changes[-1]["lr"]  # the rate reached: its banner says it
            if lr is not None:
                trainer.change_learning_rate(lr)
            folder.start(config, data_settings)
            observer.started(folder.path, trainer, x_train, t_train)
        except BaseException:  # nothing to save yet
            folder.release()
            raise

        # From here to the saved results, Ctrl-C stops the iterations only (see sgdlab.interrupts).
        with _chart_process(plot and background) as charts, interrupts_deferred(), _write_errors_named(folder.path):
            try:
                history = _fit(trainer, (x_train, t_train, x_test, t_test), observer, state,
                               lambda reached: save_checkpoint(checkpoint, reached, settings), checkpoint_every)
            except TrainingDiverged as exc:
                save_run(folder.path, config, trainer.network, exc.history, plot=False, extra_settings=data_settings)
                raise exc.recorded_in(folder.path, resumable=checkpoint.exists()) from None
            save_run(folder.path, config, trainer.network, history, plot=plot, extra_settings=data_settings,
                     draw=charts.plot_history if charts is not None else plot_history,
                     test_set=(x_test, t_test) if report else None, test_scores=trainer.test_scores)
            if history.stopped is None:  # finished: nothing left to resume
                checkpoint.unlink(missing_ok=True)
    return folder.path, history


@contextlib.contextmanager
def _write_errors_named(run_dir):
    """A file of the run that cannot be written (a full disk, a folder made read-only) ends the run with one
    clear error; what was saved before it (config.json, the last checkpoint) stays whole, to continue from."""
    try:
        yield
    except OSError as exc:
        raise SgdlabError(f"cannot write the run's files in {run_dir} ({exc.strerror or exc})",
                          f"once there is room, continue it from its last checkpoint: sgdlab train --resume {run_dir}"
                          ) from None


def _fit(trainer, data, observer, state, on_checkpoint, checkpoint_every):
    try:
        return trainer.fit(*data, on_iteration=observer.iteration, on_evaluation=observer.evaluation,
                           on_checkpoint=on_checkpoint, resume=state, checkpoint_every=checkpoint_every)
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
