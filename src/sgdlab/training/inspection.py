"""A network looked into, as the lab page and a run's report.html show it: what its hidden units (a dense
net's) or its convolutions' filters (a convolutional net's) learned, where it errs on the test set,
whether its two gradients agree, and how it reads one digit (for a convolutional net, what each filter of
each convolution makes of it: its feature maps).

Each function takes a network that nothing else is using (a copy: the
layers keep what their forward pass computed, so a network in training must
not be run from another thread) and returns plain JSON values, images as
PNG data URLs.
"""

import base64
import io

import numpy as np

from ..data.mnist import IMAGE_SHAPE, NUM_CLASSES
from ..data.scaling import to_float
from ..engine.forward import ForwardPass
from ..engine.gradcheck import gradient_check
from ..nn.functions import softmax
from ..nn.layers import ActivationLayer
from ..nn.network import network_from_architecture
from .evaluation import CHUNK_BYTES, chunk_rows

GALLERY_SIZE = 32  # misclassified test digits shown, the most confident mistakes first
GRADIENT_BATCH = 5  # training images the live gradient check differentiates
PAGE_MASKS_SEED = 27  # the dropout masks of that check: the same at every look, so that its figures follow the weights alone
# a convolutional net's: the page's stream waits for the check, which on a trained SimpleConvNet takes 0.6 to 0.7 s
# for 2 images and 2.4 to 6 s for 5 (2 cores at a load average of 8 to 11; a dense net's 5 take 0.03 s)
CONV_GRADIENT_BATCH = 2
# The page checks the gradient at every evaluation, so in seconds: the fast numerical gradient carries each nudge
# of a later convolution's weights through the rest of the net, and the book's DeepConvNet (71,424 weights in its
# convolutions after the first) took 266 s for 2 images, its 4-filter version (4,464) 3 to 8 s. A net of more
# is checked on a sample of each parameter's entries (the shipped DeepConvNet: 1.3 s for 10 each at a load of 8).
PAGE_GRADIENT_LATER_CONVOLUTION_WEIGHTS = 10_000
PAGE_GRADIENT_ENTRIES = 10
STRIP_SIZE = 24  # test digits in the page's strip of the network's current guesses (ConvNetJS's MNIST demo has one)
STRIP_SEED = 25  # which ones: the same for every run and evaluation, so that a learner watches the guesses change
HISTOGRAM_IMAGES = 1000  # test images whose activations the page's histograms count (the book's 6.2 draws 1000)
CONV_HISTOGRAM_IMAGES = 100  # a convolutional net's: their feature maps are already hundreds of thousands of values
HISTOGRAM_BINS = 30  # as the book's figures 6-10 to 6-14
TILE_GAP = 1  # pixels between two tiles of a grid
FILTER_COLUMNS = 8  # filters (and feature maps) a row, as the book's filter_show lays them out
GRID_GAP_COLOUR = (0.62, 0.7, 0.8)  # between filters and feature maps, whose own greys run from black to white
PATTERN_IMAGES = 500  # test images searched for what drives each deeper filter most (`strongest_inputs`)
PATTERN_CHUNK = 20  # of them through the book's layers at a time: their columns take up to 0.9 MB an image
# (DeepConvNet's second convolution, 16 channels of 3x3 windows at 28x28), so about 20 MB a chunk


def png_data_url(pixels):
    """A data URL of the PNG of `pixels`: an (H, W) array of grey levels in 0..1, or (H, W, 3) RGB."""
    from PIL import Image

    image = Image.fromarray(np.clip(np.asarray(pixels) * 255, 0, 255).round().astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def diverging_colours(values, scale):
    """Blue for negative values, white for zero, red for positive, full at +-`scale`: the sign of a weight
    shows which pixels push a unit on and which push it off."""
    level = np.clip(np.asarray(values, dtype=np.float64) / max(scale, 1e-12), -1.0, 1.0)[..., None]
    white, red, blue = np.ones(3), np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.3, 0.8])
    return np.where(level >= 0, white + level * (red - white), white - level * (blue - white))


