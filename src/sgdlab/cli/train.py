"""`sgdlab train`: a whole run, shown as a progress bar and one line per evaluation."""

import dataclasses
import sys
import time

from ..errors import ConfigError
from ..interrupts import absorb_further_interrupts
from ..ranges import POSITIVE_INT
from ..training.config import TrainConfig
from .arguments import (add_config_option, add_data_dir, config_from_args, config_option_flags, given_settings,
                        option_type, path_given)
from .live import add_lab_options
from .output import EXIT_INTERRUPTED, duration, evaluation_line, say


def add_to(commands):
    parser = commands.add_parser("train", help="train a net on MNIST by mini-batch gradient descent",
                                 description="Train a net on MNIST by mini-batch gradient descent, evaluating train "
                                             "and test accuracy once per epoch: chapter 4's two-layer 784-50-10 with "
                                             "SGD by default, chapter 7's SimpleConvNet with Adam for --net "
                                             "simple-convnet, chapter 8's DeepConvNet for --net deep-convnet; "
                                             "options left out take the net's book defaults.")
    add_data_dir(parser)
    for spec in dataclasses.fields(TrainConfig):  # an option for every setting
        add_config_option(parser, spec.name)
    parser.add_argument("--out", type=path_given, metavar="DIR", help="run folder for results (default: runs/<date>-<time>)")
    parser.add_argument("--resume", type=path_given, metavar="RUN_DIR",
                        help="continue the interrupted run in RUN_DIR from its last checkpoint, with the settings "
                             "of its config.json (only --data-dir, --checkpoint-every, --no-plot, --quiet, --live and its "
                             "options, and --lr, a new learning rate from the checkpoint on, may be given with it)")
    parser.add_argument("--checkpoint-every", type=option_type(POSITIVE_INT.parse), metavar="N",
                        help="iterations between checkpoints (default: at every evaluation, or every epoch when "
                             "there is none before the end)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of a run already in --out")
    parser.add_argument("--no-plot", action="store_true", help="do not draw accuracy.png and loss.png")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_lab_options(parser, "--live", "watch the run on the lab page (see sgdlab view): its curves, its hidden "
                                      "units, its mistakes and gradients, with pause, step, stop and a new rate")
    return parser


def run(args):
    from ..data.mnist import NUM_CLASSES, SAMPLE_SHAPE
    from ..runs.run import finished_history, resumable_settings, resume_run, train_run

    if args.resume is not None:
        given_lr = getattr(args, "lr", None)  # present only when given
        changes = [config_option_flags(name)[0] for name in given_settings(args) if name != "lr"]
        changes += [flag for flag, given in (("--out", args.out is not None), ("--overwrite", args.overwrite)) if given]
        if changes:
            raise ConfigError(f"--resume continues a run with the settings in its config.json: leave out "
                              f"{', '.join(changes)}")
        finished = finished_history(args.resume)
        diverged = finished is not None and finished.stopped is not None
        if finished is not None and not (diverged and given_lr is not None):
            how = (f"has ended: {finished.stopped} (give --lr to continue it from its last checkpoint with a new "
                   "learning rate)" if diverged else
                   f"has finished already (final test accuracy {finished.final_test_acc:.4f})")
            say(args, f"{args.resume} {how}: nothing to resume")
            return 0

        # refused before anything is loaded or allocated, as a run of these settings is
        resumable_settings(args.resume).config.check_memory(SAMPLE_SHAPE, NUM_CLASSES)

        def train(observer, data=None):
            return resume_run(args.resume, data_dir=args.data_dir, plot=not args.no_plot, observer=observer,
                              checkpoint_every=args.checkpoint_every, lr=given_lr, data=data)
    else:
        config = config_from_args(args)
        config.check_memory(SAMPLE_SHAPE, NUM_CLASSES)  # before anything is loaded or allocated

        def train(observer, data=None):
            return train_run(config, out=args.out, overwrite=args.overwrite, data_dir=args.data_dir,
                             plot=not args.no_plot, observer=observer, checkpoint_every=args.checkpoint_every,
                             data=data)
    if args.live:
        from .live import train_live

        return train_live(args, train, TerminalProgress(args), lambda *ended: report(args, *ended))
    return report(args, *train(TerminalProgress(args)))


