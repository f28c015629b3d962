"""`sgdlab plot`: redraw a run's charts from its history.json."""


from ..errors import SgdlabError
from .arguments import path_given


def add_to(commands):
    parser = commands.add_parser("plot", help="redraw accuracy.png and loss.png from a run's history.json")
    parser.add_argument("run_dir", type=path_given, metavar="RUN_DIR")
    return parser


def run(args):
    from ..plots.charts import plot_history
    from ..training.history import History

    if not args.run_dir.is_dir():
        raise SgdlabError(f"{args.run_dir} is not a folder: give a run folder written by 'sgdlab train'")
    history = History.load(args.run_dir / "history.json")
    for path in plot_history(history, args.run_dir):
        print(f"wrote {path}")
    return 0
