"""Chapter 7's convolution."""

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...errors import ConfigError
from ...ranges import NON_NEGATIVE_INT, POSITIVE_INT
from ..im2col import add_windows, col2im, conv_output_size, im2col, in_blocks, windows
from .base import Layer, check_window, image_shape, in_channel, padded_size, product_dtype, spec_fields


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

    # The training step's forms, in one of two ways. A convolution whose windows hold few values (C * FH * FW
    # below `FEW_WINDOW_VALUES`, a first layer on one channel) runs one matrix product per sample: the
    # sample's windows are the columns of a (C * FH * FW + 1, OH * OW) matrix whose last row is ones, so that
    # [W | b] times it gives the outputs, bias included, and d out times it gives [dW | db] at once. Others run
    # three matrix products over the whole chunk of rows, which BLAS runs faster at their sizes: the input is
    # copied into `padded`, each sample's channels as flat rows of (H + 2 pad) x (W + 2 pad) pixels, Wp wide,
    # and the columns are a (C, FH, FW, rows, OH, span) array: entry (c, i, j, n, y, x) is pixel (stride * y + i,
    # stride * x + j) of sample n's channel c, so that the filters (FN, C * FH * FW) times the columns give every
    # output of the chunk, (FN, rows, OH, span). At stride 1, span is the padded width Wp rather than OW: each
    # window row runs on past the output's right edge into the next pixel row (those Wp - OW outputs are
    # dropped, and their gradients are zero), so that each (c, i, j, n) is one contiguous run of OH * Wp pixels
    # of `padded`, copied at memory speed, and col2im adds whole runs back. Backward, d out times the columns
    # gives dW, and the filters' transpose times d out the columns' gradient, which takes the columns' place.
    # With `blocks` (ph, pw), the tiling windows of a max pooling that follows, the output is laid out in them:
    # each channel's (OH, OW) values held as ph * pw contiguous blocks of the pooled size, which the pooling
    # reads whole (see `Pooling.blocks`).
    writes_blocks = True
    FEW_WINDOW_VALUES = 64  # measured: 9 and 25 values run faster per sample, 144 and more over the chunk

    @property
    def _per_sample_products(self):
        return math.prod(self.W.shape[1:]) < self.FEW_WINDOW_VALUES

    def _geometry(self, input_shape):
        """(padded height, padded width, output height, output width, span, flat): span the columns' width per
        output row, flat the values of one channel's padded copy (past Hp * Wp: the runs' overhang, zeros)."""
        _, FH, FW = self.W.shape[1:]
        _, H, W = input_shape
        _, out_h, out_w = self.output_shape(input_shape)
        padded_h, padded_w = H + 2 * self.pad, W + 2 * self.pad
        span = padded_w if self.stride == 1 else out_w
        return padded_h, padded_w, out_h, out_w, span, padded_h * padded_w + (FW - 1 if self.stride == 1 else 0)

    def work_per_sample(self, input_shape):
        """Its output, its columns and its padded copy; over a chunk, also the products' output (FN per output
        position and span) and the columns' span."""
        FN, C, FH, FW = self.W.shape
        _, _, out_h, out_w, span, flat = self._geometry(input_shape)
        if self._per_sample_products:
            return (FN + C * FH * FW + 1) * out_h * out_w + padded_size(input_shape, self.pad)
        return FN * out_h * out_w + (C * FH * FW + FN) * out_h * span + C * flat

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        FN, C, FH, FW = self.W.shape
        geometry = self._geometry(input_shape)
        padded_h, padded_w, out_h, out_w, span, flat = geometry
        if self._per_sample_products:
            padded_shape = (rows, C, padded_h, padded_w)
            col = np.empty((rows, C * FH * FW + 1, out_h * out_w), dtype)
            col[:, -1] = 1
            work = {"per_sample": True, "col": col, "padded": np.zeros(padded_shape, dtype) if self.pad else None,
                    "blocks": blocks, "weights": np.empty((FN, C * FH * FW + 1), dtype)}
            if train:
                work["sample_grads"] = np.empty((rows, FN, C * FH * FW + 1), dtype)
                work["dcol"] = np.empty((rows, C * FH * FW, out_h * out_w), dtype)
                work["dpadded"] = np.empty(padded_shape, dtype) if self.pad else None
            return work
        work = {"per_sample": False, "geometry": geometry, "blocks": blocks, "padded": np.zeros((rows, C, flat), dtype),
                "col": np.empty(C * FH * FW * rows * out_h * span, dtype),
                "wide": np.empty(FN * rows * out_h * span, dtype)}
        if train:
            work["dpadded"] = np.empty((rows, C, flat), dtype)
            work["dW"] = np.empty((C * FH * FW, FN), dtype)
        return work

    def _sample_columns(self, x, work):
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

    def _forward_per_sample(self, x, out, work):
        col = self._sample_columns(x, work)
        weights = work["weights"]
        weights[:, :-1] = self.W.reshape(len(weights), -1)
        weights[:, -1] = self.b
        np.matmul(weights, col, out=out.reshape(len(out), len(weights), -1), dtype=product_dtype(out.dtype))
        return out

    def _backward_per_sample(self, x, dout, dx, grads, work):
        FN, C, FH, FW = self.W.shape
        dW, db = grads
        rows = len(x)
        dout3 = dout.reshape(rows, FN, -1)
        sample_grads = work["sample_grads"][:rows]
        np.matmul(dout3, work["col"][:rows].transpose(0, 2, 1), out=sample_grads)  # each sample's [dW | db]
        np.add.reduce(sample_grads[:, :, :-1], axis=0, out=dW.reshape(FN, -1))
        np.add.reduce(sample_grads[:, :, -1], axis=0, out=db)
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

    def _pixels(self, padded, geometry, image_shape):
        """The (rows, C, H, W) images inside the (rows, C, flat) padded copy, a view."""
        padded_h, padded_w = geometry[:2]
        H, W = image_shape
        grid = padded[:, :, :padded_h * padded_w].reshape(*padded.shape[:2], padded_h, padded_w)
        return grid[:, :, self.pad:self.pad + H, self.pad:self.pad + W]

    def _runs(self, padded, geometry, i, j):
        """The view of the (rows, C, flat) `padded` that offset (i, j) of the filter sees: (C, rows, OH, span)."""
        _, padded_w, out_h, _, span, _ = geometry
        item = padded.itemsize
        n, c, _ = padded.strides
        return as_strided(padded[:, :, i * padded_w + j:], (padded.shape[1], len(padded), out_h, span),
                          (c, n, self.stride * padded_w * item, self.stride * item))

    def _outputs(self, wide, out, geometry, blocks):
        """The (rows, FN, OH, OW) outputs inside the products' (FN, rows, OH, span), and `out` (rows, FN, OH, OW),
        both as views in the order `out` holds its values (blocks: (rows, FN, ph, pw, OH / ph, OW / pw))."""
        valid = wide[..., :geometry[3]].transpose(1, 0, 2, 3)
        if blocks is None:
            return valid, out
        return in_blocks(valid, blocks), out.reshape(*out.shape[:2], *blocks, *(size // block for size, block in
                                                                                  zip(out.shape[2:], blocks)))

    def forward_into(self, x, out, train, work):
        if work["per_sample"]:
            return self._forward_per_sample(x, out, work)
        FN, C, FH, FW = self.W.shape
        rows, geometry = len(x), work["geometry"]
        out_h, span = geometry[2], geometry[4]
        padded = work["padded"][:rows]
        self._pixels(padded, geometry, x.shape[2:])[...] = x
        col = work["col"][:C * FH * FW * rows * out_h * span].reshape(C, FH, FW, rows, out_h, span)
        for i in range(FH):
            for j in range(FW):
                col[:, i, j] = self._runs(padded, geometry, i, j)
        wide = work["wide"][:FN * rows * out_h * span].reshape(FN, rows, out_h, span)
        np.matmul(self.W.reshape(FN, -1), col.reshape(C * FH * FW, -1), out=wide.reshape(FN, -1))
        valid, target = self._outputs(wide, out, geometry, work["blocks"])
        np.add(valid, self.b.reshape(FN, *[1] * (valid.ndim - 2)), out=target)
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        if work["per_sample"]:
            return self._backward_per_sample(x, dout, dx, grads, work)
        FN, C, FH, FW = self.W.shape
        dW, db = grads
        rows, geometry = len(x), work["geometry"]
        out_w, span = geometry[3:5]
        wide = work["wide"][:FN * rows * geometry[2] * span].reshape(FN, rows, geometry[2], span)
        valid, source = self._outputs(wide, dout, geometry, work["blocks"])
        valid[...] = source  # d out in the products' layout,
        wide[..., out_w:] = 0  # and zero past the output's edge
        wide = wide.reshape(FN, -1)
        np.add.reduce(wide, axis=1, out=db)
        col = work["col"][:wide.shape[1] * C * FH * FW].reshape(C * FH * FW, -1)
        np.matmul(col, wide.T, out=work["dW"])
        dW.reshape(FN, -1)[...] = work["dW"].T
        if dx is None:
            return None
        np.matmul(self.W.reshape(FN, -1).T, wide, out=col)  # the columns' gradient, in their place
        dcol = col.reshape(C, FH, FW, rows, geometry[2], span)
        dpadded = work["dpadded"][:rows]
        dpadded.fill(0)
        for i in range(FH):
            for j in range(FW):
                self._runs(dpadded, geometry, i, j)[...] += dcol[:, i, j]
        dx[...] = self._pixels(dpadded, geometry, x.shape[2:])
        return dx

    # The fast numerical gradient's forms (see `Layer.carry`). The convolution is linear in its input, so a
    # carried input moves the output by the convolution of its change, without the bias: of one channel's
    # change by that channel's slice of the filters, when a nudge has moved one channel only. Nudging filter
    # f's W[f, c, i, j] by e moves channel f of the output by e times the input each position sees at (c, i,
    # j); b[f], by e everywhere.
    def carry(self, moved, x, out, state, channel):
        FN, _, FH, FW = self.W.shape
        W = np.asarray(self.W, np.float64)
        if channel is not None:
            W = W[:, channel:channel + 1]
        change = moved - in_channel(x, channel)
        nudges, N = change.shape[:2]
        col = im2col(change.reshape(nudges * N, *change.shape[2:]), FH, FW, self.stride, self.pad)
        _, out_h, out_w = out.shape[1:]
        result = (col @ W.reshape(FN, -1).T).reshape(nudges, N, out_h, out_w, FN).transpose(0, 1, 4, 2, 3)
        result += out[None]
        return result, None

    def nudge_state(self, x, out, state):
        """What each weight multiplies: (C * FH * FW, N, OH, OW), the windows' values by their offset."""
        _, _, FH, FW = self.W.shape
        padded = np.pad(x, [(0, 0), (0, 0), (self.pad, self.pad), (self.pad, self.pad)])
        seen = windows(padded, FH, FW, self.stride).transpose(1, 4, 5, 0, 2, 3)
        return seen.reshape(-1, *seen.shape[3:]).copy()

    def nudged(self, name, entries, e, x, out, prepared, channel):
        if name == "b":
            return out[None, :, channel:channel + 1] + e[:, None, None, None, None]
        seen = prepared[entries % len(prepared)]  # (nudges, N, OH, OW)
        moved = np.multiply(e[:, None, None, None], seen)
        moved += out[:, channel]
        return moved[:, :, None]

    def __repr__(self):
        FN, C, FH, FW = self.W.shape
        return f"Convolution({FN} filters {C}x{FH}x{FW}, stride {self.stride}, pad {self.pad})"
