"""Turn any image of a handwritten digit into an MNIST-style 784-vector.

MNIST digits are light strokes on a dark background, their strongest ink at
full intensity, scaled to fit a 20x20 box and centred by their centre of
mass in a 28x28 frame. A photo is turned upright as its EXIF orientation
says; an image with a light background (a dark digit on paper) is inverted,
and the background's own level is subtracted, so grey paper becomes black;
then faint strokes (pencil, a dim photo) are brightened to full intensity.
"""

import math
import warnings

import numpy as np

from ..errors import SgdlabError
from .mnist import IMAGE_SHAPE

MNIST_SIDE = IMAGE_SHAPE[0]
DIGIT_BOX = 20
INK_THRESHOLD = 0.2  # fraction of full intensity that counts as part of the stroke
FAINTEST_INK = 0.1  # a brightest pixel below this, once the background is removed, is noise on a blank page
RANGE_PERCENTILE = 99.9  # a deep image's range is judged without its few brightest pixels (a hot pixel, a glint)
LARGEST_SIDE = 2048  # larger images are scaled down first: a 28x28 digit needs no more, and memory stays small


def load_digit_image(path):
    """Read the image at `path` and return it as a (784,) float32 array in [0, 1]."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns of large images; beyond twice that it refuses them, as here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                pixels = _brightness(ImageOps.exif_transpose(_scaled_down(image)))
    except FileNotFoundError:
        raise SgdlabError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as exc:
        raise SgdlabError(f"{path}: too large to read as an image ({exc}); scale it down first") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SgdlabError(f"{path}: cannot read it as an image ({exc}); use a PNG, JPEG, BMP or similar") from None
    if _has_light_background(pixels):
        pixels = 1.0 - pixels
    pixels = np.clip(pixels - _background_level(pixels), 0.0, 1.0)  # grey paper becomes MNIST's black
    peak = float(pixels.max())
    if peak >= FAINTEST_INK:
        pixels /= peak
    return _mnist_frame(pixels).reshape(-1)


def _scaled_down(image):
    """`image` read with its longer side at most LARGEST_SIDE (a JPEG decoded at about that size directly)."""
    if image.format == "JPEG":
        image.draft(image.mode, (LARGEST_SIDE, LARGEST_SIDE))
    image.load()
    if max(image.size) > LARGEST_SIDE:
        image = image.copy()
        image.thumbnail((LARGEST_SIDE, LARGEST_SIDE))
    return image


def _brightness(image):
    """Gray levels as float32 in 0..1; transparent areas (alpha or a transparent colour) become white paper."""
    from PIL import Image

    if image.mode in ("I", "F") or image.mode.startswith("I;16"):  # convert("L") would clip these at 255
        return _deep_brightness(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _deep_brightness(image):
    """Gray levels of a 16-bit, 32-bit or floating-point image, scaled from the range its pixels span.

    16-bit images span 0..65535; floating-point ones usually 0..1. Other
    pixels are taken as whole bits of data (8, 12, 16...): the fewest bits that
    hold nearly every pixel, the rest clipped to white. A transparent value
    counts as white paper.
    """
    values = _finite(np.asarray(image, dtype=np.float32))
    bright = float(np.percentile(values, RANGE_PERCENTILE))
    if image.mode.startswith("I;16"):
        full = 65535.0
    elif image.mode == "F" and bright <= 1.0:
        full = 1.0
    else:
        full = 2.0 ** max(8, math.ceil(math.log2(bright + 1))) - 1
    levels = np.clip(values / full, 0.0, 1.0)
    transparent = image.info.get("transparency")
    if isinstance(transparent, (int, float)):
        levels[np.asarray(image) == transparent] = 1.0
    return levels


def _finite(values):
    """`values` with NaN (no data) as the image's median, infinities as its extremes."""
    finite = values[np.isfinite(values)]
    if finite.size == values.size:
        return values
    if finite.size == 0:
        return np.zeros_like(values)
    return np.nan_to_num(values, nan=np.median(finite), posinf=finite.max(), neginf=finite.min())


def _background_level(pixels):
    """The median of the border pixels: the paper's (or screen's) brightness."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(np.median(border))


def _has_light_background(pixels):
    return _background_level(pixels) > 0.5


def _mnist_frame(pixels):
    """Crop to the ink, fit it in a 20x20 box and centre its mass in a 28x28 frame."""
    from PIL import Image

    ink = pixels > INK_THRESHOLD * max(float(pixels.max()), 1e-6)
    if ink.any():
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        pixels = pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = pixels.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(pixels.astype(np.float32)).resize(size, Image.Resampling.LANCZOS))
    digit = np.clip(digit, 0.0, 1.0)

    frame = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    total = digit.sum()
    if total > 0:
        ys, xs = np.indices(digit.shape)
        centre_y, centre_x = (ys * digit).sum() / total, (xs * digit).sum() / total
    else:
        centre_y, centre_x = (digit.shape[0] - 1) / 2, (digit.shape[1] - 1) / 2
    top = int(np.clip(round(MNIST_SIDE / 2 - 0.5 - centre_y), 0, MNIST_SIDE - digit.shape[0]))
    left = int(np.clip(round(MNIST_SIDE / 2 - 0.5 - centre_x), 0, MNIST_SIDE - digit.shape[1]))
    frame[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return frame
