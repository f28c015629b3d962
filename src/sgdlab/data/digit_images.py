"""Turn any picture of a handwritten digit into an MNIST-style 784-vector.

MNIST digits are light strokes on a dark background, their strongest ink at
full intensity, scaled to fit a 20x20 box and centred by their centre of mass
in a 28x28 frame. Two entry points share one pipeline: `load_digit_image(path)`
reads a file (a photo turned upright as its EXIF orientation says) and
`digit_from_image(image)` takes a PIL image or an array (a drawing on a web
page's canvas). The pipeline, one function a step:

1. Gray levels in 0..1, transparent areas as white paper (`_brightness`), the
   image scaled down to LARGEST_SIDE at most.
2. What kind of picture it is (`_is_plain`): a *plain* background, its border
   one flat colour (a canvas, a scan, a drawing), or a *photograph* of paper
   under real light (sensor noise, an illumination gradient, shadows, a desk
   around a sticky note).
3. The ink made dark on light: on a plain background the border says which is
   which (`_dark_ink`: a dark border holds a light digit); a photograph's ink
   is darker than the paper it is written on, and the photograph is averaged
   down to PHOTO_SIDE (`_reduced`) and blurred a little (`_blurred`) against
   its noise.
4. The paper's brightness at every pixel (`_paper`): the border's level on a
   plain background; in a photograph the image *closed* (a sliding maximum,
   then minimum, over a window wider than any stroke), which removes the
   strokes but keeps what is larger: the light falling off across the page,
   a shadow, the edges of a note on a desk.
5. The ink level of each pixel (`_ink_levels`): how much darker than its paper
   it is, as a fraction of the paper's brightness, so that a shadow or a
   gradient cancels out and the paper becomes MNIST's black.
6. The digit's ink (`_digit_ink`): the pixels above the paper's own noise
   (`_noise_floor`) form connected pieces, diagonal neighbours included; the
   digit is the pieces holding strong ink (above Otsu's threshold,
   `_otsu_threshold`), except specks far smaller or far away from its main
   piece and, in a photograph, pieces that touch the frame: the desk, a
   shadow's edge, a note's border (`_digit_pieces`).
7. The stroke's typical level brought to full intensity (`_full_intensity`),
   then the crop to the ink, not to the frame, the fit into 20x20 and the
   centring by mass in 28x28 (`_mnist_frame`).

The image processing itself (the filters, the closing, the labelling of the
pieces, their boxes and sizes) is `scipy.ndimage`'s; Pillow reads, converts
and resizes.
"""

import contextlib
import math
import warnings

import numpy as np

from ..errors import CodedError, SgdlabError
from ..fileio import open_regular_file
from .mnist import IMAGE_SHAPE

MNIST_SIDE = IMAGE_SHAPE[0]
DIGIT_BOX = 20
INK_THRESHOLD = 0.2  # fraction of full intensity that counts as part of the stroke when cropping
FAINTEST_INK = 0.1  # ink no darker than this fraction of its paper is noise on a blank page, not a digit
RANGE_PERCENTILE = 99.9  # a deep image's range is judged without its few brightest pixels (a hot pixel, a glint)
LARGEST_SIDE = 2048  # larger images are scaled down first: a 28x28 digit needs no more, and memory stays small
MAX_DECODED_PIXELS = 50_000_000  # an image decoded whole (all but JPEG) may have this many: a phone's photo
MAX_IMAGE_BYTES = 8 * MAX_DECODED_PIXELS  # its file, even stored raw: four channels of 16 bits
PHOTO_SIDE = 1024  # a photograph is averaged down to this longer side: its digit still spans dozens of pixels
PLAIN_SPREAD = 0.03  # a border whose pixels (nine in ten) are this close to its median is one flat colour
CLOSING_WINDOW = 0.15  # the paper is measured over windows this fraction of the shorter side: wider than a stroke
BLUR_RADIUS = 1 / 400  # a photograph is blurred over this fraction of its shorter side against sensor noise
NOISE_SPREADS = 4  # ink starts this many robust standard deviations above the paper's own level
PAPER_FRACTION = 0.8  # a photo's noise is measured where its paper is at least this fraction of the brightest
OTSU_PLATEAU = 0.01  # levels whose split is this close to the best one are as good: Otsu's level is their middle
STROKE_PERCENTILE = 75  # the stroke's level that becomes full intensity (MNIST's cores are saturated)
SPECK_FRACTION = 0.05  # a piece of ink with less than this fraction of the digit's main piece is a speck
NEAR = 0.5  # pieces further from the main one than this fraction of its size belong to something else
READABLE = "use a PNG, JPEG, BMP or similar"
IMAGE_ERRORS = {  # why a file is not read as a digit, `name` the file as the user chose it (the lab page says
    "image.missing": "{name}: no such image file",  # these in its language, by their codes)
    "image.too-large": "{name}: too large to read as an image ({problem}); scale it down first",
    "image.not-an-image": f"{{name}}: cannot read it as an image (not a picture format Pillow knows); {READABLE}",
    "image.unreadable": f"{{name}}: cannot read it as an image ({{problem}}); {READABLE}",
}


