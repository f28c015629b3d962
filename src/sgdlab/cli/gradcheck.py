"""`sgdlab gradcheck`: numerical against backprop gradients, parameter by parameter, on real images."""

import time

from ..errors import ConfigError
from .arguments import add_config_option, add_data_dir
from .output import EXIT_ERROR


def add_to(commands):
    parser = commands.add_parser(
        "gradcheck", help="compare numerical and backprop gradients on real data",
        description="Compute the gradient of the loss for every parameter twice, by numerical "
                    "differentiation and by backpropagation, on a batch of real MNIST images, and report "
                    "their largest differences. Exits with 1 when any exceeds its threshold.")
    add_data_dir(parser)
    for name in ("hidden_size", "hidden_sizes", "activation", "weight_decay"):  # the architecture
        add_config_option(parser, name)
    add_config_option(parser, "batch_size", default=3, help="training images in the batch")
    add_config_option(parser, "seed", help="seed for the weights")
    return parser


def run(args):
    from ..data import load_mnist
    from ..data.mnist import NUM_CLASSES
    from ..engine.gradcheck import MAX_ABS_DIFF, MAX_REL_ERROR, gradient_check
    from ..training.config import TrainConfig

    (x_train, t_train), _ = load_mnist(data_dir=args.data_dir)
    if args.batch_size > len(x_train):
        raise ConfigError(f"batch size {args.batch_size} is larger than the training set ({len(x_train)} images)")
    x, t = x_train[:args.batch_size].astype("float64"), t_train[:args.batch_size]
    settings = TrainConfig(hidden_size=args.hidden_size, hidden_sizes=args.hidden_sizes, activation=args.activation,
                           weight_decay=args.weight_decay, dtype="float64")
    network = settings.make_network(x.shape[1], NUM_CLASSES, rng=args.seed)
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
