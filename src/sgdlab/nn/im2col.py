"""Chapter 7's im2col and col2im: a convolution turned into one matrix product.

A filter of FH x FW slides over an image of C channels; at each of the
OH x OW positions it meets C * FH * FW input values. `im2col` copies those
values into one row per position, so that every filter becomes one column
of a weight matrix and the whole convolution one matrix product. `col2im`
is its adjoint: it adds each row's values back onto the positions they came
from (where windows overlap, the values add up), which is what the backward
pass needs.

The book's versions copy with a Python loop over the filter's offsets; these
take every window at once as a strided view of the (padded) input
(`numpy.lib.stride_tricks.as_strided`, `windows`) and copy it once. `col2im`
keeps the loop over the FH * FW offsets: each offset adds a whole
(N, C, OH, OW) block.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ConfigError
from ..ranges import NON_NEGATIVE_INT, POSITIVE_INT


def conv_output_size(input_size, filter_size, stride=1, pad=0, layer="the layer"):
    """How many positions a window of `filter_size` takes along an axis of `input_size` padded by `pad` on both
    sides, moving by `stride`: (input_size + 2 * pad - filter_size) / stride + 1.

    Unlike the book's version (a float, and a silently truncated count), this
    is an integer, and a window larger than the padded input, or a stride
    that leaves part of it over, is a `ConfigError` naming `layer` and the
    sizes.
    """
    span = input_size + 2 * pad - filter_size
    if span < 0:
        raise ConfigError(f"{layer}: a window of {filter_size} is larger than its input of {input_size}"
                          f"{f' padded by {pad} on each side' if pad else ''}", "use a smaller window or more padding")
    if span % stride:
        raise ConfigError(f"{layer}: a window of {filter_size} at stride {stride} does not fit an input of "
                          f"{input_size}{f' padded by {pad}' if pad else ''} (the last {span % stride} left over)",
                          f"choose a stride that divides {span}, or change the padding")
    return span // stride + 1


def _checked_shape(input_shape, filter_h, filter_w, stride, pad, caller):
    """(N, C, H, W, out_h, out_w) of an im2col or col2im (`caller`), its sizes checked: a `ConfigError` names a
    filter size or stride
    that is not a positive integer, a pad that is not a non-negative one, or images that are not (N, C, H, W)."""
    for name, value_range, value in (("filter_h", POSITIVE_INT, filter_h), ("filter_w", POSITIVE_INT, filter_w),
                                     ("stride", POSITIVE_INT, stride), ("pad", NON_NEGATIVE_INT, pad)):
        value_range.check(f"{caller}'s {name}", value)
    if len(input_shape) != 4:
        raise ConfigError(f"{caller} takes (N, C, H, W) images, got an array of shape {tuple(input_shape)}")
    N, C, H, W = input_shape
    out_h = conv_output_size(H, filter_h, stride, pad, f"{caller} (height)")
    out_w = conv_output_size(W, filter_w, stride, pad, f"{caller} (width)")
    return N, C, H, W, out_h, out_w


def windows(images, filter_h, filter_w, stride):
    """Every filter_h x filter_w window of (N, C, H, W) `images` at `stride`, as a read-only view (N, C, OH, OW,
    FH, FW): window (y, x) starts at pixel (stride * y, stride * x). (`sliding_window_view` makes the same view
    with checks that cost more than the copy of a small batch.)"""
    N, C, H, W = images.shape
    out_h, out_w = (H - filter_h) // stride + 1, (W - filter_w) // stride + 1
    n, c, h, w = images.strides
    return as_strided(images, (N, C, out_h, out_w, filter_h, filter_w), (n, c, h * stride, w * stride, h, w),
                      writeable=False)


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """The (N * OH * OW, C * FH * FW) matrix whose rows are the windows a filter sees, the book's layout.

    Row n * OH * OW + i * OW + j is the window of image n at output position
    (i, j); its columns run over channel, then filter row, then filter
    column, the order of a filter `W[f]` of shape (C, FH, FW) flattened, so
    that `im2col(x, FH, FW) @ W.reshape(FN, -1).T` is the convolution, one
    column per filter. The input is padded with `pad` zeros on every side
    first. For one 1-channel 3x3 image and a 2x2 filter::

        >>> x = np.arange(9.0).reshape(1, 1, 3, 3)   # [[0 1 2], [3 4 5], [6 7 8]]
        >>> im2col(x, 2, 2)
        array([[0., 1., 3., 4.],
               [1., 2., 4., 5.],
               [3., 4., 6., 7.],
               [4., 5., 7., 8.]])

    Four output positions, four rows; each row the 2x2 window there, read
    row by row. With C channels each row holds C such windows, one after
    another. The result has the input's dtype (the book's is always
    float64).
    """
    input_data = np.asarray(input_data)
    N, C, H, W, out_h, out_w = _checked_shape(input_data.shape, filter_h, filter_w, stride, pad, "im2col")
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)]) if pad else input_data
    col = np.empty((N, out_h, out_w, C, filter_h, filter_w), dtype=input_data.dtype)
    col[...] = windows(img, filter_h, filter_w, stride).transpose(0, 2, 3, 1, 4, 5)
    return col.reshape(N * out_h * out_w, C * filter_h * filter_w)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of `im2col`: the (N, C, H, W) images in which each entry of `col` is added onto the pixel it
    was copied from.

    Where windows overlap (stride smaller than the filter), a pixel receives
    the sum of every row's entry for it; padding's entries are dropped. For
    the example of `im2col`, `col2im(np.ones((4, 4)), (1, 1, 3, 3), 2, 2)`
    counts how many windows cover each pixel: [[1 2 1], [2 4 2], [1 2 1]].
    This is how the backward pass turns d loss / d col into d loss / d x.
    """
    N, C, H, W, out_h, out_w = _checked_shape(tuple(input_shape), filter_h, filter_w, stride, pad, "col2im")
    col = np.asarray(col)
    expected = (N * out_h * out_w, C * filter_h * filter_w)
    if col.shape != expected:
        raise ConfigError(f"col2im: col has shape {col.shape}, but images of shape {tuple(input_shape)} with a "
                          f"{filter_h}x{filter_w} filter, stride {stride} and pad {pad} give {expected}")
    blocks = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=col.dtype)
    add_windows(img, blocks, stride)
    return img[:, :, pad:H + pad, pad:W + pad]


