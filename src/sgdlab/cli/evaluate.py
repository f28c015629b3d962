"""`sgdlab evaluate`: a saved model's accuracy on the whole training and test sets."""


from .arguments import add_data_dir, path_given


def add_to(commands):
    parser = commands.add_parser("evaluate", help="accuracy of a saved model on the training and test sets")
    parser.add_argument("model", type=path_given, metavar="MODEL.npz")
    add_data_dir(parser)
    return parser


def run(args):
    from ..data import load_mnist
    from ..nn.functions import as_labels
    from ..runs.model_file import load_mnist_model
    from ..training.evaluation import count_correct

    network = load_mnist_model(args.model)
    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, data_dir=args.data_dir)
    for name, x, t in (("train acc", x_train, t_train), ("test acc ", x_test, t_test)):  # as training measured it
        print(f"{name} {count_correct(network, x, as_labels(t)) / len(x):.4f} ({len(x)} images)")
    return 0
