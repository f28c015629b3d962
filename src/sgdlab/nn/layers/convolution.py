"""Chapter 7's convolution."""

import math

import numpy as np

from ...errors import ConfigError
from ...ranges import NON_NEGATIVE_INT, POSITIVE_INT
from .. import blas
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

    @property
    def window(self):
        return (*self.W.shape[2:], self.stride, self.pad)

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

    # The training step's forms, in one of three ways. A convolution whose windows hold few values (C * FH * FW
    # below `FEW_WINDOW_VALUES`, a first layer on one channel) runs one matrix product per sample: the sample's
    # windows are the columns of a (C * FH * FW + 1, OH * OW) matrix whose last row is ones, so that [W | b]
    # times it gives the outputs, bias included, and d out times it gives [dW | db] at once.
    #
    # Others, at stride 1 (`_shifted_products`, unless that would compute over `SHIFTED_POSITIONS` times as many
    # positions as there are outputs: a filter nearly as large as its image), copy no window at all: the chunk's
    # images are copied channels last into the rows of a (positions, C) matrix, sample after sample, after pad
    # rows of zeros, each sample H + pad rows of W + pad pixels,
    # the pad zeros between two rows (and between two samples) shared as the padding of both (a window of
    # FH x FW with pad < FH, FW never reaches past them). Output position q = (n, y, x) (n * (H + pad) + y rows
    # and x pixels into the matrix) then sees at filter offset (i, j) the row q + i * (W + pad) + j: the rows
    # from there on, times that offset's (C, FN) slice of the filters, are its share of every output at once,
    # and the FH * FW shares add up to the (positions, FN) outputs. BLAS adds each share into the outputs as it
    # computes it (gemm with beta 1, `nn/blas.py`: NumPy's matmul cannot add into its output). Positions past
    # an output's right or bottom edge are computed too and dropped; their gradients are zero. Backward, d out
    # (positions, FN) gives each offset's slice of dW with the same shifted rows, and d x is the shares added
    # back: d out times each offset's slice, added into the rows it read.
    #
    # The rest run three matrix products over the chunk's columns: each sample's channels are copied into
    # `padded` as flat rows of (H + 2 pad) x (W + 2 pad) pixels, and the columns are a (C, FH, FW, rows, OH, OW)
    # array, entry (c, i, j, n, y, x) pixel (stride * y + i, stride * x + j) of sample n's channel c, so that
    # the filters (FN, C * FH * FW) times the columns give the chunk's outputs (FN, rows, OH, OW); backward, d
    # out times the columns gives dW, and the filters' transpose times d out the columns' gradient, which
    # col2im adds back.
    #
    # With `blocks` (ph, pw), the tiling windows of a max pooling that follows, the output is laid out in them:
    # each channel's (OH, OW) values held as ph * pw contiguous blocks of the pooled size, which the pooling
    # reads whole (see `Pooling.blocks`).
    writes_blocks = True
    FEW_WINDOW_VALUES = 64  # measured: 9 and 25 values run faster per sample, 144 and more over the chunk
    SHIFTED_POSITIONS = 1.5  # measured: at 1.27 (3x3 filters on 8 x 8 images, pad 1) shifted still runs faster

    @property
    def _per_sample_products(self):
        return math.prod(self.W.shape[1:]) < self.FEW_WINDOW_VALUES

    def _shifted_products(self, input_shape):
        """Whether its chunk forms are the shifted products (see above): at stride 1 with a pad smaller than the
        filter, where they compute at most `SHIFTED_POSITIONS` times as many positions as there are outputs."""
        _, out_h, out_w = self.output_shape(input_shape)
        return (self.stride == 1 and self.pad < min(self.W.shape[2:])
                and math.prod(self._shifted_rows(input_shape)) <= self.SHIFTED_POSITIONS * out_h * out_w)

    def _geometry(self, input_shape):
        """(padded height, padded width, output height, output width): the columns' padded copy and output."""
        _, H, W = input_shape
        _, out_h, out_w = self.output_shape(input_shape)
        return H + 2 * self.pad, W + 2 * self.pad, out_h, out_w

    def _shifted_rows(self, input_shape):
        """(rows per sample, pixels per row): the shifted products' layout of a sample, its padding shared."""
        _, H, W = input_shape
        return H + self.pad, W + self.pad

    def work_per_sample(self, input_shape):
        """Its output and what it writes besides: its columns and padded copy. The shifted products write no
        columns, but do the multiply-adds the columns stand for (C * FH * FW per output value), so they are
        counted as the columns form writes them: the bound on them stays a bound on the layer's time."""
        FN, C, FH, FW = self.W.shape
        padded_h, padded_w, out_h, out_w = self._geometry(input_shape)
        if self._per_sample_products:
            return (FN + C * FH * FW + 1) * out_h * out_w + padded_size(input_shape, self.pad)
        return FN * out_h * out_w + (C * FH * FW + FN) * out_h * out_w + C * padded_h * padded_w

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        FN, C, FH, FW = self.W.shape
        padded_h, padded_w, out_h, out_w = self._geometry(input_shape)
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
        if self._shifted_products(input_shape):
            return self._shifted_workspace(rows, input_shape, dtype, train, blocks)
        work = {"per_sample": False, "shifted": False, "blocks": blocks,
                "padded": np.zeros((rows, C, padded_h, padded_w), dtype),
                "col": np.empty((C, FH, FW, rows, out_h, out_w), dtype), "wide": np.empty((FN, rows, out_h, out_w), dtype)}
        if train:
            work["dpadded"] = np.empty((rows, C, padded_h, padded_w), dtype)
            work["dW"] = np.empty((C * FH * FW, FN), dtype)
        return work

    def _shifted_workspace(self, rows, input_shape, dtype, train, blocks):
        """The shifted products' matrices, in the dtype their products sum in (float32 for float16 ones)."""
        FN, C, FH, FW = self.W.shape
        sample_h, sample_w = self._shifted_rows(input_shape)
        positions = rows * sample_h * sample_w
        reach = FH * sample_w  # past the last position: the rows its windows read (the padding's, zeros)
        dtype = product_dtype(dtype)
        blas.load(dtype)  # (SciPy's BLAS, here, where the training step's thread limit is extended to it)
        work = {"per_sample": False, "shifted": True, "blocks": blocks,
                "pixels": np.zeros((positions + reach, C), dtype), "filters": np.empty((FH * FW, C, FN), dtype),
                "outputs": np.empty((positions, FN), dtype)}
        if train:
            work["dout"] = np.zeros((positions, FN), dtype)  # zero past the outputs' edges, written within
            work["ones"] = np.ones(positions, dtype)  # db = ones times d out: BLAS sums the columns many times faster
            work["dpixels"] = np.empty((positions + reach, C), dtype)
            work["dW"] = np.empty((FH * FW, C, FN), dtype)
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

    @staticmethod
    def _in_layout(positions, buffer, blocks):
        """Output positions (rows, FN, OH, OW) (a view) and the (rows, FN, OH, OW) `buffer` that holds them, both
        as views in the order the buffer holds its values (blocks: (rows, FN, ph, pw, OH / ph, OW / pw))."""
        if blocks is None:
            return positions, buffer
        return in_blocks(positions, blocks), buffer.reshape(*buffer.shape[:2], *blocks, *(
            size // block for size, block in zip(buffer.shape[2:], blocks)))

    def _sample_grids(self, matrix, rows, input_shape):
        """The shifted products' (positions, K) `matrix` as (rows, H + pad, W + pad, K) sample grids, a view,
        starting `lead` rows in (the first sample's top padding)."""
        sample_h, sample_w = self._shifted_rows(input_shape)
        lead = self.pad * sample_w
        return matrix[lead:lead + rows * sample_h * sample_w].reshape(rows, sample_h, sample_w, -1)

    def _shifted_forward(self, x, out, work):
        FN, C, FH, FW = self.W.shape
        rows, (_, H, W) = len(x), x.shape[1:]
        sample_w = self._shifted_rows(x.shape[1:])[1]
        matrix, filters = work["pixels"], work["filters"]
        self._sample_grids(matrix, rows, x.shape[1:])[:, :H, self.pad:self.pad + W] = x.transpose(0, 2, 3, 1)
        filters.reshape(FH, FW, C, FN)[...] = self.W.transpose(2, 3, 1, 0)
        outputs = work["outputs"][:rows * (H + self.pad) * sample_w]
        for k in range(FH * FW):  # outputs += the rows from offset (i, j) on times its filters (in BLAS's order)
            shift = k // FW * sample_w + k % FW
            blas.gemm(matrix[shift:shift + len(outputs)], filters[k], outputs, accumulate=k > 0)
        _, out_h, out_w = out.shape[1:]
        grids = outputs.reshape(rows, H + self.pad, sample_w, FN)
        valid, target = self._in_layout(grids[:, :out_h, :out_w].transpose(0, 3, 1, 2), out, work["blocks"])
        np.add(valid, self.b.reshape(FN, *[1] * (valid.ndim - 2)), out=target)
        return out

    def _shifted_backward(self, x, dout, dx, grads, work):
        FN, C, FH, FW = self.W.shape
        dW, db = grads
        rows, (_, H, W) = len(x), x.shape[1:]
        sample_w = self._shifted_rows(x.shape[1:])[1]
        matrix, filters = work["pixels"], work["filters"]
        d_outputs = work["dout"][:rows * (H + self.pad) * sample_w]
        _, out_h, out_w = dout.shape[1:]
        grids = d_outputs.reshape(rows, H + self.pad, sample_w, FN)
        valid, source = self._in_layout(grids[:, :out_h, :out_w].transpose(0, 3, 1, 2), dout, work["blocks"])
        valid[...] = source
        np.matmul(work["ones"][:len(d_outputs)], d_outputs, out=db)
        sliced = work["dW"]
        for k in range(FH * FW):  # offset (i, j)'s filters: d out's transpose times the rows it read
            shift = k // FW * sample_w + k % FW
            blas.gemm(matrix[shift:shift + len(d_outputs)].T, d_outputs, sliced[k], accumulate=False)
        dW[...] = sliced.reshape(FH, FW, C, FN).transpose(3, 2, 0, 1)
        if dx is None:
            return None
        d_rows = work["dpixels"]
        d_rows.fill(0)
        for k in range(FH * FW):  # each offset's share of d x, added into the rows it read
            shift = k // FW * sample_w + k % FW
            blas.gemm(d_outputs, filters[k].T, d_rows[shift:shift + len(d_outputs)], accumulate=True)
        dx[...] = self._sample_grids(d_rows, rows, x.shape[1:])[:, :H, self.pad:self.pad + W].transpose(0, 3, 1, 2)
        return dx

    def forward_into(self, x, out, train, work):
        if work["per_sample"]:
            return self._forward_per_sample(x, out, work)
        if work["shifted"]:
            return self._shifted_forward(x, out, work)
        FN, C, FH, FW = self.W.shape
        rows = len(x)
        padded = work["padded"][:rows]
        padded[:, :, self.pad:self.pad + x.shape[2], self.pad:self.pad + x.shape[3]] = x
        col = work["col"][:, :, :, :rows]
        col.transpose(3, 0, 1, 2, 4, 5)[...] = windows(padded, FH, FW, self.stride).transpose(0, 1, 4, 5, 2, 3)
        wide = work["wide"][:, :rows]
        np.matmul(self.W.reshape(FN, -1), col.reshape(C * FH * FW, -1), out=wide.reshape(FN, -1))
        valid, target = self._in_layout(wide.transpose(1, 0, 2, 3), out, work["blocks"])
        np.add(valid, self.b.reshape(FN, *[1] * (valid.ndim - 2)), out=target)
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        if work["per_sample"]:
            return self._backward_per_sample(x, dout, dx, grads, work)
        if work["shifted"]:
            return self._shifted_backward(x, dout, dx, grads, work)
        FN, C, FH, FW = self.W.shape
        dW, db = grads
        rows = len(x)
        wide = work["wide"][:, :rows]
        valid, source = self._in_layout(wide.transpose(1, 0, 2, 3), dout, work["blocks"])
        valid[...] = source  # d out in the products' layout
        wide = wide.reshape(FN, -1)
        np.add.reduce(wide, axis=1, out=db)
        col = work["col"][:, :, :, :rows].reshape(C * FH * FW, -1)
        np.matmul(col, wide.T, out=work["dW"])
        dW.reshape(FN, -1)[...] = work["dW"].T
        if dx is None:
            return None
        np.matmul(self.W.reshape(FN, -1).T, wide, out=col)  # the columns' gradient, in their place
        dpadded = work["dpadded"][:rows]
        dpadded.fill(0)
        add_windows(dpadded, col.reshape(C, FH, FW, rows, *dout.shape[2:]).transpose(3, 0, 1, 2, 4, 5), self.stride)
        dx[...] = dpadded[:, :, self.pad:self.pad + x.shape[2], self.pad:self.pad + x.shape[3]]
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
