"""The building blocks of backpropagation, with the book's names and interface.

Each layer's `forward` keeps what its `backward` will need; `backward(dout)`
takes the gradient of the loss with respect to the layer's output and returns
the gradient with respect to its input, never modifying `dout`. Layers with
parameters also leave their gradients in `dW` and `db`.

Each layer kind also gives the training step (`sgdlab.engine`) the same
arithmetic on buffers that the step allocates once:
`forward_into(x, out)` writes the output into `out` (into `x` itself for a
kind that is `in_place`) and returns it; `backward_into(x, out, dout, dx,
grads)` writes the gradient for the input into `dx` (None for the first
layer, whose input gradient nothing needs) and those for its `parameters`
into `grads`, in the same order; `output_width(input_width)` sizes the buffers.

The activation layers are built from the definitions in
`sgdlab.nn.activations`: `Sigmoid()` and `Relu()` are the book's names,
`activation_layer("tanh")` makes the layer of any activation by name.
"""

import numpy as np

from .activations import get_activation
from .functions import softmax, softmax_cross_entropy


class Affine:
    """out = x @ W + b, the fully connected layer."""

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

    in_place = False

    @property
    def parameters(self):
        return (self.W, self.b)

    def output_width(self, input_width):
        return self.W.shape[1]

    def forward_into(self, x, out):
        np.matmul(x, self.W, out=out)
        out += self.b
        return out

    def backward_into(self, x, out, dout, dx, grads):
        dW, db = grads
        np.matmul(x.T, dout, out=dW)
        np.add.reduce(dout, axis=0, out=db)  # (the ufunc's own reduce: np.sum costs more on arrays this small)
        if dx is not None:
            np.matmul(dout, self.W.T, out=dx)
        return dx

    def __repr__(self):
        return f"Affine({self.W.shape[0]} -> {self.W.shape[1]})"


class ActivationLayer:
    """out = f(x) for an `Activation` f; its backward needs only the output it kept."""

    def __init__(self, activation):
        self.activation = activation
        self.out = None

    def forward(self, x):
        self.out = self.activation.forward(x)
        return self.out

    def backward(self, dout):
        return self.activation.backward(dout, self.out)

    in_place = True  # its backward needs only the output, so the output can take the input's place
    parameters = ()

    def output_width(self, input_width):
        return input_width

    def forward_into(self, x, out):
        self.activation.forward_in_place(x)
        return x

    def backward_into(self, x, out, dout, dx, grads):
        self.activation.backward_into(dout, out, dx)
        return dx

    def __repr__(self):
        return f"{self.activation.name.capitalize()}()"  # the book's layer names: Sigmoid(), Relu(), Tanh()


def activation_layer(name):
    """The layer of the activation called `name` ("sigmoid", "relu", "tanh", ...)."""
    return ActivationLayer(get_activation(name))


class Sigmoid(ActivationLayer):
    """out = sigmoid(x); its local derivative out * (1 - out) needs only the output."""

    def __init__(self):
        super().__init__(get_activation("sigmoid"))


class Relu(ActivationLayer):
    """out = max(0, x); the gradient passes only where the input was positive."""

    def __init__(self):
        super().__init__(get_activation("relu"))


class SoftmaxWithLoss:
    """Softmax followed by mean cross-entropy, fused so that backward is simply (y - t) / N.

    `forward(x, t)` takes scores and label or one-hot targets and returns the
    scalar loss; `backward(dout=1)` returns d loss / d scores. The training
    step computes the same in place: `functions.softmax_cross_entropy_in_place`.
    """

    def __init__(self):
        self.y = None
        self.t = None
        self.loss = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = softmax_cross_entropy(x, t)
        return self.loss

    def backward(self, dout=1.0):
        batch_size = self.y.shape[0]
        dx = self.y.copy()
        if self.t.size == self.y.size:  # one-hot targets
            dx -= self.t
        else:
            dx[np.arange(batch_size), self.t] -= 1
        return dx * (dout / batch_size)

    def __repr__(self):
        return "SoftmaxWithLoss()"