class ImageError(CodedError):
    """A file that cannot be read as a digit's image: one of IMAGE_ERRORS."""

    def __init__(self, code, **values):
        super().__init__(IMAGE_ERRORS, code, **values)


def load_digit_image(path, name=None):
    """Read the image at `path` (or in the binary file object `path`, such as an upload's bytes) and return it as a
    (784,) float32 array in [0, 1]. Errors name the file as `name` says (what the user chose: an upload's file
    name), else by its path."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    shown = name if name is not None else path
    try:
        with warnings.catch_warnings():  # Pillow warns of large images; beyond twice that it refuses them, as here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # a damaged file's (TIFF tags, EXIF): it is read or refused
            with _opened(path, shown) as handle, Image.open(handle) as image:
                image = ImageOps.exif_transpose(_read_scaled_down(image))
    except FileNotFoundError:
        raise ImageError("image.missing", name=str(shown)) from None
    except Image.DecompressionBombError as exc:
        raise ImageError("image.too-large", name=str(shown), problem=str(exc)) from None
    except UnidentifiedImageError:  # Pillow's message names the file object it was given, not the file
        raise ImageError("image.not-an-image", name=str(shown)) from None
    except (OSError, ValueError, TypeError) as exc:  # TypeError: a TIFF's damaged tags
        raise ImageError("image.unreadable", name=str(shown), problem=str(exc)) from None
    return digit_from_image(image)


def _opened(path, shown):
    """The image file at `path`, a regular file of at most MAX_IMAGE_BYTES; a file object as it is."""
    if hasattr(path, "read"):
        return contextlib.nullcontext(path)
    return open_regular_file(path, MAX_IMAGE_BYTES, lambda problem: ImageError("image.unreadable", name=str(shown),
                                                                                problem=problem))


def digit_from_image(image):
    """A digit drawn or photographed, as a PIL image or an array, as a (784,) float32 array in [0, 1].

    Arrays are gray levels (height, width) or colours (height, width, 3 or
    4, the last one alpha): uint8 0..255, uint16 0..65535, floats 0..1, or
    booleans (True is white). A PIL image is taken as it is shown: turn a
    photo upright first (`PIL.ImageOps.exif_transpose`), as
    `load_digit_image` does.
    """
    if isinstance(image, np.ndarray):
        image = _image_from_array(image)
    pixels = _brightness(_scaled_down(image))
    plain = _is_plain(pixels)
    pixels = _dark_ink(pixels) if plain else _blurred(_reduced(pixels))  # a photo's ink is darker than its paper
    paper = _paper(pixels, plain)
    ink = _digit_ink(_ink_levels(pixels, paper), paper, plain)
    return _mnist_frame(_full_intensity(ink)).reshape(-1)


def _read_scaled_down(image):
    """`image` read with its longer side at most LARGEST_SIDE (a JPEG decoded at about that size directly)."""
    if image.format == "JPEG":
        image.draft(image.mode, (LARGEST_SIDE, LARGEST_SIDE))
    elif image.width * image.height > MAX_DECODED_PIXELS:  # refused before it is decoded, whole, into memory
        from PIL import Image

        raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels, more than "
                                           f"{MAX_DECODED_PIXELS:,} decoded whole")
    image.load()
    return _scaled_down(image)


def _scaled_down(image):
    """`image` with its longer side at most LARGEST_SIDE: a 28x28 digit needs no more, and memory stays small."""
    if max(image.size) > LARGEST_SIDE:
        image = image.copy()
        image.thumbnail((LARGEST_SIDE, LARGEST_SIDE))
    return image


def _reduced(pixels):
    """A photograph averaged down to PHOTO_SIDE pixels at most: less noise, and the steps below stay quick."""
    from PIL import Image

    height, width = pixels.shape
    scale = PHOTO_SIDE / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))


def _image_from_array(array):
    """A PIL image of `array`'s pixels, so that arrays and files take the same path (alpha, deep grey levels)."""
    from PIL import Image

    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise SgdlabError(f"cannot read an array of shape {array.shape} as an image: give (height, width) gray "
                          "levels or (height, width, 3 or 4) colours")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):  # 0..1; gray levels keep their depth, colours become 8-bit
        levels = np.nan_to_num(array.astype(np.float32), nan=0.0)
        array = levels if array.ndim == 2 else np.round(np.clip(levels, 0.0, 1.0) * 255).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer) and array.ndim == 2 and array.dtype not in (np.uint8, np.uint16):
        array = np.clip(array, 0, np.iinfo(np.int32).max).astype(np.int32)  # read as a deep image's levels
    elif array.dtype != np.uint8 and not (array.dtype == np.uint16 and array.ndim == 2):
        raise SgdlabError(f"cannot read an array of {array.dtype} with shape {array.shape} as an image: give "
                          "uint8 or floats, or uint16 or other integers for gray levels")
    return Image.fromarray(np.ascontiguousarray(array))


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


