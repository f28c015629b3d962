"""The activation layers, built from the definitions in `sgdlab.nn.activations`."""

import numpy as np

from ..activations import get_activation
from .base import Layer, in_channel, spec_fields


class ActivationLayer(Layer):
    """out = f(x) for an `Activation` f; its backward needs only the output it kept."""

    def __init__(self, activation):
        self.activation = activation
        self.out = None

    def forward(self, x):
        self.out = self.activation.forward(x)
        return self.out

    def backward(self, dout):
        return self.activation.backward(dout, self.out)

    @property
    def commutes_with_max(self):
        return self.activation.commutes_with_max

    def spec(self):
        return {"type": self.activation.name}

    @classmethod
    def from_spec(cls, spec, input_shape, make):
        spec_fields(spec, {})
        return activation_layer(spec["type"])

    in_place = True  # its backward needs only the output, so the output can take the input's place

    def forward_into(self, x, out, train, work):
        self.activation.forward_in_place(x)
        return x

    def backward_into(self, x, out, dout, dx, grads, work):
        self.activation.backward_into(dout, out, dx)
        return dx

    # The fast numerical gradient's forms (see `Layer.carry`): f itself on the carried values; with kinks
    # sought, a nudge crosses one where it moves an input beyond the reach of its linear piece.
    channelwise = True

    @property
    def kink(self):
        if self.activation.linear_pieces(np.zeros(1)) is None:
            return None
        return f"moves some {self.activation.name} input across its kink"

    def reference_state(self, x, out, find_kinks):
        pieces = self.activation.linear_pieces(x) if find_kinks else None
        return None if pieces is None else pieces[1]  # how far each input may move on its linear piece

    def carry(self, moved, x, out, state, channel):
        crossed = None
        if state is not None:
            off = np.abs(moved - in_channel(x, channel)) > in_channel(state, channel)
            crossed = off.reshape(len(moved), -1).any(axis=1)
        return self.activation.forward(moved), crossed

    def __repr__(self):
        return f"{self.activation.name.capitalize()}()"  # the book's layer names: Sigmoid(), Relu(), Tanh()


def activation_layer(name):
    """The layer of the activation called `name` ("sigmoid", "relu", "tanh", ...): the book's class where it
    names one (`Sigmoid`, `Relu`, so that a network's layers are what the book's code expects of them)."""
    book_class = BOOK_ACTIVATION_LAYERS.get(name)
    return book_class() if book_class is not None else ActivationLayer(get_activation(name))


class Sigmoid(ActivationLayer):
    """out = sigmoid(x); its local derivative out * (1 - out) needs only the output."""

    def __init__(self):
        super().__init__(get_activation("sigmoid"))


class Relu(ActivationLayer):
    """out = max(0, x); the gradient passes only where the input was positive."""

    def __init__(self):
        super().__init__(get_activation("relu"))


BOOK_ACTIVATION_LAYERS = {"sigmoid": Sigmoid, "relu": Relu}
