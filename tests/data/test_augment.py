"""Data augmentation: its transforms against their definition on synthetic images, the identity at zero ranges,
the batch done at once as image by image, and the same draws from the same generator."""

import math
import re

import numpy as np
import pytest

from sgdlab.data.augment import DRAWS_PER_IMAGE, Augmenter, affine_warp


def dot(row, column, shape=(28, 28)):
    image = np.zeros((1, 1, *shape), np.float32)
    image[0, 0, row, column] = 1.0
    return image


def warp(images, angle=0.0, scale=1.0, shift=(0.0, 0.0)):
    n = len(images)
    return affine_warp(images, np.full(n, angle), np.full(n, scale), np.tile(np.array(shift, float), (n, 1)))


def test_a_shifted_dot_lands_where_the_shift_says():
    moved = warp(dot(10, 12), shift=(3, -2))  # 3 down, 2 left
    assert np.argwhere(moved[0, 0]).tolist() == [[13, 10]] and moved[0, 0, 13, 10] == 1.0
    halfway = warp(dot(10, 12), shift=(0, 0.5))  # between two pixels: shared between them, bilinearly
    assert halfway[0, 0, 10, 12] == pytest.approx(0.5) and halfway[0, 0, 10, 13] == pytest.approx(0.5)
    assert halfway.sum() == pytest.approx(1.0)
    assert not warp(dot(10, 12), shift=(0, 30)).any()  # moved out of the image: black, no wrapping around


def test_a_rotated_dot_turns_counterclockwise_about_the_centre():
    # the centre of 28 x 28 is (13.5, 13.5); the dot at (10, 12) is 3.5 above it and 1.5 left of it
    turned = warp(dot(10, 12), angle=math.pi / 2)  # a quarter turn counterclockwise: 3.5 left, 1.5 below
    assert np.argwhere(turned[0, 0] > 0.999).tolist() == [[15, 10]]
    assert turned.sum() == pytest.approx(1.0, abs=1e-6)
    three_quarters = warp(dot(10, 12), angle=-math.pi / 2)  # clockwise: 3.5 right, 1.5 above
    assert np.argwhere(three_quarters[0, 0] > 0.999).tolist() == [[12, 17]]


def test_scaling_moves_a_dot_away_from_the_centre_in_proportion():
    image = dot(11, 12, shape=(27, 27))  # odd sides: the centre (13, 13) is a pixel
    grown = warp(image, scale=2.0)  # (-2, -1) from the centre becomes (-4, -2)
    assert grown[0, 0, 9, 11] == 1.0 and np.argwhere(grown[0, 0] == 1.0).tolist() == [[9, 11]]
    assert grown[0, 0, 9, 10] == 0.5 and grown[0, 0, 10, 11] == 0.5  # read half a pixel from it: magnified
    shrunk = warp(dot(9, 11, shape=(27, 27)), scale=0.5)  # (-4, -2) becomes (-2, -1)
    assert np.argwhere(shrunk[0, 0] > 0.999).tolist() == [[11, 12]]


def test_zero_ranges_give_the_images_back_exactly_while_drawing_as_ever():
    rows = np.random.default_rng(0).random((13, 784)).astype(np.float32)
    rng = np.random.default_rng(5)
    augmenter = Augmenter((1, 28, 28), 0.0, 0.0, 0.0, rng)
    np.testing.assert_array_equal(augmenter(rows), rows)
    fresh = np.random.default_rng(5)
    fresh.uniform(-1.0, 1.0, size=(13, DRAWS_PER_IMAGE))
    assert rng.bit_generator.state == fresh.bit_generator.state  # the same draws as with ranges


def test_the_batch_at_once_equals_each_image_alone_and_keeps_dtype_and_shape():
    rng = np.random.default_rng(1)
    images = rng.random((6, 2, 9, 11))  # two channels, not square, float64
    angles, scales, shifts = rng.uniform(-0.3, 0.3, 6), rng.uniform(0.8, 1.2, 6), rng.uniform(-2, 2, (6, 2))
    together = affine_warp(images, angles, scales, shifts)
    assert together.dtype == np.float64 and together.shape == images.shape
    for i in range(6):
        alone = affine_warp(images[i:i + 1], angles[i:i + 1], scales[i:i + 1], shifts[i:i + 1])
        np.testing.assert_array_equal(together[i:i + 1], alone)


def test_the_same_generator_state_draws_the_same_transforms():
    rows = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    first, second = (Augmenter((1, 8, 8), 1.5, 15.0, 0.1, np.random.default_rng(7)) for _ in range(2))
    a, b = first(rows), second(rows)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and not np.array_equal(a, rows)
    assert not np.array_equal(first(rows), a)  # the next batch is moved otherwise


@pytest.mark.parametrize("setting, value, message", [
    ("augment_shift", 28.0, "augment_shift must be a number of pixels in [0, 28), got 28.0"),  # nothing left
    ("augment_shift", 1e308, "augment_shift must be a number of pixels in [0, 28)"),
    ("augment_rotate", 180.0, "augment_rotate must be a number of degrees in [0, 180), got 180.0"),
    ("augment_rotate", 1000.0, "augment_rotate must be a number of degrees in [0, 180)"),
    ("augment_scale", 1.0, "augment_scale must be a number in [0, 1)"),  # a digit scaled to nothing
])
def test_ranges_beyond_what_keeps_a_digit_are_refused_in_one_line(setting, value, message):
    from sgdlab.errors import ConfigError
    from sgdlab.training.config import TrainConfig

    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(augment=True, **{setting: value})