def report(args, run_dir, history):
    """Say how the run ended and where its results are saved; returns the exit code."""
    if history.stopped:
        if history.interrupted and not args.live:  # by a signal: the command ends as asked, whatever is pressed
            absorb_further_interrupts()                # now (a page, watching, decides for itself)
        print(f"sgdlab train: {history.stopped}; results so far saved in {run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if history.early_stopped:
        say(args, f"stopped early: {history.early_stopped}")
    kept = (f" (of the best evaluation's weights, iteration {history.best_iteration}, which model.npz holds)"
            if history.best_iteration is not None else "")
    say(args, f"final test accuracy {history.final_test_acc:.4f}{kept}; results saved in {run_dir}")
    return 0


class TerminalProgress:
    """The run as the terminal shows it: what is trained, a progress bar, a line per evaluation."""

    def __init__(self, args):
        self.args = args
        self.bar = None
        self.numerical = False
        self.textbook_seconds = None  # a textbook numerical gradient's, to compare with the one measured
        self.timed_from = None  # when the first iteration ended, to time the second (not paying for warm-up)

    def started(self, run_dir, trainer, x_train, t_train):
        from tqdm import tqdm

        config = trainer.config
        trained, held_out = config.data_rows(len(x_train))
        iterations = config.iterations(trained)
        validation = f", {held_out} more held out for validation" if held_out else ""
        given_lr = getattr(self.args, "lr", None) if getattr(self.args, "resume", None) is not None else None
        rate = f" (learning rate {given_lr} from here on)" if given_lr not in (None, trainer.optimizer.lr) else ""
        say(self.args, f"training {trainer.network} with {trainer.optimizer}{rate} on {trained} images{validation} "
                       f"({iterations} iterations, batch {config.batch_size}, {config.grad} gradients, "
                       f"{config.network_dtype})")
        if config.grad == "numerical":
            self.textbook_seconds = textbook_gradient_seconds(trainer, x_train, t_train)
        # No bar when quiet or when the output is not a terminal (a log file gets the evaluation lines only).
        self.bar = tqdm(total=iterations, unit="it", disable=True if self.args.quiet else None, dynamic_ncols=True,
                        leave=False)
        self.numerical = config.grad == "numerical"

    def iteration(self, iteration, loss):
        self.bar.update(1)
        if iteration % 50 == 0 or self.numerical:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if self.numerical:
            self._say_how_long(iteration)

    def _say_how_long(self, iteration):
        """After the second iteration of this session, how long the numerical gradients are taking."""
        if self.timed_from is None:
            self.timed_from = time.perf_counter()
            return
        seconds, self.numerical = time.perf_counter() - self.timed_from, False
        if not self.args.quiet:
            self.bar.write(numerical_gradient_estimate(seconds, self.textbook_seconds, self.bar.total - iteration,
                                                       self.bar.total))

    def evaluation(self, history):
        if not self.args.quiet:
            self.bar.write(evaluation_line(history))
            sys.stdout.flush()  # as it happens, also into a pipe or a file (| tee, nohup's nohup.out)

    def training_ended(self):
        self.bar.close()


def textbook_gradient_seconds(trainer, x_train, t_train):
    """How long one textbook numerical gradient (every parameter perturbed through the whole net) takes here,
    on one BLAS thread as training runs."""
    import numpy as np

    from ..data.scaling import to_float
    from ..engine.threads import one_blas_thread
    from ..engine.timing import estimate_textbook_gradient_seconds

    pixels = x_train[:trainer.config.batch_size]
    batch = to_float(pixels, np.empty(pixels.shape, trainer.network.dtype)), t_train[:len(pixels)]
    with one_blas_thread():
        return estimate_textbook_gradient_seconds(trainer.network, *batch)


def numerical_gradient_estimate(seconds, textbook_seconds, remaining, iterations):
    """What a run of numerical gradients will take, from the time one of its iterations took."""
    return (f"numerical gradients: {duration(seconds)} per iteration, about {duration(seconds * remaining)} for the "
            f"rest of the run (perturbing one parameter at a time through the whole net, as the textbook does, would "
            f"take about {duration(textbook_seconds)} per iteration, {duration(textbook_seconds * iterations)} for "
            f"all {iterations})")
