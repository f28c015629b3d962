"""The sigmoid, 1 / (1 + exp(-z)): chapter 3's smooth step and chapter 4's hidden activation."""

import numpy as np

from ._definition import Activation, rational_change

EXP_CAP = 80.0  # exp(80) = 5.5e34 fits float32 (max 3.4e38); sigmoid(-80) = 2e-35 changes nothing that matters


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(x):
    """d sigmoid / dx = sigmoid(x) * (1 - sigmoid(x))."""
    s = sigmoid(x)
    return s * (1 - s)


class SigmoidActivation(Activation):
    slope_bound = 0.25  # the largest slope, at z = 0

    def forward(self, z):
        return sigmoid(z)

    def forward_in_place(self, z):
        np.negative(z, out=z)
        np.minimum(z, EXP_CAP, out=z)  # exp never overflows
        np.exp(z, out=z)
        z += 1
        np.reciprocal(z, out=z)

    def backward(self, dout, out):
        return dout * (1.0 - out) * out  # sigmoid' = y (1 - y)

    def backward_into(self, dout, out, dx):
        np.subtract(1, out, out=dx)
        dx *= dout
        dx *= out

    def change_state(self, z, out):
        return out, out * (1.0 - out)

    def change(self, state, e):
        # sigmoid(z + e) - sigmoid(z) = y (1 - y) q / (1 + y q) with q = expm1(e)
        y, slope = state
        return rational_change(y, slope, np.expm1(e[:, None]))


ACTIVATION = SigmoidActivation()
