"""Chapter 6.4.3's dropout."""

import contextlib

import numpy as np

from ...ranges import UNIT_INTERVAL
from .base import Layer, in_channel, spec_fields


class Dropout(Layer):
    """Chapter 6.4.3's dropout: in training, each unit is kept where a uniform draw exceeds `dropout_ratio`
    and zeroed elsewhere (a fresh mask per forward pass, drawn from `rng`); at test time every unit is kept
    and the output scaled by (1 - dropout_ratio), the fraction of units training kept on average.

    This is the book's form. "Inverted" dropout (PyTorch's, Keras's) instead divides the kept units by
    (1 - ratio) in training and leaves test time alone: the same expected output, but its test-time
    network is the plain one, while here the test-time network carries the scale.
    """

    kind = "dropout"
    in_place = True
    per_sample = False  # its masks are drawn for the whole batch at once
    uses_train_flg = True

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = UNIT_INTERVAL.check("dropout_ratio", dropout_ratio)  # at 1, nothing would pass
        self.rng = np.random.default_rng(rng)
        self.mask = None
        self.is_frozen = False  # inside `frozen()`: keep the mask drawn first

    def draw_mask(self, shape):
        """A fresh mask: True for the units kept."""
        return self.rng.random(shape) > self.dropout_ratio

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        if not (self.is_frozen and self.mask is not None):
            self.mask = self.draw_mask(x.shape)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask

    @contextlib.contextmanager
    def frozen(self):
        self.is_frozen, self.mask = True, None
        try:
            yield
        finally:
            self.is_frozen = False

    def spec(self):
        return {"type": self.kind, "ratio": self.dropout_ratio}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        return cls(spec_fields(spec, {"ratio": (UNIT_INTERVAL, 0.5)})["ratio"], make.rng)

    def workspace(self, rows, input_shape, dtype, train=True, blocks=None):
        if not train:
            return None
        return np.empty((rows, *input_shape)), np.empty((rows, *input_shape), dtype=bool)  # the draws, the mask

    def forward_into(self, x, out, train, work):
        if not train:
            x *= 1.0 - self.dropout_ratio
            return x
        draws, mask = work
        self.rng.random(out=draws[:len(x)])  # the same draws as draw_mask's
        np.greater(draws[:len(x)], self.dropout_ratio, out=mask[:len(x)])
        x *= mask[:len(x)]
        return x

    def backward_into(self, x, out, dout, dx, grads, work):
        np.multiply(dout, work[1][:len(dout)], out=dx)
        return dx

    # The fast numerical gradient's forms (see `Layer.carry`): every nudge sees the mask the reference pass drew.
    channelwise = True

    def reference_state(self, x, out, find_kinks):
        return self.mask.astype(np.float64)

    def carry(self, moved, x, out, state, channel):
        return moved * in_channel(state, channel), None

    def __repr__(self):
        return f"Dropout({self.dropout_ratio})"
