import numpy as np
import pytest

from sgdlab.errors import ConfigError
from sgdlab.data.scaling import to_float
from sgdlab.data.checks import check_images


def test_uint8_pixels_become_exactly_the_normalized_floats():
    pixels = np.arange(256, dtype=np.uint8).reshape(4, 64)
    expected = np.divide(pixels, np.float32(255), dtype=np.float32)  # what load_mnist(normalize=True) gives
    out = np.empty(pixels.shape, np.float32)
    np.testing.assert_array_equal(to_float(pixels, out), expected)
    assert out[0, 0] == 0 and out[-1, -1] == 1


def test_floats_are_copied_in_the_output_dtype():
    x = np.linspace(0, 1, 12).reshape(3, 4)
    out = np.empty((3, 4), np.float32)
    np.testing.assert_array_equal(to_float(x, out), x.astype(np.float32))


@pytest.mark.parametrize("x", [np.zeros((2, 3), np.int64), np.zeros((2, 3), bool), [[0.0, 1.0]]])
def test_unusable_images_are_refused_with_the_fix(x):
    with pytest.raises(ConfigError, match=r"the training images are .*load_mnist"):
        check_images(x, "training")
