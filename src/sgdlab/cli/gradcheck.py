"""`sgdlab gradcheck`: numerical against backprop gradients, parameter by parameter, on real images."""

import time

from ..errors import ConfigError
from ..ranges import NON_NEGATIVE_INT, POSITIVE_INT
from ..training.config import CONVOLUTION_SETTINGS
from .arguments import add_config_option, add_data_dir, given_settings, option_type
from .output import EXIT_ERROR


BOOK_BATCH = 3
BATCH_NORM_BATCH = 100
ARCHITECTURE = ("net", "hidden_size", "hidden_sizes", *CONVOLUTION_SETTINGS, "activation", "weight_init_std",
                "weight_decay", "dropout", "batch_norm")


def add_to(commands):
    parser = commands.add_parser(
        "gradcheck", help="compare numerical and backprop gradients on real data",
        description="Compute the gradient of the loss for every parameter twice, by numerical "
                    "differentiation and by backpropagation, on a batch of real MNIST images, and report "
                    "their largest differences. Exits with 1 when any exceeds its threshold.")
    add_data_dir(parser)
    for name in ARCHITECTURE:
        add_config_option(parser, name)
    add_config_option(parser, "batch_size", default=None,
                      help=f"training images in the batch (default {BOOK_BATCH}, the book's; {BATCH_NORM_BATCH} with "
                           "--batch-norm, whose statistics over a few samples say little)")
    add_config_option(parser, "seed", help="seed for the weights")
    parser.add_argument("--train-iters", type=int, default=0, metavar="N",
                        help="backprop updates of the net on the batch (by its optimizer) before the check "
                             "(default 0: the net as initialised); a few move a bias off the exact 0 where blank "
                             "pixels leave every nudge of it across a relu's kink")
    parser.add_argument("--entries", type=option_type(POSITIVE_INT.parse), metavar="N",
                        help="differentiate a random sample of N entries of each convolution's weights and biases "
                             "(drawn by --seed) instead of all, as cs231n's grad_check_sparse does, reported as "
                             "sampled: the full DeepConvNet in minutes rather than hours (a convolutional net's; a "
                             "dense head that the fast numerical gradient takes whole in seconds is checked whole)")
    return parser


def run(args):
    import numpy as np

    from ..data import load_mnist
    from ..data.mnist import NUM_CLASSES, SAMPLE_SHAPE
    from ..data.scaling import to_float
    from ..engine.gradcheck import MAX_ABS_DIFF, MAX_REL_ERROR, ROUNDING, STEP, gradient_check
    from ..engine.threads import one_blas_thread
    from ..training.config import TrainConfig

    settings = TrainConfig(**{name: getattr(args, name) for name in given_settings(args) if name != "batch_size"},
                           dtype="float64")
    settings.check_memory(SAMPLE_SHAPE, NUM_CLASSES)  # before anything is loaded or allocated
    if args.entries is not None and settings.net == "mlp":
        raise ConfigError("--entries samples a convolutional net's parameters; an mlp's numerical gradient takes all "
                          "of them in seconds: leave --entries out")
    (x_train, t_train), _ = load_mnist(normalize=False, copy=False, data_dir=args.data_dir)  # only the batch is scaled
    batch_size = args.batch_size or (BATCH_NORM_BATCH if settings.batch_norm else BOOK_BATCH)
    if batch_size > len(x_train):
        raise ConfigError(f"batch size {batch_size} is larger than the training set ({len(x_train)} images)")
    x = to_float(x_train[:batch_size], np.empty((batch_size, x_train.shape[1]), np.float64))
    t = t_train[:batch_size]
    network = settings.make_network(SAMPLE_SHAPE, NUM_CLASSES, rng=settings.seed)
    optimizer = settings.make_optimizer()
    for _ in range(NON_NEGATIVE_INT.check("train iters", args.train_iters)):
        optimizer.update(network.params, network.gradient(x, t))
    trained = f" after {args.train_iters} updates by {optimizer!r}" if args.train_iters else ""
    step = f"h={STEP:g}" + (" times the features' smallest spread before batch norm" if settings.batch_norm else "")
    print(f"gradient check of {network}{trained} on {len(x)} training images (float64, central differences at h and h/2, "
          f"{step}, combined by Richardson extrapolation)")
    print("numerical gradient against backprop, both through the book's layers and through the training step "
          "(the larger difference of the two)")
    started = time.perf_counter()
    with one_blas_thread():  # as training: the numerical gradient's own two threads share the cores
        checks = gradient_check(network, x, t, entries=args.entries, seed=settings.seed)
    print(f"{'param':6} {'shape':>12} {'max abs diff':>14} {'max rel error':>14} {'across a kink':>14}")
    for check in checks:
        verdict = ("NOT CHECKED" if not check.checked else "FAIL" if not check.passed
                   else "ok (zero gradient: both are rounding noise)" if check.is_zero else "ok")
        if check.sampled is not None:
            verdict += f" (sampled: {check.sampled} of {check.size} entries)"
        print(f"{check.name:6} {str(check.shape):>12} {check.max_abs_diff:14.3e} {check.max_rel_error:14.3e} "
              f"{check.kinks:14d}  {verdict}")
    failed = [check.name for check in checks if check.checked and not check.passed]
    unchecked = [check.name for check in checks if not check.checked]
    verdict = "; ".join([*([f"FAIL ({', '.join(failed)})"] if failed else []),
                         *([f"NOT CHECKED ({', '.join(unchecked)})"] if unchecked else [])]) or "ok"
    print(f"thresholds: max abs diff {MAX_ABS_DIFF:g}, max rel error {MAX_REL_ERROR:g} (give or take "
          f"{ROUNDING:g} |loss| / step of rounding); "
          f"{verdict} in {time.perf_counter() - started:.2f} s")
    sampled = [check for check in checks if check.sampled is not None]
    if sampled:
        drawn, of = sum(check.sampled for check in sampled), sum(check.size for check in sampled)
        print(f"sampled: {drawn} of {of} entries of {', '.join(check.name for check in sampled)} were differentiated "
              f"(--entries {args.entries}, drawn by the seed), the others not checked")
    kinks = sum(check.kinks for check in checks)
    if kinks:
        crossings = dict.fromkeys(layer.kink for layer in network.layers if layer.kink is not None)  # each once
        differentiated = sum(check.differentiated for check in checks)
        print(f"{kinks} of {differentiated} entries were not compared: nudging one by h or h/2 "
              f"{', or '.join(crossings)}, where the slope jumps, so no difference quotient there is a derivative")
    if unchecked:
        print(f"{', '.join(unchecked)}: every entry's nudge crosses a kink, so nothing of it could be compared and it "
              "is not verified; check the net after a few updates, which move such a bias off the kink: add "
              "--train-iters 10")
    return EXIT_ERROR if failed or unchecked else 0
