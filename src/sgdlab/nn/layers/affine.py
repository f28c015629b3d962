"""The fully connected layer."""

import math

import numpy as np

from ...errors import ConfigError
from ...ranges import POSITIVE_INT
from .base import Layer, in_channel, product_dtype, spec_fields


class Affine(Layer):
    """out = x @ W + b, the fully connected layer; an (N, C, H, W) input is flattened to (N, C * H * W) rows
    and the gradient `backward` returns has the input's shape."""

    kind = "affine"
    batched_product = True
    parameter_names = ("W", "b")
    decayed_names = ("W",)

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.original_x_shape)

    def output_shape(self, input_shape):
        if math.prod(input_shape) != self.W.shape[0]:
            raise ConfigError(f"{self!r} takes {self.W.shape[0]} inputs, got samples of shape {tuple(input_shape)}")
        return (self.W.shape[1],)

    def spec(self):
        return {"type": self.kind, "output_size": self.W.shape[1]}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        output_size = spec_fields(spec, {"output_size": (POSITIVE_INT, None)})["output_size"]
        fan_in = math.prod(input_shape)
        return cls(make.weights((fan_in, output_size), fan_in), make.zeros(output_size))

    def forward_into(self, x, out, train, work):
        np.matmul(x.reshape(len(x), -1), self.W, out=out, dtype=product_dtype(out.dtype))
        out += self.b
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        dW, db = grads
        np.matmul(x.reshape(len(x), -1).T, dout, out=dW)
        np.add.reduce(dout, axis=0, out=db)  # (the ufunc's own reduce: np.sum costs more on arrays this small)
        if dx is not None:
            np.matmul(dout, self.W.T, out=dx.reshape(len(dx), -1))
        return dx

    # The fast numerical gradient's forms (see `Layer.carry`). A carried input moves the output by its change
    # times the weights' rows it reaches: those of the one image channel a nudge has moved, when it is given.
    def carry(self, moved, x, out, state, channel):
        W = np.asarray(self.W, np.float64)
        if channel is not None:
            per_channel = W.shape[0] // x.shape[1]
            W = W[channel * per_channel:(channel + 1) * per_channel]
        change = moved - in_channel(x, channel)
        return out[None] + change.reshape(len(moved), len(x), -1) @ W, None

    def nudged(self, name, entries, e, x, out, prepared, channel):
        """W[a, j] moves unit j by e times input a, b[j] by e."""
        moved = np.repeat(out[None], len(entries), axis=0)
        a, j = np.divmod(entries, out.shape[1]) if name == "W" else (None, entries)
        shift = e[:, None] if name == "b" else e[:, None] * x.reshape(len(x), -1)[:, a].T
        moved[np.arange(len(entries)), :, j] += shift
        return moved

    def __repr__(self):
        return f"Affine({self.W.shape[0]} -> {self.W.shape[1]})"
