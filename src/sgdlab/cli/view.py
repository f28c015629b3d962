"""`sgdlab view [RUN_DIR...]`: the lab page for runs in folders, finished or still training elsewhere."""

import sys

from .arguments import add_data_dir, path_given
from .live import add_lab_options


def add_to(commands):
    parser = commands.add_parser("view", help="show runs on the lab page",
                                 description="Serve the lab page for run folders (default: the runs under ./runs): "
                                             "their curves overlaid, and for the one looked into its hidden units, "
                                             "its test mistakes, its gradient check and digits drawn or dropped. "
                                             "Runs still training in another process are followed through their "
                                             "checkpoints. A sweep's folder (sgdlab sweep --out), given alone, shows "
                                             "its trials ranked by validation accuracy and its search, as they end; "
                                             "click a trial to look into it. A model file (MODEL.npz: one 'sgdlab import-params' wrote, "
                                             "say) is shown without curves.")
    parser.add_argument("run_dirs", nargs="*", type=path_given, metavar="RUN_DIR",
                        help="run folders, or folders of them (an experiment's, runs/), or a sweep's folder, or "
                             "model files")
    parser.add_argument("--demo", action="store_true",
                        help="show the DeepConvNet shipped with sgdlab (or the model $SGDLAB_MODEL names): draw a "
                             "digit and see what each filter makes of it, before training anything")
    add_data_dir(parser)
    add_lab_options(parser)
    return parser


def run(args):
    from ..errors import ConfigError
    from ..interrupts import interrupts_deferred
    from ..lab.catalog import folder_lab
    from .live import serving, stay_up

    paths = args.run_dirs
    if args.demo:
        from ..runs.shipped_model import default_model

        if paths:
            raise ConfigError("--demo shows the shipped model alone: give run folders or --demo, not both")
        path, what = default_model()
        print(f"sgdlab view: showing {what}, {path}", file=sys.stderr)
        paths = [path]
    lab = folder_lab(paths, args.data_dir)
    with interrupts_deferred() as pending, serving(args, lab) as server:  # Ctrl-C ends the page, even as it starts
        stay_up(args, server, pending)
    return 0
