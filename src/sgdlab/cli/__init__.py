"""The `sgdlab` command: train, evaluate, predict, gradcheck, plot, compare, experiment, sweep, view and
import-params, one module each.

Every mistake a user can make ends with one line on stderr and a non-zero
exit: 2 for a usage error (a bad option or setting), 1 for anything else
(missing data, a damaged file, a diverged run). Each command module adds
its options (`add_to`) and runs (`run`); its heavy imports happen in `run`,
so `sgdlab --help` loads no NumPy.
"""

import argparse

from .. import __version__
from ..errors import ConfigError, SgdlabError
from ..interrupts import absorb_further_interrupts, interrupt_on_termination
from . import compare, evaluate, experiment, gradcheck, import_params, plot, predict, sweep, train, view
from .output import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, reader_safe_output

COMMANDS = (train, evaluate, predict, gradcheck, plot, compare, experiment, sweep, view, import_params)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sgdlab",
        description="Train neural networks from scratch in NumPy on MNIST, as in chapter 4 of "
                    "'Deep Learning from Scratch'.")
    parser.add_argument("--version", action="version", version=f"sgdlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_to(commands).set_defaults(handler=command.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with reader_safe_output(), interrupt_on_termination():  # SIGTERM and SIGHUP stop a run as Ctrl-C does
            return args.handler(args)
    except ConfigError as exc:
        parser.exit(EXIT_USAGE, f"sgdlab {args.command}: error: {exc}\n")
    except SgdlabError as exc:
        parser.exit(EXIT_ERROR, f"sgdlab {args.command}: error: {exc}\n")
    except OSError as exc:  # a folder that cannot be written, a full disk: still one line, not a traceback
        parser.exit(EXIT_ERROR, f"sgdlab {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        absorb_further_interrupts()  # ending for this one: a second press must not cut the exit short
        parser.exit(EXIT_INTERRUPTED, f"sgdlab {args.command}: interrupted\n")