def image_grid(tiles, columns, gap_colour=(1.0, 1.0, 1.0)):
    """Equal (H, W, 3) RGB tiles, `columns` a row, TILE_GAP pixels of `gap_colour` between them, as one RGB image."""
    count, height, width, _ = tiles.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    grid = np.empty((rows * (height + TILE_GAP) - TILE_GAP, columns * (width + TILE_GAP) - TILE_GAP, 3))
    grid[...] = gap_colour
    for k, tile in enumerate(tiles):
        top, left = (k // columns) * (height + TILE_GAP), (k % columns) * (width + TILE_GAP)
        grid[top:top + height, left:left + width] = tile
    return grid


def grey(levels):
    """Grey levels in 0..1 as RGB."""
    return np.repeat(np.asarray(levels, dtype=np.float64)[..., None], 3, axis=-1)


def hidden_unit_weights(network, columns=10):
    """A dense net's first-layer incoming weights, one 28x28 tile per hidden unit, as one PNG grid (a data URL);
    None for a network whose first layer is not an affine layer of MNIST's 784 pixels."""
    first = network.layers[0]
    if first not in fully_connected(network) or first.W.shape[0] != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        return None
    weights = np.asarray(first.W, dtype=np.float64)
    tiles = [diverging_colours(unit.reshape(IMAGE_SHAPE), np.abs(unit).max()) for unit in weights.T]
    return png_data_url(image_grid(np.stack(tiles), columns))


def fully_connected(network):
    """The network's affine layers, known by what they declare: a weight `W` of two dimensions (inputs, outputs)."""
    return [layer for layer in network.layers if "W" in layer.parameter_names and np.ndim(getattr(layer, "W", None)) == 2]


def convolutions(network):
    """The positions of the network's convolutions among its layers, known by what they declare: a weight `W`
    of four dimensions (filters, channels, height, width)."""
    return [k for k, layer in enumerate(network.layers)
            if "W" in layer.parameter_names and np.ndim(getattr(layer, "W", None)) == 4]


def first_convolution(network):
    """The position of the network's first convolution among its layers; None for a net without one."""
    return next(iter(convolutions(network)), None)


def first_layer_filters(network, columns=FILTER_COLUMNS):
    """The first convolution's filters as small grey images in one PNG grid (a data URL), as the book draws
    them in figure 7-24 (ch07/visualize_filter.py): see `filters_grid`. Random speckle before training; edges
    and blobs after. None for a network without convolutions."""
    position = first_convolution(network)
    return None if position is None else png_data_url(filters_grid(network.layers[position].W, columns))


def strongest_inputs(network, images, start=1, columns=FILTER_COLUMNS):
    """What drives each filter of the network's convolutions from the `start`-th (1: all but the first, whose
    weights `first_layer_filters` draws): among `images` (uint8 or float pixels), the patch of the image where
    the filter's output is largest, cut to the pixels that output sees (its receptive field, from the layers'
    `window`s; beyond the image's edge, the padding's black), one small grey image per filter, `columns` a row.
    A deeper filter's weights mix every channel of the layer before, so drawing them shows little; the digit
    strokes that excite it most show what it has learned to find. [{"convolution": its number (1 on),
    "filters", "channels", "size": (FH, FW), "field": the patch's (height, width), "images": how many were
    searched, "image": a PNG data URL, "width", "height": its pixels}]."""
    positions = convolutions(network)[start:]
    if not positions or len(images) == 0:
        return []
    best = {k: _Strongest(network.layers[k].W.shape[0]) for k in positions}
    rows = max(1, min(PATTERN_CHUNK, ForwardPass.rows_within(network, CHUNK_BYTES)))
    for first in range(0, len(images), rows):
        x = network.as_input(_pixels(images[first:first + rows], network.dtype))
        for k, layer in enumerate(network.layers[:positions[-1] + 1]):
            x = layer.forward(x, False) if layer.uses_train_flg else layer.forward(x)
            if k in best:
                best[k].update(x, first)
    pictures = np.asarray(images).reshape(len(images), *network.input_shape)
    found = []
    for number, k in enumerate(positions, start=start + 1):
        W, fields = network.layers[k].W, [receptive_field(network.layers[:k + 1], *at[1:]) for at in best[k].where]
        patches = np.stack([_patch(_pixels(pictures[at[0]], np.float64), field)
                            for at, field in zip(best[k].where, fields)])
        grid = image_grid(grey(patches.mean(axis=1)), columns, GRID_GAP_COLOUR)  # an image's channels averaged
        found.append({"convolution": number, "filters": int(W.shape[0]), "channels": int(W.shape[1]),
                      "size": [int(W.shape[2]), int(W.shape[3])], "field": list(patches.shape[2:]),
                      "images": len(images), "image": png_data_url(grid), "width": grid.shape[1],
                      "height": grid.shape[0]})
    return found


class _Strongest:
    """Each filter's largest output so far, and where: (image, row, column)."""

    def __init__(self, filters):
        self.value = np.full(filters, -np.inf)
        self.where = np.zeros((filters, 3), dtype=np.int64)

    def update(self, outputs, first):
        """Take a chunk's outputs (N, F, OH, OW), its first image being `first` of all."""
        flat = np.asarray(outputs, dtype=np.float64).transpose(1, 0, 2, 3).reshape(outputs.shape[1], -1)
        at = np.nan_to_num(flat, nan=-np.inf).argmax(axis=1)
        value = flat[np.arange(len(flat)), at]
        better = value > self.value
        self.value[better] = value[better]
        image, row, column = np.unravel_index(at[better], (outputs.shape[0], *outputs.shape[2:]))
        self.where[better] = np.stack([image + first, row, column], axis=1)


def receptive_field(layers, row, column):
    """The input pixels that output position (`row`, `column`) of the last of `layers` sees: ((top, bottom),
    (left, right)), inclusive, in the first layer's input (beyond its edges where the layers pad), each layer's
    `window` (height, width, stride, pad) widening it, from the last layer back to the first."""
    (top, bottom), (left, right) = (row, row), (column, column)
    for layer in reversed(layers):
        height, width, stride, pad = layer.window
        top, bottom = top * stride - pad, bottom * stride - pad + height - 1
        left, right = left * stride - pad, right * stride - pad + width - 1
    return (top, bottom), (left, right)


def _patch(picture, field):
    """`picture` (C, H, W) cut to `field` ((top, bottom), (left, right)), zero (black) beyond its edges."""
    (top, bottom), (left, right) = field
    _, H, W = picture.shape
    patch = np.zeros((picture.shape[0], bottom - top + 1, right - left + 1))
    rows, cols = slice(max(top, 0), min(bottom, H - 1) + 1), slice(max(left, 0), min(right, W - 1) + 1)
    patch[:, rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = picture[:, rows, cols]
    return patch


def filters_grid(W, columns=FILTER_COLUMNS):
    """A convolution's weights `W` (FN, C, FH, FW) as small grey images, each filter scaled to its own range
    (its largest weight black, its smallest white): one filter a tile, `columns` a row, for one input channel
    (the book's figure 7-24); else a row per filter, a tile per input channel, so that every weight shows."""
    filters = np.asarray(W, dtype=np.float64)
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    span = filters.max(axis=(1, 2, 3), keepdims=True) - low
    levels = 1.0 - (filters - low) / np.maximum(span, 1e-12)
    channels = filters.shape[1]
    tiles = levels[:, 0] if channels == 1 else levels.reshape(-1, *filters.shape[2:])
    return image_grid(grey(tiles), columns if channels == 1 else channels, GRID_GAP_COLOUR)


class DigitPictures:
    """The digits of `images` as PNG data URLs, each encoded when first asked for and then kept: the page's
    strip and mistakes show the same test digits inspection after inspection (at most one URL per image)."""

    def __init__(self, images):
        self.images, self._urls = images, {}

    def __getitem__(self, index):
        if index not in self._urls:
            self._urls[index] = png_data_url(_pixels(self.images[index]).reshape(IMAGE_SHAPE))
        return self._urls[index]


def test_set_errors(network, x_test, t_test, shown=GALLERY_SIZE, probabilities=None, pictures=None):
    """The confusion matrix (rows: true digit, columns: predicted), accuracy per digit, and a gallery of the
    `shown` most confident mistakes (from the network's test `probabilities`, where given; their images from
    `pictures`, a `DigitPictures` of `x_test`, where given)."""
    pictures = pictures if pictures is not None else DigitPictures(x_test)
    if probabilities is None:
        probabilities = predict_in_batches(network, x_test)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (t_test, predicted), 1)
    per_digit = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    wrong = np.flatnonzero(predicted != t_test)
    confidence = probabilities[wrong, predicted[wrong]]
    shown = wrong[np.argsort(-confidence, kind="stable")[:shown]]
    gallery = [{"index": int(i), "label": int(t_test[i]), "predicted": int(predicted[i]),
                "probability": float(probabilities[i, predicted[i]]),
                "image": pictures[int(i)]} for i in shown]
    return {"confusion": confusion.tolist(), "per_digit": per_digit.tolist(), "errors": int(len(wrong)),
            "gallery": gallery}


def strip_indices(test_images, size=STRIP_SIZE):
    """The test images of the strip: `size` of `test_images`, drawn by `STRIP_SEED`, in the test set's order."""
    return np.sort(np.random.default_rng(STRIP_SEED).choice(test_images, min(size, test_images), replace=False))


def guesses_strip(probabilities, x_test, t_test, pictures=None):
    """The network's current guesses on the strip's test digits (`strip_indices`), from its test `probabilities`
    (those `test_set_errors` counts from): each one's index, label, guess, its probability, and the digit as a
    PNG data URL (from `pictures`, a `DigitPictures` of `x_test`, where given)."""
    pictures = pictures if pictures is not None else DigitPictures(x_test)
    return [{"index": int(i), "label": int(t_test[i]), "predicted": int(probabilities[i].argmax()),
             "probability": float(probabilities[i].max()), "image": pictures[int(i)]}
            for i in strip_indices(len(x_test))]


def gradient_images(network):
    """How many training images the live gradient check differentiates for `network`."""
    return CONV_GRADIENT_BATCH if first_convolution(network) is not None else GRADIENT_BATCH


def page_gradient_entries(network):
    """How many entries of each parameter the page's gradient check differentiates: all (None) where that
    takes seconds, at most `PAGE_GRADIENT_LATER_CONVOLUTION_WEIGHTS` weights in its convolutions after the
    first; else a sample of `PAGE_GRADIENT_ENTRIES` (`gradcheck.sampled_entries`)."""
    later = convolutions(network)[1:]
    small = sum(network.layers[k].W.size for k in later) <= PAGE_GRADIENT_LATER_CONVOLUTION_WEIGHTS
    return None if small else PAGE_GRADIENT_ENTRIES


def gradient_agreement(network, x_train, t_train):
    """Numerical against backprop gradient on the first few training images (`gradient_images`), with the
    network's current weights in float64: the largest relative difference per parameter, how many entries
    were left out because their nudge crosses a kink, and whether the gradient is zero (rounding noise on both
    sides), as `sgdlab gradcheck` reports them; of a large net, on a sample of entries (`page_gradient_entries`),
    each parameter's `sampled` saying how many (None: all)."""
    images, entries = gradient_images(network), page_gradient_entries(network)
    network = float64_copy(network)
    for k, layer in enumerate(network.dropout_layers):
        layer.rng = np.random.default_rng((PAGE_MASKS_SEED, k))
    x, t = _pixels(x_train[:images], np.float64), t_train[:images]
    return [{"name": check.name, "max_rel_error": check.max_rel_error, "max_abs_diff": check.max_abs_diff,
             "kinks": check.kinks, "size": check.size, "sampled": check.sampled, "passed": check.passed,
             "checked": check.checked, "is_zero": check.is_zero}
            for check in gradient_check(network, x, t, entries=entries)]


def layer_outputs(network, pixels):
    """Each layer's output for images (`pixels`: one image's 784 values in any shape, or rows of them) at test
    time, in order."""
    x = network.as_input(np.asarray(pixels, dtype=network.dtype).reshape(-1, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]))
    outputs = []
    for layer in network.layers:
        x = layer.forward(x, False) if layer.uses_train_flg else layer.forward(x)
        outputs.append(x)
    return outputs


