"""The lab page from the command line: `sgdlab train --live` serves the run it trains, `sgdlab view` the runs
in folders; both print the page's address (with its token) and open it unless told not to."""

import contextlib
import sys

from ..interrupts import absorb_further_interrupts
from .output import EXIT_ERROR, say


def add_lab_options(parser, flag=None, help=None):
    """The page's options: `flag` (--live) turns it on, where it is optional."""
    if flag is not None:
        parser.add_argument(flag, action="store_true", help=help)
    parser.add_argument("--port", type=_port, metavar="N", default=0,
                        help="the page's port on this machine (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", metavar="HOST",
                        help="the address to listen on (default 127.0.0.1: this machine only; another exposes the "
                             "page, guarded by its token, to whoever can reach it)")
    parser.add_argument("--no-browser", action="store_true", help="print the page's address but do not open it")


def train_live(args, train, terminal, report):
    """Train with `train(observer, data)` while the page shows it, then say how the run ended with
    `report(run_dir, history)`, which returns the exit code; that code is returned. After a run that finished,
    or that the page stopped, the page stays up until Ctrl-C; one Ctrl-C (or SIGTERM, SIGHUP) while the run
    trains or saves ends the run and then the page. A diverged run's error is said at once, and the page stays up
    to look at what went wrong; the command then ends in error, without saying it twice."""
    from ..errors import TrainingDiverged
    from ..interrupts import interrupts_deferred
    from ..lab.catalog import Lab, LiveLabRun, MnistOnce
    from ..lab.feed import RunFeed
    from ..lab.live import LiveRun

    data = MnistOnce(_data_dir(args))
    live = LiveRun(RunFeed("starting", {}, live=True), terminal)
    with serving(args, Lab([LiveLabRun("live", live, data)])) as server:
        loaded = data()
        with interrupts_deferred() as pending:  # a signal the run does not take is still there for the page
            try:
                run_dir, history = train(live, loaded)
            except TrainingDiverged as exc:
                live.diverged(exc)
                print(f"sgdlab train: error: {exc}", file=sys.stderr)
                stay_up(args, server, pending)
                return EXIT_ERROR
            live.ended(history)
            code = report(run_dir, history)
            stopped_by_a_signal = history.interrupted and not live.stopped_by_page
            if stopped_by_a_signal or pending() is not None:
                absorb_further_interrupts()  # the run ended as the signal asked; the page closes with it
            else:
                stay_up(args, server, pending)
    return code


@contextlib.contextmanager
def serving(args, lab):
    """The page's server for `lab`, started (its address printed, and opened in a browser) and then stopped."""
    from ..lab.serving import LabServer

    server = LabServer(lab, args.host, args.port)
    if not server.is_local:
        print(f"sgdlab: warning: the lab page listens on {args.host}, beyond this machine: whoever can reach it "
              "and has its address (with the token) can read and drive the runs", file=sys.stderr)
    with server:
        print(f"lab page: {server.url}", flush=True)  # even with --quiet: it is what was asked for
        if not args.no_browser:
            import webbrowser

            webbrowser.open(server.url)
        yield server


def stay_up(args, server, pending):
    """Serve until Ctrl-C (or SIGTERM, SIGHUP), held by the `interrupts_deferred()` that yielded `pending`."""
    say(args, "the lab page stays up for looking around and drawing digits: press Ctrl-C to end")
    server.wait(lambda: pending() is not None)
    absorb_further_interrupts()  # one press ends the page: a second one, as it closes, changes nothing


def _data_dir(args):
    """Where MNIST is: --data-dir, else where the resumed run found it, else the default."""
    if args.data_dir is not None or args.resume is None:
        return args.data_dir
    from pathlib import Path

    from ..runs.run_folder import read_run_settings

    return read_run_settings(args.resume).data_dir if (Path(args.resume) / "config.json").exists() else None


def _port(text):
    import argparse

    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return port