def _border(pixels):
    """The pixels of the image's four edges: mostly paper (or screen), whatever the digit."""
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


def _is_plain(pixels):
    """Whether the border is one flat colour: a canvas or a scan, whose background needs no estimating."""
    border = _border(pixels)
    return float(np.percentile(np.abs(border - np.median(border)), 90)) <= PLAIN_SPREAD


def _dark_ink(pixels):
    """A plain picture with its ink darker than its background: a dark border holds a light digit."""
    return 1.0 - pixels if np.median(_border(pixels)) <= 0.5 else pixels


def _paper(pixels, plain):
    """The paper's brightness under each pixel, had nothing been written on it: what the ink is measured against.

    A photograph's paper is its closing: the brightest level within half a
    window, then the darkest of those, which fills every stroke narrower than
    the window and follows anything wider (a gradient, a shadow, a desk).
    """
    from scipy import ndimage

    if plain:
        return np.full_like(pixels, np.median(_border(pixels)))
    window = max(3, round(CLOSING_WINDOW * min(pixels.shape)))
    extended = np.pad(pixels, window, mode="edge")  # the closing sees the paper go on beyond the frame
    closed = ndimage.minimum_filter(ndimage.maximum_filter(extended, window), window)
    return closed[window:-window, window:-window]


def _blurred(pixels):
    """`pixels` blurred by two box filters (nearly a Gaussian): sensor noise and JPEG blocks averaged out."""
    from scipy import ndimage

    side = 2 * round(BLUR_RADIUS * min(pixels.shape)) + 1
    return ndimage.uniform_filter(ndimage.uniform_filter(pixels, side, mode="nearest"), side, mode="nearest")


def _ink_levels(pixels, paper):
    """How much darker than its paper each pixel is, as a fraction of the paper's brightness (0 is no ink)."""
    ink = np.divide(paper - pixels, paper, out=np.zeros_like(pixels), where=paper > 0)
    return np.clip(ink, 0.0, 1.0)


def _digit_ink(ink, paper, plain):
    """The ink levels of the digit alone, above the paper's noise, with specks and clutter removed."""
    from scipy import ndimage

    floor = 0.0 if plain else _noise_floor(ink, paper)
    candidates = ink > floor
    if not candidates.any():
        return np.zeros_like(ink)
    strong = np.maximum(max(_otsu_threshold(ink[candidates]), FAINTEST_INK), floor)
    labels, count = ndimage.label(candidates, structure=np.ones((3, 3)))  # 8-connected: diagonals touch
    keep = np.zeros(count + 1, dtype=bool)  # label 0 is the paper
    keep[1:] = _digit_pieces(labels, count, np.where(ink > strong, ink, 0.0), plain)
    return np.where(keep[labels], ink, 0.0).astype(np.float32)


