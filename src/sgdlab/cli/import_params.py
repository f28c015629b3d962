"""`sgdlab import-params FILE.pkl --net NAME --out MODEL.npz`: weights the book's code saved, as an sgdlab model."""

from ..errors import ConfigError
from ..training.config import NETS
from .arguments import add_config_option, config_from_args, path_given

# The settings that shape a net (its layers and their sizes, its float type): those a file's weights must fit.
SHAPE_OF_NET = ("net", "hidden_size", "activation", "batch_norm", "dropout", "dtype",
                *sorted({name for net in NETS.values() for name in net.own_settings}))


def add_to(commands):
    parser = commands.add_parser(
        "import-params", help="bring weights saved by the book's code (a .pkl) into an sgdlab model file",
        description="Read a parameter file written by the book's save_params (a pickled dict of NumPy arrays: "
                    "ch07/params.pkl, ch08/deep_convnet_params.pkl, or your own) as the weights of --net with its "
                    "settings, built as 'sgdlab train' builds it, and write it as an sgdlab model for evaluate, "
                    "predict and view. Nothing in the file is run: anything but a dict of float arrays, or arrays "
                    "of other names or shapes than the net's, is refused in one line and nothing is written.")
    parser.add_argument("params", type=path_given, metavar="FILE.pkl")
    parser.add_argument("--out", type=path_given, metavar="MODEL.npz", required=True, help="the model file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace MODEL.npz if it exists")
    for name in SHAPE_OF_NET:
        add_config_option(parser, name, help="float type of the model (default: the file's, float64 for the book's "
                                             "files)" if name == "dtype" else None)
    return parser


def run(args):
    from ..runs.book_params import import_book_params

    if not hasattr(args, "net"):
        raise ConfigError(f"give --net, the net whose weights the file holds: one of {', '.join(NETS)}")
    if args.out.exists() and not args.overwrite:
        raise ConfigError(f"{args.out} exists: give --overwrite to replace it, or another --out")
    config = config_from_args(args)
    network = import_book_params(args.params, config, args.out)
    print(f"{args.out}: {type(network).__name__} of {network.num_params:,} parameters in {network.dtype}, "
          f"from {args.params}")
    return 0
