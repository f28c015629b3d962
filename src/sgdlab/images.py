"""Turn any image of a handwritten digit into an MNIST-style 784-vector.

MNIST digits are light strokes on a dark background, scaled to fit a 20x20
box and centred by their centre of mass in a 28x28 frame. An image with a
light background (a dark digit on paper) is inverted first, and the
background's own level is subtracted, so grey paper becomes black.
"""

import numpy as np

from .errors import SgdlabError

MNIST_SIDE = 28
DIGIT_BOX = 20
INK_THRESHOLD = 0.2  # fraction of full intensity that counts as part of the stroke


def load_digit_image(path):
    """Read the image at `path` and return it as a (784,) float32 array in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            gray = _to_grayscale(image)
    except FileNotFoundError:
        raise SgdlabError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as exc:
        raise SgdlabError(f"{path}: too large to read as an image ({exc}); scale it down first") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SgdlabError(f"{path}: cannot read it as an image ({exc}); use a PNG, JPEG, BMP or similar") from None
    pixels = np.asarray(gray, dtype=np.float32) / 255.0
    if _has_light_background(pixels):
        pixels = 1.0 - pixels
    pixels = np.clip(pixels - _background_level(pixels), 0.0, 1.0)  # grey paper becomes MNIST's black
    return _mnist_frame(pixels).reshape(-1)


def _to_grayscale(image):
    """8-bit grayscale; transparent areas become white paper, as when the image is shown."""
    from PIL import Image

    if image.mode.startswith("I;16"):  # convert("L") would clip 16-bit values at 255, not scale them
        return Image.fromarray(np.round(np.asarray(image, dtype=np.float32) / 257).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return image.convert("L")


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
