"""The hyperbolic tangent, tanh(z): a sigmoid centred on zero, tanh(z) = 2 sigmoid(2z) - 1."""

import numpy as np

from ._definition import Activation, rational_change


class TanhActivation(Activation):
    slope_bound = 1.0  # the largest slope, at z = 0

    def forward(self, z):
        return np.tanh(z)

    def forward_in_place(self, z):
        np.tanh(z, out=z)

    def backward(self, dout, out):
        return dout * (1.0 - out * out)  # tanh' = 1 - y^2

    def backward_into(self, dout, out, dx):
        np.multiply(out, out, out=dx)
        np.subtract(1, dx, out=dx)
        dx *= dout

    def change_state(self, z, out):
        return out, 1.0 - out * out

    def change(self, state, e):
        # tanh(z + e) - tanh(z) = (1 - y^2) tanh(e) / (1 + y tanh(e)), from tanh's addition formula
        y, slope = state
        return rational_change(y, slope, np.tanh(e[:, None]))


ACTIVATION = TanhActivation()
