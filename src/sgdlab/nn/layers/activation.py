"""The activation layers, built from the definitions in `sgdlab.nn.activations`."""

from ..activations import get_activation
from .base import Layer, spec_fields


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
