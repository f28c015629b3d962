"""`sgdlab compare`: several runs' loss and accuracy curves on one figure, labelled by how their settings differ."""

from pathlib import Path

from ..errors import ConfigError
from .arguments import path_given


def add_to(commands):
    parser = commands.add_parser(
        "compare", help="overlay the loss and accuracy curves of several runs",
        description="Draw the smoothed loss and the train and test accuracy of each run on one figure, each run "
                    "labelled by the settings in which the runs differ.")
    parser.add_argument("run_dirs", type=path_given, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", type=path_given, default=Path("comparison.png"), metavar="FILE.png",
                        help="where to write the figure (default: comparison.png)")
    return parser


def run(args):
    from ..plots.comparison import plot_comparison
    from ..runs.run_labels import difference_labels
    from ..runs.run_folder import read_run

    if args.out.suffix.lower() != ".png":
        raise ConfigError(f"--out {args.out}: the figure is a PNG, so give a file name ending in .png")
    runs = [read_run(run_dir) for run_dir in args.run_dirs]
    labels = difference_labels([run_dir.name for run_dir in args.run_dirs], [settings for settings, _ in runs])
    plot_comparison(labels, [history for _, history in runs], args.out)
    print(f"wrote {args.out}")
    return 0
