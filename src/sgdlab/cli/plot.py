"""`sgdlab plot`: redraw a run's charts from its history.json, and its report.html with them."""


from ..errors import SgdlabError
from .arguments import add_data_dir, path_given


def add_to(commands):
    parser = commands.add_parser("plot", help="redraw accuracy.png, loss.png and report.html of a run",
                                 description="Redraw a run's charts from its history.json, and write its report.html "
                                             "again with them (the trained model examined on the MNIST test set).")
    parser.add_argument("run_dir", type=path_given, metavar="RUN_DIR")
    add_data_dir(parser)
    return parser


def run(args):
    from ..data import load_mnist
    from ..plots.charts import plot_history
    from ..plots.report import write_report
    from ..runs.model_file import load_mnist_model
    from ..runs.run_folder import read_run_settings
    from ..training.history import History

    if not args.run_dir.is_dir():
        raise SgdlabError(f"{args.run_dir} is not a folder: give a run folder written by 'sgdlab train'")
    # everything read before anything is written: a folder that cannot be read is left as it was
    history = History.load(args.run_dir / "history.json")
    settings = read_run_settings(args.run_dir)
    network = load_mnist_model(args.run_dir / "model.npz")
    data_dir = args.data_dir if args.data_dir is not None else settings.data_dir
    _, test_set = load_mnist(normalize=False, copy=False, data_dir=data_dir)
    for path in plot_history(history, args.run_dir):
        print(f"wrote {path}")
    print(f"wrote {write_report(args.run_dir, settings.to_dict(), history, network, test_set)}")
    return 0
