"""Chapter 7's convolution."""

import numpy as np

from ...errors import ConfigError
from ...ranges import NON_NEGATIVE_INT, POSITIVE_INT
from ..im2col import add_windows, col2im, conv_output_size, im2col, in_blocks, windows
from .base import Layer, check_window, image_shape, padded_size, spec_fields


class Convolution(Layer):
    """Chapter 7's convolution: FN filters W (FN, C, FH, FW) slid over (N, C, H, W) images at `stride`, after
    `pad` zeros on every side, plus a bias b (FN,) per filter; the output is (N, FN, OH, OW).

    `forward` is the book's: `im2col` makes one row per output position,
    one matrix product with the filters as columns gives every output, and
    `backward` reverses both (`col2im`), leaving `dW` and `db`. Unlike the
    book's, a filter larger than its input or a stride that does not fit is
    refused (`output_shape`) instead of silently truncated.
    """

    kind = "convolution"
    parameter_names = ("W", "b")
    decayed_names = ("W",)

    def __init__(self, W, b, stride=1, pad=0):
        if np.ndim(W) != 4 or np.shape(b) != np.shape(W)[:1]:
            raise ConfigError(f"a convolution takes filters W of shape (FN, C, FH, FW) and biases b of shape (FN,), "
                              f"got W of shape {np.shape(W)} and b of shape {np.shape(b)}")
        check_window("a convolution", "filter", *np.shape(W)[2:])
        self.W = W
        self.b = b
        self.stride = POSITIVE_INT.check("stride", stride)
        self.pad = NON_NEGATIVE_INT.check("pad", pad)
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

    def output_shape(self, input_shape):
        FN, C, FH, FW = self.W.shape
        channels, H, W = image_shape(self, input_shape, self.pad)
        if channels != C:
            raise ConfigError(f"{self!r} takes {C}-channel images, got {channels} channels")
        return (FN, conv_output_size(H, FH, self.stride, self.pad, f"{self!r} (height)"),
                conv_output_size(W, FW, self.stride, self.pad, f"{self!r} (width)"))

    def work_per_sample(self, input_shape):
        """Its output, its im2col columns (C * FH * FW and a row of ones per output position) and its padded copy."""
        FN, C, FH, FW = self.W.shape
        _, out_h, out_w = self.output_shape(input_shape)
        return (FN + C * FH * FW + 1) * out_h * out_w + padded_size(input_shape, self.pad)

    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        _, out_h, out_w = self.output_shape(x.shape[1:])
        self.x = x
        self.col = im2col(x, FH, FW, self.stride, self.pad)
        self.col_W = self.W.reshape(FN, -1).T
        out = self.col @ self.col_W + self.b
        return out.reshape(len(x), out_h, out_w, FN).transpose(0, 3, 1, 2)

    def backward(self, dout):
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).T.reshape(FN, C, FH, FW)
        dcol = dout @ self.col_W.T
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)

    def spec(self):
        FN, _, FH, FW = self.W.shape
        if FH != FW:
            raise ConfigError(f"{self!r}: a network's convolutions have square filters")
        return {"type": self.kind, "filter_num": FN, "filter_size": FH, "stride": self.stride, "pad": self.pad}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        values = spec_fields(spec, {"filter_num": (POSITIVE_INT, None), "filter_size": (POSITIVE_INT, None),
                                    "stride": (POSITIVE_INT, 1), "pad": (NON_NEGATIVE_INT, 0)})
        channels = input_shape[0] if len(input_shape) == 3 else 1  # (output_shape refuses other shapes)
        FN, FS = values["filter_num"], values["filter_size"]
        W = make.weights((FN, channels, FS, FS), channels * FS * FS)
        return cls(W, make.zeros(FN), values["stride"], values["pad"])

    # The training step's forms. Each sample's windows are the columns of a (C * FH * FW + 1, OH * OW) matrix
    # whose last row is ones, so that one matrix product per sample with [W | b] (FN, C * FH * FW + 1) gives
    # the outputs, bias included, and the product of d out with the same columns gives [dW | db] at once. The
    # columns are one copy of a strided view of the (padded) input. With `blocks` (ph, pw), the tiling
    # windows of a max pooling that follows, the output positions (the columns) are ordered by their place
    # in those windows: each channel's (OH, OW) values held as ph * pw contiguous blocks of the pooled size,
    # which the pooling then reads whole (see `Pooling.blocks`).
    writes_blocks = True

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        FN, C, FH, FW = self.W.shape
        _, out_h, out_w = self.output_shape(input_shape)
        _, H, W = input_shape
        padded_shape = (rows, C, H + 2 * self.pad, W + 2 * self.pad)
        col = np.empty((rows, C * FH * FW + 1, out_h * out_w), dtype)
        col[:, -1] = 1
        work = {"col": col, "padded": np.zeros(padded_shape, dtype) if self.pad else None, "blocks": blocks,
                "weights": np.empty((FN, C * FH * FW + 1), dtype)}
        if train:
            work["per_sample"] = np.empty((rows, FN, C * FH * FW + 1), dtype)
            work["dcol"] = np.empty((rows, C * FH * FW, out_h * out_w), dtype)
            work["dpadded"] = np.empty(padded_shape, dtype) if self.pad else None
        return work

    def _columns(self, x, work):
        """x's windows into work["col"] (but its row of ones): (rows, C, FH, FW, positions)."""
        FN, C, FH, FW = self.W.shape
        source = x
        if self.pad:
            source = work["padded"][:len(x)]
            source[:, :, self.pad:-self.pad, self.pad:-self.pad] = x
        view = windows(source, FH, FW, self.stride)  # (rows, C, OH, OW, FH, FW)
        col = work["col"][:len(x)]
        if work["blocks"] is None:
            col[:, :-1].reshape(len(x), C, FH, FW, *view.shape[2:4])[...] = view.transpose(0, 1, 4, 5, 2, 3)
        else:
            blocked = in_blocks(view, work["blocks"])  # (rows, C, ph, pw, OH/ph, OW/pw, FH, FW)
            col[:, :-1].reshape(len(x), C, FH, FW, *blocked.shape[2:6])[...] = blocked.transpose(0, 1, 6, 7, 2, 3, 4, 5)
        return col

    def forward_into(self, x, out, train, work):
        col = self._columns(x, work)
        weights = work["weights"]
        weights[:, :-1] = self.W.reshape(len(weights), -1)
        weights[:, -1] = self.b
        np.matmul(weights, col, out=out.reshape(len(out), len(weights), -1))
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        FN, C, FH, FW = self.W.shape
        dW, db = grads
        rows = len(x)
        dout3 = dout.reshape(rows, FN, -1)
        per_sample = work["per_sample"][:rows]
        np.matmul(dout3, work["col"][:rows].transpose(0, 2, 1), out=per_sample)  # each sample's [dW | db]
        np.add.reduce(per_sample[:, :, :-1], axis=0, out=dW.reshape(FN, -1))
        np.add.reduce(per_sample[:, :, -1], axis=0, out=db)
        if dx is None:
            return None
        dcol = work["dcol"][:rows]
        np.matmul(self.W.reshape(FN, -1).T, dout3, out=dcol)
        target = work["dpadded"][:rows] if self.pad else dx
        target.fill(0)
        add_windows(target, dcol.reshape(rows, C, FH, FW, *dout.shape[2:]) if work["blocks"] is None else
                    dcol.reshape(rows, C, FH, FW, *work["blocks"], -1), self.stride, work["blocks"], dout.shape[2:])
        if self.pad:
            dx[...] = target[:, :, self.pad:-self.pad, self.pad:-self.pad]
        return dx

    def __repr__(self):
        FN, C, FH, FW = self.W.shape
        return f"Convolution({FN} filters {C}x{FH}x{FW}, stride {self.stride}, pad {self.pad})"
