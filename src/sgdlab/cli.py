"""The `sgdlab` command: train, evaluate, predict, gradcheck and plot.

Every mistake a user can make ends with one line on stderr and a non-zero
exit: 2 for a usage error (a bad option or setting), 1 for anything else
(missing data, a damaged file, a diverged run).
"""

import argparse
import os
import sys
import time
from pathlib import Path

from . import __version__
from .errors import ConfigError, SgdlabError, TrainingDiverged

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _add_data_dir(parser):
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder holding the MNIST files (default: $SGDLAB_DATA, else "
                             "$XDG_CACHE_HOME/sgdlab/mnist, which is ~/.cache/sgdlab/mnist unless XDG_CACHE_HOME "
                             "is set; missing files are downloaded there)")


def build_parser():
    from .config import DTYPES, GRAD_METHODS, SAMPLING_METHODS, TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="sgdlab",
        description="Train neural networks from scratch in NumPy on MNIST, as in chapter 4 of "
                    "'Deep Learning from Scratch'.")
    parser.add_argument("--version", action="version", version=f"sgdlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="train the two-layer net with mini-batch SGD",
                                description="Train the two-layer net (784-H-10) on MNIST with mini-batch SGD, "
                                            "evaluating train and test accuracy once per epoch.")
    _add_data_dir(train)
    train.add_argument("--hidden-size", type=positive_int, default=defaults.hidden_size, metavar="N",
                       help=f"hidden units (default {defaults.hidden_size})")
    train.add_argument("--iters", type=positive_int, default=defaults.iters, metavar="N",
                       help=f"mini-batch updates (default {defaults.iters})")
    train.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, metavar="N",
                       help=f"samples per mini-batch (default {defaults.batch_size})")
    train.add_argument("--lr", type=positive_float, default=defaults.lr, metavar="X",
                       help=f"learning rate (default {defaults.lr})")
    train.add_argument("--grad", choices=GRAD_METHODS, default=defaults.grad,
                       help="gradient by backpropagation (fast) or by numerical differentiation "
                            "(the chapter's method, made practical: about 20 ms per iteration on 784-50-10)")
    train.add_argument("--sampling", choices=SAMPLING_METHODS, default=defaults.sampling,
                       help="'random': each batch drawn independently, as in the book; "
                            "'epoch': a fresh shuffle each epoch, no repeats")
    train.add_argument("--dtype", choices=DTYPES,
                       help="float type of weights and arithmetic (default: float32 for backprop, as accurate "
                            "and faster; float64 for numerical gradients, which need it)")
    train.add_argument("--seed", type=non_negative_int, default=defaults.seed, metavar="N",
                       help=f"seed for weights and batches (default {defaults.seed})")
    train.add_argument("--out", type=Path, metavar="DIR",
                       help="run folder for results (default: runs/<date>-<time>)")
    train.add_argument("--overwrite", action="store_true", help="replace the files of a run already in --out")
    train.add_argument("--no-plot", action="store_true", help="do not draw accuracy.png and loss.png")
    train.add_argument("--quiet", action="store_true", help="print nothing but errors")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="accuracy of a saved model on the training and test sets")
    evaluate.add_argument("model", type=Path, metavar="MODEL.npz")
    _add_data_dir(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser(
        "predict", help="classify images of handwritten digits",
        description="Print the predicted digit and its probability for each image. Images of any size and "
                    "format are converted to 28x28 grayscale the way MNIST digits look: a light digit on a "
                    "dark background. An image with a light background (a dark digit on paper) is therefore "
                    "inverted, then the digit is cropped, scaled into a 20x20 box and centred.")
    predict.add_argument("model", type=Path, metavar="MODEL.npz")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    predict.set_defaults(handler=cmd_predict)

    gradcheck = commands.add_parser(
        "gradcheck", help="compare numerical and backprop gradients on real data",
        description="Compute the gradient of the loss for every parameter twice, by numerical "
                    "differentiation and by backpropagation, on a batch of real MNIST images, and report "
                    "their largest differences. Exits with 1 when any exceeds its threshold.")
    _add_data_dir(gradcheck)
    gradcheck.add_argument("--hidden-size", type=positive_int, default=defaults.hidden_size, metavar="N",
                           help=f"hidden units (default {defaults.hidden_size})")
    gradcheck.add_argument("--batch-size", type=positive_int, default=3, metavar="N",
                           help="training images in the batch (default 3)")
    gradcheck.add_argument("--seed", type=non_negative_int, default=defaults.seed, metavar="N",
                           help=f"seed for the weights (default {defaults.seed})")
    gradcheck.set_defaults(handler=cmd_gradcheck)

    plot = commands.add_parser("plot", help="redraw accuracy.png and loss.png from a run's history.json")
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    plot.set_defaults(handler=cmd_plot)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        parser.exit(EXIT_USAGE, f"sgdlab {args.command}: error: {exc}\n")
    except SgdlabError as exc:
        parser.exit(EXIT_ERROR, f"sgdlab {args.command}: error: {exc}\n")
    except OSError as exc:  # a folder that cannot be written, a full disk: still one line, not a traceback
        parser.exit(EXIT_ERROR, f"sgdlab {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(EXIT_INTERRUPTED, f"sgdlab {args.command}: interrupted\n")


def _say(args, message):
    if not getattr(args, "quiet", False):
        print(message, flush=True)


def cmd_train(args):
    import numpy as np
    from tqdm import tqdm

    from .chartprocess import ChartProcess
    from .config import TrainConfig
    from .datasets import load_mnist
    from .pixels import to_float
    from .results import save_run
    from .trainer import Trainer, estimate_textbook_gradient_seconds, measure_numerical_gradient_seconds, usable_cores

    config = TrainConfig(iters=args.iters, batch_size=args.batch_size, lr=args.lr, hidden_size=args.hidden_size,
                         grad=args.grad, sampling=args.sampling, seed=args.seed, dtype=args.dtype)
    data_config = _data_config(args)
    run_dir, release = _claim_run_dir(args, config, data_config)  # now, not found unusable after training
    try:
        # uint8 pixels: a quarter of the memory of floats; the trainer scales each batch to 0..1.
        (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, data_dir=args.data_dir)
        trainer = Trainer.from_config(config, input_size=x_train.shape[1])
        trainer.check_data(x_train, t_train, x_test, t_test)
        _say(args, f"training {trainer.network} with {trainer.optimizer} on {len(x_train)} images ({config.iters} "
                   f"iterations, batch {config.batch_size}, {config.grad} gradients, {config.network_dtype})")
        if config.grad == "numerical":
            pixels = x_train[:config.batch_size]
            batch = to_float(pixels, np.empty(pixels.shape, trainer.network.dtype)), t_train[:config.batch_size]
            seconds = measure_numerical_gradient_seconds(trainer.network, *batch)
            textbook = estimate_textbook_gradient_seconds(trainer.network, *batch)
            _say(args, f"numerical gradients: about {_duration(seconds)} per iteration, "
                       f"{_duration(seconds * config.iters)} for {config.iters} iterations (perturbing one parameter "
                       f"at a time through the whole net, as the textbook does, would take about "
                       f"{_duration(textbook)} per iteration, {_duration(textbook * config.iters)} in all)")
    except BaseException:  # nothing to save yet
        release()
        raise

    # No bar when quiet or when the output is not a terminal (a log file gets the evaluation lines only).
    bar = tqdm(total=config.iters, unit="it", disable=True if args.quiet else None, dynamic_ncols=True, leave=False)

    def on_iteration(iteration, loss):
        bar.update(1)
        if iteration % 50 == 0 or config.grad == "numerical":
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_evaluation(history):
        if not args.quiet:
            bar.write(_evaluation_line(history))

    # With a second core, a child process imports matplotlib while this one trains (see sgdlab.chartprocess).
    charts = ChartProcess.start() if not args.no_plot and usable_cores() > 1 else None
    try:
        try:
            history = trainer.fit(x_train, t_train, x_test, t_test, on_iteration=on_iteration,
                                  on_evaluation=on_evaluation)
        except TrainingDiverged as exc:
            save_run(run_dir, config, trainer.network, exc.history, plot=False, extra_config=data_config)
            raise SgdlabError(f"{exc}; what was recorded is in {run_dir}") from None
        finally:
            bar.close()
        save_run(run_dir, config, trainer.network, history, plot=not args.no_plot and charts is None,
                 extra_config=data_config)
        if charts is not None:
            charts.plot_history(history, run_dir)
    finally:
        if charts is not None:
            charts.close()
    if history.stopped:
        print(f"sgdlab train: {history.stopped}; results so far saved in {run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _say(args, f"final test accuracy {history.test_acc[-1]:.4f}; results saved in {run_dir}")
    return 0


def _data_config(args):
    from .datasets import default_data_dir

    return {"data_dir": str(args.data_dir if args.data_dir is not None else default_data_dir())}


def _evaluation_line(history):
    mean_loss = history.mean_loss_since_last_evaluation()
    if mean_loss is None:
        loss = "   -  "
    else:  # a diverging run's loss can be huge before it turns infinite: keep the column's width
        loss = f"{mean_loss:.4f}" if mean_loss < 1000 else f"{mean_loss:.0e}"
    return (f"epoch {history.epoch[-1]:6.2f} | iteration {history.iteration[-1]:6d} | "
            f"train acc {history.train_acc[-1]:.4f} | test acc {history.test_acc[-1]:.4f} | "
            f"loss {loss} | {history.seconds[-1]:7.1f} s")


def _duration(seconds):
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _load_trained_model(path):
    from .checkpoint import load_model

    network, _ = load_model(path)
    return network


def _check_input_size(network, path, input_size):
    if network.sizes[0] != input_size:
        raise SgdlabError(f"{path} takes {network.sizes[0]} inputs per image, but MNIST images have "
                          f"{input_size} pixels: use a model trained on MNIST")


def _claim_run_dir(args, config, data_config):
    """The run's folder, made this run's before it trains; and a function that gives it back.

    The folder (`--out`, else a new one under runs/) must be able to take the
    results, and must not hold an earlier run's unless `--overwrite` is given.
    Its config.json is written at once, so that no other run takes it meanwhile.
    """
    from functools import partial

    from .results import RUNS_ROOT, claim_run_dir, new_run_dir, release_run_dir, run_files_in

    if args.out is None:
        _check_writable_folder(RUNS_ROOT)
        run_dir, made = new_run_dir(), True
    else:
        run_dir = args.out
        _check_writable_folder(run_dir)
        found = run_files_in(run_dir)
        if found and not args.overwrite:
            raise ConfigError(f"{run_dir} already holds a run's files ({', '.join(found)}): give another --out, "
                              "or add --overwrite to replace them")
        made = not run_dir.exists()
    if args.overwrite:
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir, partial(release_run_dir, run_dir, made, claimed=False)
    try:
        claim_run_dir(run_dir, config, data_config)
    except FileExistsError:
        raise ConfigError(f"{run_dir} was just taken by another run: give another --out") from None
    return run_dir, partial(release_run_dir, run_dir, made, claimed=True)


def _check_writable_folder(path):
    """Refuse a results folder that could not be made, or not written in, before any work is done."""
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path} is a link to nothing: give --out a folder for the run's results")
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise ConfigError(f"{existing} is a file, not a folder: the run's results need a folder (choose one "
                          "with --out)")
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"{existing} is not writable: give --out a folder you may write in")


def cmd_evaluate(args):
    from .datasets import load_mnist

    network = _load_trained_model(args.model)
    (x_train, t_train), (x_test, t_test) = load_mnist(data_dir=args.data_dir)
    _check_input_size(network, args.model, x_train.shape[1])
    print(f"train acc {network.accuracy(x_train, t_train):.4f} ({len(x_train)} images)")
    print(f"test acc  {network.accuracy(x_test, t_test):.4f} ({len(x_test)} images)")
    return 0


def cmd_predict(args):
    import numpy as np

    from .images import MNIST_SIDE, load_digit_image

    network = _load_trained_model(args.model)
    _check_input_size(network, args.model, MNIST_SIDE * MNIST_SIDE)
    failures = 0
    for path in args.images:
        try:
            pixels = load_digit_image(path)
        except SgdlabError as exc:
            print(f"sgdlab predict: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        if not pixels.any():
            print(f"sgdlab predict: error: {path}: no digit found (the image is one flat colour)", file=sys.stderr)
            failures += 1
            continue
        probabilities = network.predict(pixels[np.newaxis].astype(network.dtype))[0]
        digit = int(probabilities.argmax())
        print(f"{path}: {digit} (probability {probabilities[digit]:.3f})")
    return EXIT_ERROR if failures else 0


def cmd_gradcheck(args):
    from .datasets import load_mnist
    from .gradcheck import MAX_ABS_DIFF, MAX_REL_ERROR, gradient_check
    from .network import TwoLayerNet

    (x_train, t_train), _ = load_mnist(data_dir=args.data_dir)
    if args.batch_size > len(x_train):
        raise ConfigError(f"batch size {args.batch_size} is larger than the training set ({len(x_train)} images)")
    x, t = x_train[:args.batch_size].astype("float64"), t_train[:args.batch_size]
    network = TwoLayerNet(x.shape[1], args.hidden_size, 10, rng=args.seed)
    print(f"gradient check of {network} on {len(x)} training images (float64, central difference, h=1e-4)")
    print("numerical gradient against backprop, both through the book's layers and through the training step "
          "(the larger difference of the two)")
    started = time.perf_counter()
    checks = gradient_check(network, x, t)
    print(f"{'param':6} {'shape':>12} {'max abs diff':>14} {'max rel error':>14}")
    for check in checks:
        print(f"{check.name:6} {str(check.shape):>12} {check.max_abs_diff:14.3e} {check.max_rel_error:14.3e}"
              f"  {'ok' if check.passed else 'FAIL'}")
    failed = [check.name for check in checks if not check.passed]
    verdict = f"FAIL ({', '.join(failed)})" if failed else "ok"
    print(f"thresholds: max abs diff {MAX_ABS_DIFF:g}, max rel error {MAX_REL_ERROR:g}; "
          f"{verdict} in {time.perf_counter() - started:.2f} s")
    return EXIT_ERROR if failed else 0


def cmd_plot(args):
    from .history import History
    from .plotting import plot_history

    if not args.run_dir.is_dir():
        raise SgdlabError(f"{args.run_dir} is not a folder: give a run folder written by 'sgdlab train'")
    history = History.load(args.run_dir / "history.json")
    for path in plot_history(history, args.run_dir):
        print(f"wrote {path}")
    return 0
