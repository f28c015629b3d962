"""`sgdlab predict`: the digit a saved model reads in each image, and its probability."""

import sys

from ..errors import SgdlabError
from .arguments import path_given
from .output import EXIT_ERROR


def add_to(commands):
    parser = commands.add_parser(
        "predict", help="classify images of handwritten digits",
        description="Print the predicted digit and its probability for each image. Images of any size and "
                    "format are converted to 28x28 grayscale the way MNIST digits look: a light digit on a "
                    "dark background. An image with a light background (a dark digit on paper) is therefore "
                    "inverted, then the digit is cropped, scaled into a 20x20 box and centred. Without MODEL.npz (a "
                    "first name that does not end in .npz is an image), the model shipped with sgdlab reads them, or "
                    "the one $SGDLAB_MODEL names.")
    parser.add_argument("model", type=path_given, nargs="?", metavar="MODEL.npz")
    parser.add_argument("images", type=path_given, nargs="+", metavar="IMAGE")
    return parser


def run(args):
    import numpy as np

    from ..data.digit_images import load_digit_image
    from ..runs.model_file import load_mnist_model

    from ..runs.shipped_model import default_model

    model, images = args.model, args.images
    if model is not None and model.suffix != ".npz":  # an image: argparse gives the first name to MODEL
        model, images = None, [model, *images]
    if model is None:
        model, what = default_model()
        print(f"sgdlab predict: no model given: using {what}, {model}", file=sys.stderr)
    network = load_mnist_model(model)
    failures = 0
    for path in images:
        try:
            pixels = load_digit_image(path)
            if not pixels.any():
                raise SgdlabError(f"{path}: no digit found (a blank page, or ink only at the image's edges)")
        except SgdlabError as exc:
            print(f"sgdlab predict: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        probabilities = network.predict(pixels[np.newaxis].astype(network.dtype))[0]
        digit = int(probabilities.argmax())
        print(f"{path}: {digit} (probability {probabilities[digit]:.3f})")
    return EXIT_ERROR if failures else 0
