"""A network looked into, as the lab page and a run's report.html show it: what its hidden units learned,
where it errs on the test set, whether its two gradients agree, and how it reads one digit.

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
from .evaluation import CHUNK_BYTES

GALLERY_SIZE = 32  # misclassified test digits shown, the most confident mistakes first
GRADIENT_BATCH = 5  # training images the live gradient check differentiates
TILE_GAP = 1  # pixels between the hidden units' tiles


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


def hidden_unit_weights(network, columns=10):
    """The first layer's incoming weights, one 28x28 tile per hidden unit, as one PNG grid (a data URL)."""
    weights = np.asarray(network.params["W1"], dtype=np.float64)
    if weights.shape[0] != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        return None  # not a network of MNIST images
    units = weights.shape[1]
    rows = -(-units // columns)
    height, width = IMAGE_SHAPE
    grid = np.ones((rows * (height + TILE_GAP) - TILE_GAP, columns * (width + TILE_GAP) - TILE_GAP, 3))
    for unit in range(units):
        tile = weights[:, unit].reshape(IMAGE_SHAPE)
        top, left = (unit // columns) * (height + TILE_GAP), (unit % columns) * (width + TILE_GAP)
        grid[top:top + height, left:left + width] = diverging_colours(tile, np.abs(tile).max())
    return png_data_url(grid)


def test_set_errors(network, x_test, t_test):
    """The confusion matrix (rows: true digit, columns: predicted), accuracy per digit, and a gallery of the
    most confident mistakes."""
    probabilities = predict_in_batches(network, x_test)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (t_test, predicted), 1)
    per_digit = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    wrong = np.flatnonzero(predicted != t_test)
    confidence = probabilities[wrong, predicted[wrong]]
    shown = wrong[np.argsort(-confidence, kind="stable")[:GALLERY_SIZE]]
    gallery = [{"index": int(i), "label": int(t_test[i]), "predicted": int(predicted[i]),
                "probability": float(probabilities[i, predicted[i]]),
                "image": png_data_url(_pixels(x_test[i]).reshape(IMAGE_SHAPE))} for i in shown]
    return {"confusion": confusion.tolist(), "per_digit": per_digit.tolist(), "errors": int(len(wrong)),
            "gallery": gallery}


def gradient_agreement(network, x_train, t_train):
    """Numerical against backprop gradient on a few training images, with the network's current weights in
    float64: the largest relative difference per parameter, and how many entries were left out because their
    nudge crosses a kink, and whether the gradient is zero (rounding noise on both sides), as `sgdlab gradcheck`
    reports them."""
    network = float64_copy(network)
    x, t = _pixels(x_train[:GRADIENT_BATCH], np.float64), t_train[:GRADIENT_BATCH]
    return [{"name": check.name, "max_rel_error": check.max_rel_error, "max_abs_diff": check.max_abs_diff,
             "kinks": check.kinks, "size": check.size, "passed": check.passed, "is_zero": check.is_zero}
            for check in gradient_check(network, x, t)]


def read_digit(network, pixels):
    """How `network` reads one 784-pixel image: the ten probabilities and the first hidden layer's outputs."""
    x = np.asarray(pixels, dtype=network.dtype).reshape(1, -1)
    hidden = x
    for layer in network.layers:  # up to the first activation: affine (and batch norm) then the activation
        hidden = layer.forward(hidden, False) if layer.uses_train_flg else layer.forward(hidden)
        if isinstance(layer, ActivationLayer):
            break
    probabilities = network.predict(x)[0]
    return {"probabilities": probabilities.astype(float).tolist(), "prediction": int(probabilities.argmax()),
            "hidden": np.asarray(hidden[0], dtype=float).tolist()}


def predict_in_batches(network, x, batch=2000):
    """Class probabilities for all of `x` (uint8 or float pixels), through the evaluation's forward pass, at most
    `batch` images at a time and fewer where their buffers would pass the evaluation's bound (a convolutional
    net's im2col columns and feature maps), so that a run's report stays within the run's memory estimate."""
    rows = max(1, min(batch, len(x), ForwardPass.rows_within(network, CHUNK_BYTES)))
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
