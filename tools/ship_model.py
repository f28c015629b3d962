"""Make the model sgdlab ships (src/sgdlab/models/deep_convnet.npz) from a finished run's folder.

    python tools/ship_model.py RUN_DIR [--out src/sgdlab/models/deep_convnet.npz] [--data-dir DIR]

The run is one of `sgdlab train --net deep-convnet` (its command and seed go into the file); its weights are
stored in float16 if that keeps the test accuracy. Prints what it wrote.
"""

import argparse
import sys
from pathlib import Path

from sgdlab.data import load_mnist
from sgdlab.errors import SgdlabError
from sgdlab.runs.shipped_model import make_shipped_model

SOURCE_TREE_MODEL = Path(__file__).resolve().parents[1] / "src" / "sgdlab" / "models" / "deep_convnet.npz"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=SOURCE_TREE_MODEL, help=f"default {SOURCE_TREE_MODEL}")
    parser.add_argument("--data-dir", type=Path, help="the MNIST folder (default: as sgdlab train finds it)")
    args = parser.parse_args(argv)
    try:
        _, test_set = load_mnist(normalize=False, data_dir=args.data_dir)
        origin = make_shipped_model(args.run_dir, args.out, test_set)
    except SgdlabError as exc:
        parser.exit(1, f"ship_model: error: {exc}\n")
    print(f"{args.out}: {args.out.stat().st_size:,} bytes, weights in {origin['stored_dtype']}, test acc "
          f"{origin['test_acc']:.4f} ({origin['test_acc_float16_weights']:.4f} with float16 weights), trained by: "
          f"{origin['command']}" + (f" ({origin['stopped']})" if origin["stopped"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
