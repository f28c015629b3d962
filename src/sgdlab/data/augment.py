"""Data augmentation (the book's 8.1.3): each training image moved a little at random, a new one every batch.

Every image of a batch gets its own small affine transform, drawn from the
run's generator: a rotation by up to `rotate` degrees either way and a
scaling by 1 - `scale` to 1 + `scale` about the image's centre, then a shift
by up to `shift` pixels along each axis. The transformed image is read from
the original by bilinear interpolation, black (0) where it comes from
outside. The whole batch is one set of array operations, no loop over its
images. With every range 0 the transform is the identity, and the images
come out exactly as they went in.
"""

import math

import numpy as np

DRAWS_PER_IMAGE = 4  # a rotation, a scale, a vertical and a horizontal shift: uniform in [-1, 1) each, then scaled


def affine_warp(images, angles, scales, shifts):
    """`images` (N, channels, height, width) each turned counterclockwise (as shown, rows going down) by
    `angles[i]` radians and scaled by `scales[i]` about its centre, then moved by `shifts[i]` = (down, right)
    pixels: the output pixel at (row, column) q is the input at c + R(-angle) (q - c - shift) / scale, c the
    centre, read bilinearly (0 outside). Returns a new array of the images' dtype."""
    n, channels, height, width = images.shape
    dtype = np.float32 if images.dtype == np.float32 else np.float64  # positions within 1e-5 pixel either way
    rows, columns = np.indices((height, width), dtype=dtype).reshape(2, 1, height * width)
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    y = rows - centre_y - shifts[:, :1].astype(dtype)  # (N, pixels): each output pixel, from the moved centre
    x = columns - centre_x - shifts[:, 1:].astype(dtype)
    cos, sin = (f(angles).astype(dtype)[:, None] for f in (np.cos, np.sin))
    zoom = scales.astype(dtype)[:, None]
    # Where each output pixel reads, at most a pixel beyond the image: the border there (padded with zeros, one
    # pixel before and two after) gives 0 as reading from any farther out would.
    source_x = np.clip((cos * x - sin * y) / zoom + centre_x, -1, width)
    source_y = np.clip((sin * x + cos * y) / zoom + centre_y, -1, height)
    left, top = np.floor(source_x), np.floor(source_y)
    right_weight, bottom_weight = source_x - left, source_y - top
    padded = np.zeros((n, channels, height + 3, width + 3), images.dtype)
    padded[:, :, 1:height + 1, 1:width + 1] = images
    padded_width = width + 3
    # the top left corner of each read, as an index into each (image, channel)'s padded pixels
    corner = ((top + 1) * padded_width + (left + 1)).astype(np.intp)[:, None, :]
    corner = corner + (np.arange(n * channels).reshape(n, channels, 1) * (height + 3) * padded_width)
    pixels = padded.ravel()
    warped = np.zeros((n, channels, height * width), dtype)
    for offset, weight in ((0, (1 - bottom_weight) * (1 - right_weight)), (1, (1 - bottom_weight) * right_weight),
                           (padded_width, bottom_weight * (1 - right_weight)),
                           (padded_width + 1, bottom_weight * right_weight)):
        warped += pixels.take(corner + offset) * weight[:, None, :]
    return warped.astype(images.dtype, copy=False).reshape(images.shape)


class Augmenter:
    """Transforms batches of rows (each an image of `image_shape` = (channels, height, width), flattened) at
    random within `shift` pixels, `rotate` degrees and `scale`, drawing from `rng` (its state is what a
    continued run needs: `DRAWS_PER_IMAGE` numbers an image, in the order the batches come)."""

    def __init__(self, image_shape, shift, rotate, scale, rng):
        self.image_shape = tuple(image_shape)
        self.shift, self.rotate, self.scale = shift, rotate, scale
        self.rng = rng

    def __call__(self, rows):
        draws = self.rng.uniform(-1.0, 1.0, size=(len(rows), DRAWS_PER_IMAGE))
        angles = draws[:, 0] * math.radians(self.rotate)
        scales = 1.0 + draws[:, 1] * self.scale
        shifts = draws[:, 2:] * self.shift
        images = rows.reshape(len(rows), *self.image_shape)
        return affine_warp(images, angles, scales, shifts).reshape(rows.shape)
