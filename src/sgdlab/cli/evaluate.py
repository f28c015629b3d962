"""`sgdlab evaluate`: a saved model's accuracy on the whole training and test sets; its test mistakes as the book's
figure, and its accuracy in another float type (the book's float16 experiment)."""

import sys
from pathlib import Path

from ..errors import ConfigError
from ..ranges import POSITIVE_INT
from .arguments import add_data_dir, option_type, path_given

BOOK_MISTAKES = 20  # the book's figure shows 20 (4 rows of 5)
MAX_MISTAKES = 500
INFERENCE_DTYPES = ("float16", "float32", "float64")


def mistakes_count(text):
    """--mistakes' N; or, where the text is no number, the model given after it (`sgdlab evaluate --mistakes
    MODEL.npz`), which an optional value would otherwise swallow: a path is not a count."""
    try:
        float(text)
    except ValueError:
        return path_given(text)
    count = POSITIVE_INT.parse(text)
    if count > MAX_MISTAKES:
        raise ValueError(f"must be at most {MAX_MISTAKES}, got {count}")
    return count


def add_to(commands):
    parser = commands.add_parser(
        "evaluate", help="accuracy of a saved model on the training and test sets",
        description="Print a saved model's accuracy on the whole training and test sets (with no MODEL: the model "
                    "shipped with sgdlab, or the one $SGDLAB_MODEL names).")
    parser.add_argument("model", type=path_given, nargs="?", metavar="MODEL.npz")
    add_data_dir(parser)
    parser.add_argument("--mistakes", type=option_type(mistakes_count), nargs="?", const=BOOK_MISTAKES, metavar="N",
                        help=f"draw the N test digits the model is most confidently wrong about, each with its label "
                             f"and the prediction (the book's misclassified_mnist.py; N {BOOK_MISTAKES} if left out), "
                             "as a PNG beside the model, and print the accuracy per digit")
    parser.add_argument("--mistakes-out", type=path_given, metavar="PNG",
                        help="where --mistakes writes its figure (default: MODEL-mistakes.png beside MODEL.npz; in the current "
                             "folder for the shipped model)")
    parser.add_argument("--dtype", choices=INFERENCE_DTYPES,
                        help="also classify the test set in this float type, the weights and every value of the "
                             "forward pass rounded to it (the book's half_float_network.py: float16), and print both "
                             "accuracies side by side")
    return parser


def run(args):
    import numpy as np

    from ..data import load_mnist
    from ..nn.functions import as_labels
    from ..runs.model_file import load_mnist_model
    from ..runs.shipped_model import default_model
    from ..training.evaluation import count_correct

    if args.mistakes_out is not None and args.mistakes is None:
        raise ConfigError("--mistakes-out says where --mistakes writes its figure: give --mistakes too")
    if isinstance(args.mistakes, Path):  # the model, given after --mistakes
        if args.model is not None:
            raise ConfigError(f"--mistakes takes a number of digits, got '{args.mistakes}' (the model is "
                              f"'{args.model}'): give --mistakes N, or --mistakes alone for {BOOK_MISTAKES}")
        args.model, args.mistakes = args.mistakes, BOOK_MISTAKES
    model = args.model
    if model is None:
        model, what = default_model()
        print(f"sgdlab evaluate: no model given: using {what}, {model}", file=sys.stderr)
    network = load_mnist_model(model)
    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, copy=False, data_dir=args.data_dir)
    test_labels = as_labels(t_test)
    found = None
    if args.mistakes is not None:
        from ..training.inspection import test_set_errors

        found = test_set_errors(network, x_test, test_labels, shown=args.mistakes)
    # as training measured them; the test set's from the mistakes when they were looked for
    print(f"train acc {count_correct(network, x_train, as_labels(t_train)) / len(x_train):.4f} ({len(x_train)} images)")
    correct = count_correct(network, x_test, test_labels) if found is None else len(x_test) - found["errors"]
    line = f"test acc  {correct / len(x_test):.4f}"
    if args.dtype is not None:
        with np.errstate(over="ignore"):  # float16 ends at 65504: exp overflows to inf where a sigmoid is 0
            other = count_correct(network.copy(dtype=args.dtype), x_test, test_labels)
        line += f" ({network.dtype}) | {other / len(x_test):.4f} ({args.dtype})"
    print(f"{line} ({len(x_test)} images)")
    if found is not None:
        _report_mistakes(args, model, network, x_test, found)
    return 0


def _report_mistakes(args, model, network, x_test, found):
    from ..plots.mistakes import plot_mistakes

    print("test acc per digit: " + "  ".join(f"{digit}: {accuracy:.4f}"
                                             for digit, accuracy in enumerate(found["per_digit"])))
    # beside the model given; in the current folder for one found without it (the shipped one is in the package)
    path = args.mistakes_out or (model.parent if args.model is not None else Path()) / f"{model.stem}-mistakes.png"
    shown = found["gallery"]
    plot_mistakes(x_test, shown, path, f"{type(network).__name__}: the {len(shown)} most confident of its "
                                       f"{found['errors']} test mistakes")
    print(f"{path}: the {len(shown)} most confident of {found['errors']} mistakes")
