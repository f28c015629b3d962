"""`sgdlab sweep`: a random search of training settings (chapter 6.5), on this machine's cores or a Dask cluster."""

import dataclasses
import sys

from ..ranges import NON_NEGATIVE_INT, POSITIVE_INT
from ..training.config import TrainConfig
from .arguments import add_config_option, add_data_dir, config_option_flags, given_settings, option_type, path_given
from .output import EXIT_INTERRUPTED, say

DEFAULT_TRIALS = 20
SHOWN = 5  # trials printed at the end, best first


def add_to(commands):
    parser = commands.add_parser(
        "sweep", help="search training settings by random trials, on this machine's cores or a Dask cluster",
        description="A random search of training settings, as chapter 6.5 searches the learning rate and the "
                    "weight decay: each --search gives a setting's range, the other options fix the rest as for "
                    "sgdlab train. Each trial is a run folder under --out beside results.csv, the book's figure of "
                    "the best trials (best-trials.png) and search.png. The validation accuracy ranks the trials. "
                    "Trial i's settings and seed depend only on --seed, i and the rounds before: the results are "
                    "the same on any number of workers.")
    parser.add_argument("--search", action="append", metavar="NAME=KIND:LOW:HIGH",
                        help="a setting to search: KIND log (10 to a uniform power, as the book draws lr), uniform "
                             "or int, from LOW to HIGH; or NAME=choice:A,B,... (repeat for each setting; e.g. "
                             "lr=log:1e-6:1e-2, dropout=uniform:0:0.5, hidden_size=int:20:200, "
                             "optimizer=choice:sgd,adam)")
    parser.add_argument("--trials", type=option_type(POSITIVE_INT.parse), metavar="N",
                        help=f"trials per round (default {DEFAULT_TRIALS}; 100 with --book)")
    parser.add_argument("--rounds", type=option_type(POSITIVE_INT.parse), metavar="R",
                        help="rounds of trials: after each, every range narrows to the span of the round's best "
                             "fifth of trials (at least 2), as the book advises (default 1)")
    parser.add_argument("--book", action="store_true",
                        help="the book's search (ch06/hyperparameter_optimization.py): lr=log:1e-6:1e-2 and "
                             "weight_decay=log:1e-8:1e-4 over 100 trials of a 784-100x6-10 ReLU net on 500 training "
                             "images (20%% held out) for 50 epochs; options given replace the book's")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=option_type(POSITIVE_INT.parse), metavar="N",
                         help="local worker processes, one core each (default: every usable core)")
    cluster.add_argument("--scheduler", type=option_type(_scheduler_address), metavar="tcp://HOST:PORT",
                         help="train on the Dask cluster of this scheduler instead (its workers need sgdlab and "
                              "must see --out on a shared file system)")
    parser.add_argument("--seed", type=option_type(NON_NEGATIVE_INT.parse), metavar="N",
                        help="the seed every trial's settings and training seed derive from (default 0)")
    parser.add_argument("--checkpoint-every", type=option_type(POSITIVE_INT.parse), metavar="N",
                        help="iterations between a trial's checkpoints: what a lost worker costs at most (default "
                             "500)")  # runs.sweep.TRIAL_CHECKPOINT_EVERY, not imported: --help stays quick
    parser.add_argument("--trial-charts", action="store_true",
                        help="draw each trial's accuracy.png, loss.png and report.html, as sgdlab train does (the "
                             "sweep's own figures are drawn always)")
    add_data_dir(parser)
    for spec in dataclasses.fields(TrainConfig):  # the settings every trial shares, as sgdlab train takes them
        if spec.name != "seed":
            add_config_option(parser, spec.name)
    parser.add_argument("--out", type=path_given, metavar="DIR", help="folder for the sweep (default: runs/<date>-<time>)")
    parser.add_argument("--overwrite", action="store_true", help="replace a sweep already in --out")
    parser.add_argument("--resume", type=path_given, metavar="DIR",
                        help="continue the interrupted sweep in DIR: its ended trials are kept, the interrupted ones "
                             "continue from their checkpoints (only --workers, --scheduler, --data-dir and --quiet "
                             "may be given with it)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def _scheduler_address(text):
    """A Dask scheduler's address as `dask scheduler` prints it (the tcp:// may be left out)."""
    import re

    if not re.fullmatch(r"((tcp|tls)://)?[\w.\-\[\]:]+:\d{1,5}", text.strip()):
        raise ValueError(f"must be a scheduler's address, such as tcp://10.0.0.1:8786, got {text!r}")
    return text.strip()


def run(args):
    from ..data import load_mnist
    from ..engine.threads import usable_cores
    from ..runs.sweep import ENDED, load_sweep, new_sweep, run_sweep
    from ..runs.trial_cluster import connect

    data = None
    if args.resume is not None:
        _refuse_with_resume(args)
        out = args.resume
        sweep, _ = load_sweep(out)
    else:
        sweep = _sweep_from_args(args)
        data = load_mnist(normalize=False, copy=False, data_dir=args.data_dir)
        # before the sweep's folder is made (or an earlier one replaced)
        sweep.check_data(len(data[0][0]), None if args.scheduler else args.workers or usable_cores())
        if args.scheduler is not None:
            connect(args.scheduler).close()
        out = new_sweep(sweep, args.out, args.overwrite, args.data_dir)
    where = f"the cluster at {args.scheduler}" if args.scheduler else f"{args.workers or usable_cores()} local workers"
    say(args, f"sweep of {sweep.trials} trials{f' x {sweep.rounds} rounds' if sweep.rounds > 1 else ''} on {where}, "
              f"into {out}: {', '.join(search.spec() for search in sweep.searches)}")
    with TrialProgress(args, sweep) as progress:
        rows, interrupted = run_sweep(out, data_dir=args.data_dir, workers=args.workers or usable_cores(),
                                      scheduler=args.scheduler, progress=progress, data=data)
    _report(args, out, rows)
    if interrupted:
        print(f"sgdlab sweep: interrupted; the trials that ended are kept in {out}: continue with "
              f"sgdlab sweep --resume {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    unended = [row for row in rows.values() if row["status"] not in ENDED]
    if unended:
        failed = [row for row in unended if row["status"] == "failed"]
        trials = ", ".join(str(row["trial"]) for row in failed or unended)
        waiting = " (the next round waits for them)" if len(rows) < sweep.trials * sweep.rounds else ""
        how = (f"failed{waiting}, the first with {failed[0]['error']}" if failed else
               f"did not end{waiting}: the Dask cluster stopped them")
        print(f"sgdlab sweep: trials {trials} {how}; try them again with sgdlab sweep --resume {out}",
              file=sys.stderr)
        return 1
    return 0


def _sweep_from_args(args):
    from ..errors import ConfigError
    from ..runs.search_space import parse_search
    from ..runs.sweep import BOOK_SEARCHES, BOOK_SETTINGS, BOOK_TRIALS, Sweep

    settings = {name: getattr(args, name) for name in _given_settings(args)}
    searches = [parse_search(text) for text in args.search or ()]
    if args.book:
        settings = {**BOOK_SETTINGS, **settings}
        searches = searches or [parse_search(text) for text in BOOK_SEARCHES]
    if not searches:
        raise ConfigError("give the settings to search with --search NAME=KIND:LOW:HIGH (such as "
                          "--search lr=log:1e-6:1e-2), or --book for the book's search")
    if args.book and "iters" in settings and "epochs" not in _given_settings(args):
        del settings["epochs"]  # --iters replaces the book's length
    trials = args.trials or (BOOK_TRIALS if args.book else DEFAULT_TRIALS)
    given = {"checkpoint_every": args.checkpoint_every} if args.checkpoint_every else {}
    return Sweep(tuple(searches), settings, trials, args.rounds or 1, args.seed if args.seed is not None else 0,
                 charts=args.trial_charts, **given)


def _refuse_with_resume(args):
    from ..errors import ConfigError

    given = [config_option_flags(name)[0] for name in _given_settings(args)]
    given += [flag for flag, value in (("--search", args.search), ("--trials", args.trials),
                                       ("--rounds", args.rounds), ("--book", args.book), ("--seed", args.seed),
                                       ("--out", args.out), ("--overwrite", args.overwrite),
                                       ("--checkpoint-every", args.checkpoint_every),
                                       ("--trial-charts", args.trial_charts))
              if value is not None and value is not False]
    if given:
        raise ConfigError(f"--resume continues a sweep as its sweep.json describes it: leave out {', '.join(given)}")


def _given_settings(args):
    """The trial settings given on the command line (--seed is the sweep's, not a trial's)."""
    return [name for name in given_settings(args) if name != "seed"]


def _report(args, out, rows):
    from ..runs.sweep import ENDED, best_settings_line, ranked

    best = ranked(rows.values())
    failed = [row for row in rows.values() if row.get("status") not in ENDED]
    if best:
        which = f"the best {SHOWN} of {len(best)} trials" if len(best) > SHOWN else f"the {len(best)} trials"
        say(args, f"{which} that ended, by validation accuracy (every trial in results.csv):")
    say(args, f"{'trial':>5} {'round':>5} {'val acc':>8} {'train acc':>9}  settings")
    for row in best[:SHOWN]:
        say(args, f"{row['trial']:5d} {row['round']:5d} {row['val_acc']:8.4f} {row['train_acc']:9.4f}  "
                  f"{best_settings_line(row)}")
    if best:
        top = best[0]
        say(args, f"best: trial {top['trial']} ({best_settings_line(top)}), validation accuracy {top['val_acc']:.4f} "
                  f"(its test accuracy {top['test_acc']:.4f}, not used to choose)")
    diverged = sum(row.get("status") == "diverged" for row in rows.values())
    counts = f"{len(rows) - len(failed) - diverged} finished, {diverged} diverged"
    if failed:
        counts += f", {len(failed)} not finished ({', '.join(sorted({row['status'] for row in failed}))})"
    say(args, f"{counts}; results in {out}: results.csv, best-trials.png, search.png, one run folder per trial")


class TrialProgress:
    """A progress bar of the sweep's trials, with the best validation accuracy so far (the trials that ended
    before a resumption count from the start)."""

    def __init__(self, args, sweep):
        self.args, self.total = args, sweep.trials * sweep.rounds
        self.bar, self.best = None, None

    def __call__(self, row):
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="trial", disable=True if self.args.quiet else None,
                            dynamic_ncols=True, leave=False)
        self.bar.update(1)
        if row.get("val_acc") is not None and (self.best is None or row["val_acc"] > self.best):
            self.best = row["val_acc"]
        self.bar.set_postfix_str(f"best val acc {self.best:.4f}" if self.best is not None else "", refresh=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.bar is not None:
            self.bar.close()