def add_windows(img, cols, stride, blocks=None, out_shape=None):
    """img[:, :, i + stride * y, j + stride * x] += cols[:, :, i, j, y, x] for every filter offset (i, j): one
    whole-array addition per offset. With `blocks` (ph, pw), cols' positions are (ph, pw, OH / ph, OW / pw)
    blocks (`in_blocks`) of the output positions `out_shape` (OH, OW)."""
    filter_h, filter_w = cols.shape[2:4]
    out_h, out_w = cols.shape[4:6] if blocks is None else out_shape
    for i in range(filter_h):
        for j in range(filter_w):
            target = img[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
            if blocks is None:
                target += cols[:, :, i, j]
            else:
                target = in_blocks(target, blocks)  # (N, C, ph, pw, OH / ph, OW / pw), a view
                target += cols[:, :, i, j].reshape(target.shape)


def in_blocks(positions, blocks):
    """(N, C, OH, OW, ...) regrouped as (N, C, ph, pw, OH / ph, OW / pw, ...), `blocks` being (ph, pw):
    position (y, x) is block (y % ph, x % pw), place (y // ph, x // pw). A view: how a convolution followed by
    a max pooling of ph x pw tiling windows orders its outputs, each window's values ph * pw blocks apart."""
    ph, pw = blocks
    N, C, out_h, out_w, *rest = positions.shape
    split = positions.reshape(N, C, out_h // ph, ph, out_w // pw, pw, *rest)
    return split.transpose(0, 1, 3, 5, 2, 4, *range(6, 6 + len(rest)))
