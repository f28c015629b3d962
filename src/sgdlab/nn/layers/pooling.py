"""Chapter 7's max pooling."""

import numpy as np

from ...errors import ConfigError
from ...ranges import NON_NEGATIVE_INT, POSITIVE_INT
from ..im2col import col2im, conv_output_size, im2col
from .base import Layer, check_window, image_shape, in_channel, padded_size, spec_fields


class Pooling(Layer):
    """Chapter 7's max pooling: each channel's pool_h x pool_w windows, `stride` apart, give their maximum.

    The book's signature and defaults (its repository's `Pooling(pool_h,
    pool_w, stride=2, pad=0)`). `backward` passes each output's gradient to
    the input its window took the maximum from: the first one, in the
    window's row-major order, where several tie (the book's `argmax`).
    The book's flaws fixed: padding is -inf, not 0 (a zero pad would win a
    window of negative values and take its gradient), its output size
    accounts for the padding, and a window left over at the edge (a stride
    that does not fit) is refused rather than silently dropped.
    """

    kind = "pooling"
    takes_max = True

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = POSITIVE_INT.check("pool_h", pool_h)
        self.pool_w = POSITIVE_INT.check("pool_w", pool_w)
        self.stride = POSITIVE_INT.check("stride", stride)
        self.pad = NON_NEGATIVE_INT.check("pad", pad)
        check_window(repr(self), "window", self.pool_h, self.pool_w)
        if self.pad >= min(self.pool_h, self.pool_w):
            raise ConfigError(f"{self!r}: the padding must be smaller than the window, or some window would hold "
                              "padding alone")
        self.x = None
        self.arg_max = None

    @property
    def window(self):
        return (self.pool_h, self.pool_w, self.stride, self.pad)

    def output_shape(self, input_shape):
        C, H, W = image_shape(self, input_shape, self.pad)
        return (C, conv_output_size(H, self.pool_h, self.stride, self.pad, f"{self!r} (height)"),
                conv_output_size(W, self.pool_w, self.stride, self.pad, f"{self!r} (width)"))

    def work_per_sample(self, input_shape):
        """Its output, every window's values (pool_h * pool_w per output) and its padded copy."""
        C, out_h, out_w = self.output_shape(input_shape)
        return C * out_h * out_w * (self.pool_h * self.pool_w + 1) + padded_size(input_shape, self.pad)

    def _padded(self, x):
        if not self.pad:
            return x
        return np.pad(x, [(0, 0), (0, 0), (self.pad, self.pad), (self.pad, self.pad)], constant_values=-np.inf)

    def forward(self, x):
        C, out_h, out_w = self.output_shape(x.shape[1:])
        col = im2col(self._padded(x), self.pool_h, self.pool_w, self.stride).reshape(-1, self.pool_h * self.pool_w)
        self.x = x
        self.arg_max = np.argmax(col, axis=1)
        out = col[np.arange(len(col)), self.arg_max]
        return out.reshape(len(x), out_h, out_w, C).transpose(0, 3, 1, 2)

    def backward(self, dout):
        N, C, H, W = self.x.shape
        pool_size = self.pool_h * self.pool_w
        dout = dout.transpose(0, 2, 3, 1)
        dmax = np.zeros((dout.size, pool_size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.ravel()
        dcol = dmax.reshape(-1, C * pool_size)
        padded_shape = (N, C, H + 2 * self.pad, W + 2 * self.pad)
        dx = col2im(dcol, padded_shape, self.pool_h, self.pool_w, self.stride)
        return dx[:, :, self.pad:self.pad + H, self.pad:self.pad + W]

    def spec(self):
        if self.pool_h != self.pool_w:
            raise ConfigError(f"{self!r}: a network's pooling windows are square")
        return {"type": self.kind, "pool_size": self.pool_h, "stride": self.stride, "pad": self.pad}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        """{"type": "pooling", "pool_size": 2, "stride": 2, "pad": 0}, square windows; the class's defaults."""
        values = spec_fields(spec, {"pool_size": (POSITIVE_INT, None), "stride": (POSITIVE_INT, 2),
                                    "pad": (NON_NEGATIVE_INT, 0)})
        return cls(values["pool_size"], values["pool_size"], values["stride"], values["pad"])

    # The training step's forms: no window is copied. Each of the pool_h * pool_w offsets in the window is one
    # view of the (padded) input, (rows, C, OH, OW); the maximum is taken offset by offset, and in training the
    # offset it came from is kept (the first of equal ones, as the book's argmax): backward then writes each
    # offset's share of the gradient through the same views. Where the windows tile the input and the layer
    # before lays its output out in `blocks`, each view is a contiguous block rather than a strided one.
    @property
    def blocks(self):
        """(pool_h, pool_w) when the windows tile the input (stride the window's size, no padding), else None."""
        return (self.pool_h, self.pool_w) if self.stride == self.pool_h == self.pool_w and not self.pad else None

    def offset_views(self, images, out_h, out_w, blocked=False):
        """The (rows, C, OH, OW) view of `images` at each window offset (i, j), row-major: images[:, :,
        i + stride * y, j + stride * x], or, `blocked`, block i * pool_w + j of the images' values."""
        if blocked:
            blocks = images.reshape(len(images), images.shape[1], self.pool_h * self.pool_w, out_h, out_w)
            return [blocks[:, :, k] for k in range(self.pool_h * self.pool_w)]
        s = self.stride
        return [images[:, :, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s]
                for i in range(self.pool_h) for j in range(self.pool_w)]

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        C, out_h, out_w = self.output_shape(input_shape)
        _, H, W = input_shape
        padded_shape = (rows, C, H + 2 * self.pad, W + 2 * self.pad)
        work = {"padded": np.full(padded_shape, -np.inf, dtype) if self.pad else None, "blocked": blocks is not None}
        if train:
            index = np.uint8 if self.pool_h * self.pool_w <= 256 else np.intp
            work["arg_max"], work["later"] = np.empty((rows, C, out_h, out_w), index), np.empty((rows, C, out_h, out_w), index)
            work["greater"] = np.empty((rows, C, out_h, out_w), bool)
            work["share"] = np.empty((rows, C, out_h, out_w), dtype)
            work["dpadded"] = np.empty(padded_shape, dtype) if self.pad else None
        return work

    def _source(self, images, padded):
        """`images` as the windows see them: inside a buffer padded with `padded`'s border, or as they are."""
        if not self.pad:
            return images
        padded = padded[:len(images)]
        padded[:, :, self.pad:-self.pad, self.pad:-self.pad] = images
        return padded

    def forward_into(self, x, out, train, work):
        rows = len(x)
        views = self.offset_views(self._source(x, work["padded"]), *out.shape[2:], work["blocked"])
        np.copyto(out, views[0])
        if not train:
            for view in views[1:]:
                np.maximum(out, view, out=out)
            return out
        arg_max, greater, later = work["arg_max"][:rows], work["greater"][:rows], work["later"][:rows]
        arg_max.fill(0)
        for k, view in enumerate(views[1:], start=1):
            np.greater(view, out, out=greater)  # strictly: an equal later value leaves the first maximum
            np.maximum(out, view, out=out)
            # k where this offset wins, else 0; no later offset has won yet, so the larger is the winner
            np.multiply(greater, later.dtype.type(k), out=later)
            np.maximum(arg_max, later, out=arg_max)
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        if dx is None:
            return None
        rows = len(x)
        arg_max, share = work["arg_max"][:rows], work["share"][:rows]
        if work["blocked"]:  # dx's blocks at once: 1.0 in block k where offset k won, then times dout
            blocks = dx.reshape(rows, dx.shape[1], self.pool_h * self.pool_w, *dout.shape[2:])
            offsets = np.arange(self.pool_h * self.pool_w, dtype=arg_max.dtype)[:, None, None]
            np.equal(arg_max[:, :, None], offsets, out=blocks, casting="unsafe")
            blocks *= dout[:, :, None]
            return dx
        target = work["dpadded"][:rows] if self.pad else dx
        tiled = self.blocks is not None  # every input in exactly one window: each view is written, never added to
        if not tiled:
            target.fill(0)
        for k, view in enumerate(self.offset_views(target, *dout.shape[2:])):
            np.equal(arg_max, k, out=share, casting="unsafe")  # 1.0 where offset k won, else 0.0
            if tiled:
                np.multiply(dout, share, out=view)
            else:
                share *= dout
                view += share
        if self.pad:
            dx[...] = target[:, :, self.pad:-self.pad, self.pad:-self.pad]
        return dx

    # The fast numerical gradient's forms (see `Layer.carry`): each window's maximum of the carried values, as
    # the training step takes it; with kinks sought, a nudge crosses one where it changes a window's winner
    # (its first maximum, as the book's argmax takes it).
    channelwise = True
    kink = "changes which input a max pooling window takes"

    def reference_state(self, x, out, find_kinks):
        if not find_kinks:
            return None
        N, C, out_h, out_w = out.shape
        return self.arg_max.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2).copy()  # (N, C, OH, OW)

    def carry(self, moved, x, out, state, channel):
        K, N, C, H, W = moved.shape
        images = moved.reshape(K * N, C, H, W)
        if self.pad:
            images = np.pad(images, [(0, 0), (0, 0), (self.pad, self.pad), (self.pad, self.pad)],
                            constant_values=-np.inf)
        out_shape = out.shape[2:]
        views = self.offset_views(images, *out_shape)
        pooled = views[0].copy()
        winner = np.zeros(pooled.shape, np.intp) if state is not None else None
        for k, view in enumerate(views[1:], start=1):
            if winner is not None:
                winner[view > pooled] = k  # strictly: the first maximum wins a tie, as the book's argmax
            np.maximum(pooled, view, out=pooled)
        crossed = None
        if winner is not None:
            changed = winner.reshape(K, N, C, *out_shape) != in_channel(state, channel)
            crossed = changed.reshape(K, -1).any(axis=1)
        return pooled.reshape(K, N, C, *out_shape), crossed

    def __repr__(self):
        return f"Pooling({self.pool_h}x{self.pool_w}, stride {self.stride}, pad {self.pad})"
