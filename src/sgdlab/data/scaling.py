"""Images as the trainer holds them: floats, or uint8 pixels scaled to 0..1 as batches use them.

MNIST as uint8 (`load_mnist(normalize=False)`) takes 55 MB instead of the
220 MB of float32, and scaling just the rows that batches draw costs
little, so the command line trains from uint8. Scaling by 1/255 gives the
same floats as `load_mnist(normalize=True)`.
"""

import numpy as np

PIXEL_MAX = 255


def to_float(images, out):
    """Write `images` into the float array `out` (same shape), scaling uint8 pixels to 0..1."""
    if images.dtype == np.uint8:  # float32 quotients, as load_mnist(normalize=True) makes, widened if need be
        np.divide(images, np.float32(PIXEL_MAX), out=out, dtype=np.float32)
    else:
        out[...] = images
    return out
