"""`sgdlab experiment NAME`: one of the book's chapter-6 experiments, its variants trained side by side."""

import sys

from ..nn.optimizers import OPTIMIZERS
from ..ranges import NON_NEGATIVE_INT, POSITIVE_INT, parse_names
from ..training.config import NETS
from .arguments import add_data_dir, option_type, path_given
from .output import EXIT_INTERRUPTED, say

NAMES = ("optimizers", "weight-init", "batch-norm", "weight-decay", "dropout")  # as sgdlab.runs.experiments has them


def add_to(commands):
    parser = commands.add_parser(
        "experiment", help="run one of the book's chapter-6 experiments",
        description="Run one of the book's chapter-6 experiments at the book's settings: optimizers "
                    "(optimizer_compare_mnist.py), weight-init (weight_init_compare.py), batch-norm "
                    "(batch_norm_test.py), weight-decay (overfit_weight_decay.py) or dropout (overfit_dropout.py). "
                    "Each variant is a run folder under --out, beside summary.json and the book's figure; all "
                    "start from the same seed and draw the same batches.")
    parser.add_argument("name", choices=NAMES, metavar="NAME", nargs="?",
                        help=f"one of {', '.join(NAMES)} (not with --resume)")
    add_data_dir(parser)
    parser.add_argument("--out", type=path_given, metavar="DIR", help="folder for the experiment (default: runs/<date>-<time>)")
    parser.add_argument("--seed", type=option_type(NON_NEGATIVE_INT.parse), metavar="N",
                        help="the seed every variant starts from (default 0)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--iters", type=option_type(POSITIVE_INT.parse), metavar="N",
                        help="updates per variant, instead of the book's")
    length.add_argument("--epochs", type=option_type(POSITIVE_INT.parse), metavar="N",
                        help="epochs per variant, instead of the book's")
    parser.add_argument("--optimizers", type=option_type(parse_names), metavar="NAME,NAME,...",
                        help=f"for the optimizers experiment: which of {','.join(OPTIMIZERS)} to compare (default "
                             "the book's four: sgd,momentum,adagrad,adam)")
    parser.add_argument("--net", choices=NETS, metavar="NET",
                        help="the net the variants train (default mlp: the book's fully connected nets); another "
                             "net keeps its own layers and initial weights, but where the experiment varies them, and "
                             "the experiment's data, batches and length (batch-norm and dropout: not deep-convnet, "
                             "which has no batch norm and its dropout built in)")
    parser.add_argument("--overwrite", action="store_true", help="replace an experiment already in --out")
    parser.add_argument("--resume", type=path_given, metavar="DIR",
                        help="continue the interrupted experiment in DIR: its finished variants are kept, the "
                             "interrupted ones continue from their checkpoints (only --data-dir and --quiet may be "
                             "given with it)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def run(args):
    from ..errors import ConfigError
    from ..runs.experiments import BOOK_OPTIMIZERS, experiments, resume_experiment, run_experiment

    if args.resume is not None:
        given = [flag for flag, value in (("NAME", args.name), ("--out", args.out), ("--seed", args.seed),
                                          ("--net", args.net),
                                          ("--iters", args.iters), ("--epochs", args.epochs),
                                          ("--optimizers", args.optimizers), ("--overwrite", args.overwrite or None))
                 if value is not None]
        if given:
            raise ConfigError(f"--resume continues an experiment as its experiment.json describes it: leave out "
                              f"{', '.join(given)}")
        if _has_finished(args.resume):
            say(args, f"{args.resume} has finished already: nothing to resume")
            return 0
        with VariantProgress(args) as progress:
            out, summary = resume_experiment(args.resume, data_dir=args.data_dir, progress=progress)
    else:
        if args.name is None:
            raise ConfigError(f"name the experiment to run ({', '.join(NAMES)}), or give --resume DIR")
        if args.optimizers is not None and args.name != "optimizers":
            raise ConfigError(f"--optimizers chooses the variants of the optimizers experiment, not of {args.name}")
        experiment = experiments(args.optimizers or BOOK_OPTIMIZERS)[args.name].on_net(args.net or "mlp")
        length = {"iters": args.iters} if args.iters else {"epochs": args.epochs} if args.epochs else None
        say(args, f"experiment {experiment.name} ({experiment.script}): {len(experiment.variants)} variants")
        with VariantProgress(args) as progress:
            out, summary = run_experiment(experiment, out=args.out, seed=args.seed or 0, length=length,
                                          overwrite=args.overwrite, data_dir=args.data_dir, progress=progress)
    say(args, f"{'variant':22} {'loss':>7} {'train acc':>10} {'test acc':>9} {'gap':>7}")
    for variant, figures in summary["variants"].items():
        loss = figures["final_loss"]
        loss = "-" if loss is None else f"{loss:.4f}" if loss < 1e3 else f"{loss:.1e}"  # a diverged run's is huge
        train, test, gap = ("-" if figures[key] is None else f"{figures[key]:.4f}"  # never evaluated: diverged first
                            for key in ("train_acc", "test_acc", "gap"))
        stopped = f"  ({figures['stopped']})" if figures["stopped"] else ""
        say(args, f"{variant:22} {loss:>7} {train:>10} {test:>9} {gap:>7}{stopped}")
    if "stopped" in summary:
        print(f"sgdlab experiment: {summary['stopped']}; what ran is saved in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    say(args, f"results in {out}: summary.json, {summary['figure']} and one run folder per variant")
    return 0


def _has_finished(folder):
    """Whether the experiment in `folder` has ended with every variant run (its summary says nothing stopped)."""
    from pathlib import Path

    from ..fileio import read_json_object

    summary = Path(folder) / "summary.json"
    return summary.exists() and "stopped" not in read_json_object(summary, "experiment's summary")


class VariantProgress:
    """A progress bar per variant while it trains: one line each for the variants training side by side."""

    def __init__(self, args):
        self.args = args
        self.bars, self.lines = {}, {}  # by variant: its bar and the terminal line it takes

    def __call__(self, variant, done, total):
        from tqdm import tqdm

        bar = self.bars.get(variant)
        if bar is None:
            line = self.lines[variant] = min(set(range(len(self.lines) + 1)) - set(self.lines.values()))
            bar = self.bars[variant] = tqdm(total=total, unit="it", desc=variant, leave=False, dynamic_ncols=True,
                                            position=line, disable=True if self.args.quiet else None)
        bar.update(done - bar.n)
        if done >= total:
            self.bars.pop(variant).close()
            del self.lines[variant]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for bar in self.bars.values():
            bar.close()