def read_digit(network, pixels):
    """How `network` reads one 784-pixel image: the ten probabilities, each hidden affine layer's outputs after
    its activation (`hidden_layers`; empty without one), and, for a convolutional net, every convolution's
    feature maps (`feature_maps`; None for a dense net)."""
    outputs = layer_outputs(network, pixels)
    probabilities = softmax(outputs[-1])[0]
    return {"probabilities": probabilities.astype(float).tolist(), "prediction": int(probabilities.argmax()),
            "hidden_layers": [{"layer": number, "activation": name, "values": np.asarray(values[0], float).tolist()}
                              for number, name, values in hidden_layer_outputs(network, outputs)],
            "feature_maps": feature_maps(network, outputs)}


def hidden_layer_outputs(network, outputs):
    """Of the layers' `outputs`, each hidden affine layer's after its activation (the first one after it, before
    the next affine layer): [(the affine layer's number among them, 1 on, the activation's name, its outputs)].
    The output layer, which no activation follows, is none of them."""
    dense = fully_connected(network)
    positions = [k for k, layer in enumerate(network.layers) if layer in dense]
    found = []
    for number, (start, end) in enumerate(zip(positions, [*positions[1:], len(network.layers)]), start=1):
        activation = next((k for k in range(start + 1, end) if isinstance(network.layers[k], ActivationLayer)), None)
        if activation is not None:
            found.append((number, _layer_name(network.layers[activation]), outputs[activation]))
    return found