def _noise_floor(ink, paper):
    """The level that bare paper stays under, per pixel: NOISE_SPREADS robust standard deviations above its median.

    The noise is measured in grey levels on the brightest paper (the page the
    digit is written on, not a dark desk whose texture would count as noise)
    and taken as the same number of grey levels everywhere, so a darker part
    (a shadow, the desk) needs a larger fraction of its brightness to be ink.
    """
    bright = paper >= PAPER_FRACTION * np.percentile(paper, 99)
    darkness = (ink * paper)[bright]
    median = float(np.median(darkness))
    spread = 1.4826 * float(np.median(np.abs(darkness - median)))  # the MAD, scaled to a Gaussian's sigma
    return (median + NOISE_SPREADS * spread) / np.maximum(paper, 1e-6)


def _otsu_threshold(values):
    """The level that best splits `values` in two (Otsu's method): strong ink apart from faint smudges."""
    top = float(values.max())
    counts, edges = np.histogram(values, bins=256, range=(0.0, top if top > 0 else 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1]
    above = values.size - below
    mass_below = np.cumsum(counts * centres)[:-1]
    mean_below = mass_below / np.maximum(below, 1)
    mean_above = (mass_below[-1] + counts[-1] * centres[-1] - mass_below) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    best = np.flatnonzero(between >= (1 - OTSU_PLATEAU) * between.max())  # any level in a gap splits alike:
    return float(edges[1 + best[0]] + edges[1 + best[-1]]) / 2  # take the middle of the gap


def _digit_pieces(labels, count, strong_ink, plain):
    """Which pieces 1..count are the digit: strong ink, no specks, near the main one; in a photo, off the frame.

    A piece's size is its strong ink, so that a wide, faint smudge (the grain
    of a desk) never outweighs the digit.
    """
    from scipy import ndimage

    mass = ndimage.sum_labels(strong_ink, labels, index=np.arange(1, count + 1))
    top, bottom, left, right = _boxes(labels)
    height, width = labels.shape
    on_frame = (top == 0) | (left == 0) | (bottom == height - 1) | (right == width - 1)
    candidate = (mass > 0) & (plain | ~on_frame)
    if not candidate.any():
        return candidate
    main = int(np.argmax(np.where(candidate, mass, -1.0)))
    reach = NEAR * max(bottom[main] - top[main], right[main] - left[main])
    near = ((bottom >= top[main] - reach) & (top <= bottom[main] + reach)
            & (right >= left[main] - reach) & (left <= right[main] + reach))
    return candidate & near & (mass >= SPECK_FRACTION * mass[main])


def _boxes(labels):
    """The bounding boxes of the labelled pieces 1, 2, ...: top, bottom, left and right arrays (inclusive)."""
    from scipy import ndimage

    boxes = [(rows.start, rows.stop - 1, cols.start, cols.stop - 1) for rows, cols in ndimage.find_objects(labels)]
    return np.array(boxes).T


def _full_intensity(ink):
    """The ink scaled so that the stroke's typical level (not a noisy maximum) is 1, as in MNIST."""
    strokes = ink[ink > 0]
    if strokes.size == 0:
        return ink
    return np.clip(ink / np.percentile(strokes, STROKE_PERCENTILE), 0.0, 1.0)


def _mnist_frame(pixels):
    """Crop to the ink, fit it in a 20x20 box and centre its mass in a 28x28 frame."""
    from PIL import Image
    from scipy import ndimage

    frame = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    ink = pixels > INK_THRESHOLD
    if not ink.any():
        return frame
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    pixels = pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = pixels.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(pixels.astype(np.float32)).resize(size, Image.Resampling.LANCZOS))
    digit = np.clip(digit, 0.0, 1.0)

    centre_y, centre_x = ndimage.center_of_mass(digit)
    top = int(np.clip(round(MNIST_SIDE / 2 - 0.5 - centre_y), 0, MNIST_SIDE - digit.shape[0]))
    left = int(np.clip(round(MNIST_SIDE / 2 - 0.5 - centre_x), 0, MNIST_SIDE - digit.shape[1]))
    frame[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return frame
