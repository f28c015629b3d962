"""The rectified linear unit, max(0, z): the hidden activation of deeper nets."""

import numpy as np

from ._definition import Activation


def relu(x):
    """max(0, x)."""
    return np.maximum(x, 0)


def relu_grad(x):
    """1 where x > 0, else 0 (the subgradient 0 is taken at x == 0)."""
    return (np.asarray(x) > 0).astype(np.result_type(x, np.float32))


class ReluActivation(Activation):
    slope_bound = 1.0
    commutes_with_max = True  # non-decreasing; values it makes equal (all <= 0) have gradient 0

    def forward(self, z):
        return relu(z)

    def forward_in_place(self, z):
        np.maximum(z, 0, out=z)

    def backward(self, dout, out):
        return np.where(out > 0, dout, 0).astype(dout.dtype, copy=False)  # the gradient passes where z > 0

    def backward_into(self, dout, out, dx):
        np.greater(out, 0, out=dx)
        dx *= dout

    def linear_pieces(self, z):
        return (z > 0).astype(z.dtype), np.abs(z)  # a unit at its kink (z == 0) has reach 0


ACTIVATION = ReluActivation()