def activation_histograms(network, x_test):
    """The book's 6.2 histograms of the network as it is now: the distribution of every activation layer's
    outputs over a fixed batch of test images (the first `HISTOGRAM_IMAGES`; `CONV_HISTOGRAM_IMAGES` for a
    convolutional net, whose feature maps are many values an image), in `HISTOGRAM_BINS` bins over 0..1 as the
    book's (widened to the outputs beyond: relu's above 1, tanh's below 0). Each {"after": the kind of the layer
    it follows ("affine", "convolution"), "number": that layer's number among its kind (1 on), "activation": its
    name, "range": [low, high], "counts": per bin, "values": how many values (the non-finite left out)}."""
    images = CONV_HISTOGRAM_IMAGES if first_convolution(network) is not None else HISTOGRAM_IMAGES
    outputs = layer_outputs(network, _pixels(x_test[:images], network.dtype))
    kinds = (("affine", fully_connected(network)), ("convolution", [network.layers[k] for k in convolutions(network)]))
    found, after = [], None
    for layer, output in zip(network.layers, outputs):
        after = next(((kind, layers.index(layer) + 1) for kind, layers in kinds if layer in layers), after)
        if not isinstance(layer, ActivationLayer) or after is None:
            continue
        values = np.asarray(output, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        low = min(0.0, values.min()) if values.size else 0.0
        high = max(1.0, values.max()) if values.size else 1.0
        counts, _ = np.histogram(values, HISTOGRAM_BINS, (low, high))
        found.append({"after": after[0], "number": after[1], "activation": _layer_name(layer), "range": [low, high],
                      "counts": counts.tolist(), "values": int(values.size)})
    return found


def feature_maps(network, outputs, columns=FILTER_COLUMNS):
    """What each filter of every convolution makes of the image (the layers' `outputs`): its feature map after
    the layers that follow the convolution up to a pooling (its activation), then after that pooling, each
    stage {"convolution": the convolution's number (1 on), "layers": their kinds, "image": a PNG data URL,
    "width", "height": its pixels}, one small image per filter laid out as in `first_layer_filters`. One scale
    for a convolution's stages: grey from black (0) to white (the largest output) for outputs that are never
    negative (relu's), red and blue for signed ones. None for a network without convolutions."""
    positions = convolutions(network)
    if not positions:
        return None
    found, dense = [], fully_connected(network)
    for number, start in enumerate(positions, start=1):
        end = next((k for k in range(start + 1, len(network.layers))
                    if k in positions or network.layers[k] in dense), len(network.layers))
        pooling = next((k for k in range(start, end) if network.layers[k].takes_max), None)  # a max pooling
        stages = [(start, end - 1)] if pooling is None else [(start, pooling - 1), (pooling, end - 1)]
        maps = [np.asarray(outputs[last][0], dtype=np.float64) for _, last in stages]
        low, high = min(values.min() for values in maps), max(values.max() for values in maps)
        for (first, last), values in zip(stages, maps):
            tiles = grey(values / max(high, 1e-12)) if low >= 0 else diverging_colours(values, max(-low, high))
            grid = image_grid(tiles, columns, GRID_GAP_COLOUR)
            found.append({"convolution": number,
                          "layers": [_layer_name(layer) for layer in network.layers[first:last + 1]],
                          "image": png_data_url(grid), "width": grid.shape[1], "height": grid.shape[0]})
    return found


def _layer_name(layer):
    return layer.activation.name if isinstance(layer, ActivationLayer) else layer.kind


def predict_in_batches(network, x, batch=2000):
    """Class probabilities for all of `x` (uint8 or float pixels), through the evaluation's forward pass, at most
    `batch` images at a time and no more than an evaluation's chunk (fewer for a convolutional net's im2col
    columns and feature maps), so that a run's report stays within the run's memory estimate."""
    rows = max(1, min(batch, len(x), chunk_rows(network)))
    forward = ForwardPass(network, rows)
    return np.concatenate([softmax(forward.scores(_pixels(x[start:start + rows], network.dtype)))
                           for start in range(0, len(x), rows)] or [np.empty((0, network.output_size))])


def float64_copy(network):
    """`network` rebuilt in float64 (as the numerical gradient needs) with the same weights and statistics."""
    clone = network_from_architecture({**network.architecture(), "dtype": "float64"})
    clone.load_weights(network.weights())
    return clone


def _pixels(images, dtype=np.float32):
    """Images as float pixels in 0..1, whether they come as uint8 (as training keeps them) or floats."""
    images = np.asarray(images)
    if np.issubdtype(images.dtype, np.floating):
        return images.astype(dtype, copy=False)
    return to_float(images, np.empty(images.shape, dtype))
