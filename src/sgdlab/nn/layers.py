"""The building blocks of backpropagation, with the book's names and interface.

Each layer's `forward` keeps what its `backward` will need; `backward(dout)`
takes the gradient of the loss with respect to the layer's output and returns
the gradient with respect to its input, never modifying `dout`. Layers with
parameters also leave their gradients in `dW` and `db`.

Dropout and batch normalization (chapter 6.3-6.4) behave differently in
training and at test time: their `forward(x, train_flg=True)` takes the
book's flag (`uses_train_flg`), the other layers' `forward(x)` does not.

Each layer kind also gives the training step (`sgdlab.engine`) the same
arithmetic on buffers that the step allocates once:
`forward_into(x, out, train, work)` writes the output into `out` (into `x`
itself for a kind that is `in_place`) and returns it; `backward_into(x, out,
dout, dx, grads, work)` writes the gradient for the input into `dx` (None for
the first layer, whose input gradient nothing needs) and those for its
`parameters` into `grads`, in the same order; `output_width(input_width)`
sizes the buffers and `workspace(rows, width)` makes what else a kind keeps
between the two (None for most).

The activation layers are built from the definitions in
`sgdlab.nn.activations`: `Sigmoid()` and `Relu()` are the book's names,
`activation_layer("tanh")` makes the layer of any activation by name.
"""

import contextlib

import numpy as np

from ..ranges import UNIT_INTERVAL
from .activations import get_activation
from .functions import softmax, softmax_cross_entropy

BATCH_NORM_EPS = 1e-6  # the book's 10e-7, added to the variance before its square root


class Layer:
    """What the layers share: no parameters, the output as wide as the input, nothing kept beside the buffers."""

    in_place = False
    uses_train_flg = False
    parameters = ()

    def output_width(self, input_width):
        return input_width

    def workspace(self, rows, width):
        return None


class Affine(Layer):
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

    @property
    def parameters(self):
        return (self.W, self.b)

    def output_width(self, input_width):
        return self.W.shape[1]

    def forward_into(self, x, out, train, work):
        np.matmul(x, self.W, out=out)
        out += self.b
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        dW, db = grads
        np.matmul(x.T, dout, out=dW)
        np.add.reduce(dout, axis=0, out=db)  # (the ufunc's own reduce: np.sum costs more on arrays this small)
        if dx is not None:
            np.matmul(dout, self.W.T, out=dx)
        return dx

    def __repr__(self):
        return f"Affine({self.W.shape[0]} -> {self.W.shape[1]})"


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


class Dropout(Layer):
    """Chapter 6.4.3's dropout: in training, each unit is kept where a uniform draw exceeds `dropout_ratio`
    and zeroed elsewhere (a fresh mask per forward pass, drawn from `rng`); at test time every unit is kept
    and the output scaled by (1 - dropout_ratio), the fraction of units training kept on average.

    This is the book's form. "Inverted" dropout (PyTorch's, Keras's) instead divides the kept units by
    (1 - ratio) in training and leaves test time alone: the same expected output, but its test-time
    network is the plain one, while here the test-time network carries the scale.
    """

    in_place = True
    uses_train_flg = True

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = UNIT_INTERVAL.check("dropout_ratio", dropout_ratio)  # at 1, nothing would pass
        self.rng = np.random.default_rng(rng)
        self.mask = None
        self.frozen = False  # inside `frozen_training`: keep the mask drawn first

    def draw_mask(self, shape):
        """A fresh mask: True for the units kept."""
        return self.rng.random(shape) > self.dropout_ratio

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        if not (self.frozen and self.mask is not None):
            self.mask = self.draw_mask(x.shape)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask

    def workspace(self, rows, width):
        return np.empty((rows, width)), np.empty((rows, width), dtype=bool)  # the draws, the mask

    def forward_into(self, x, out, train, work):
        if not train:
            x *= 1.0 - self.dropout_ratio
            return x
        draws, mask = work
        self.rng.random(out=draws)  # the same draws as draw_mask's
        np.greater(draws, self.dropout_ratio, out=mask)
        x *= mask
        return x

    def backward_into(self, x, out, dout, dx, grads, work):
        np.multiply(dout, work[1], out=dx)
        return dx

    def __repr__(self):
        return f"Dropout({self.dropout_ratio})"


def batch_normalize(x, axis=0):
    """(xn, xc, std, mean, var): each feature of `x` normalised by the mean and variance over the batch's
    `axis` (the variance of the batch itself, not the unbiased estimate), and the steps on the way."""
    mean = x.mean(axis=axis, keepdims=True)
    xc = x - mean
    var = np.mean(xc ** 2, axis=axis, keepdims=True)
    std = np.sqrt(var + BATCH_NORM_EPS)
    return xc / std, xc, std, mean, var


class BatchNormalization(Layer):
    """Chapter 6.3's batch normalization (Ioffe and Szegedy 2015), per feature.

    In training each feature is normalised by the batch's own mean and
    variance, xn = (x - mean) / sqrt(var + 1e-6), then scaled and shifted,
    out = gamma * xn + beta, with `gamma` and `beta` learned; the running mean
    and variance (starting at zero) follow the batches' with `momentum`, and
    test time normalises by them instead. Backward leaves `dgamma` and `dbeta`.
    """

    uses_train_flg = True

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = np.zeros_like(gamma) if running_mean is None else running_mean
        self.running_var = np.zeros_like(gamma) if running_var is None else running_var
        self.frozen = False  # inside `frozen_training`: leave the running statistics as they are
        self.input_shape = None
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if train_flg:
            xn, self.xc, self.std, mean, var = batch_normalize(x)
            self.batch_size, self.xn = x.shape[0], xn
            self.follow(mean[0], var[0])
        else:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + BATCH_NORM_EPS)
        return (self.gamma * xn + self.beta).reshape(self.input_shape)

    def backward(self, dout):
        dout = dout.reshape(dout.shape[0], -1)
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        return (dxc - dmu / self.batch_size).reshape(self.input_shape)

    def follow(self, mean, var):
        """running <- momentum * running + (1 - momentum) * batch, in place (the network's copies share them)."""
        if self.frozen:
            return
        for running, batch in ((self.running_mean, mean), (self.running_var, var)):
            running *= self.momentum
            running += (1 - self.momentum) * batch

    @property
    def parameters(self):
        return (self.gamma, self.beta)

    def workspace(self, rows, width):
        dtype = self.gamma.dtype
        return np.empty((rows, width), dtype), np.empty(width, dtype), np.empty(width, dtype)  # xn, mean, std

    def forward_into(self, x, out, train, work):
        if not train:
            np.subtract(x, self.running_mean, out=out)
            out /= np.sqrt(self.running_var + BATCH_NORM_EPS)
        else:
            xn, mean, std = work
            np.add.reduce(x, axis=0, out=mean)
            mean /= len(x)
            np.subtract(x, mean, out=xn)
            np.multiply(xn, xn, out=out)
            np.add.reduce(out, axis=0, out=std)
            std /= len(x)
            self.follow(mean, std)  # std holds the variance until here
            std += BATCH_NORM_EPS
            np.sqrt(std, out=std)
            xn /= std
            np.copyto(out, xn)
        out *= self.gamma
        out += self.beta
        return out

    def backward_into(self, x, out, dout, dx, grads, work):
        # The book's backward, its terms collected: dx = gamma / std * (dout - (dbeta + xn * dgamma) / N).
        dgamma, dbeta = grads
        xn, _, std = work
        np.add.reduce(dout, axis=0, out=dbeta)
        np.multiply(xn, dout, out=dx)
        np.add.reduce(dx, axis=0, out=dgamma)
        np.multiply(xn, dgamma, out=dx)
        dx += dbeta
        dx /= -len(dx)
        dx += dout
        dx *= self.gamma / std
        return dx

    def __repr__(self):
        return "BatchNormalization()"


@contextlib.contextmanager
def frozen_training(layers):
    """Training-mode forward passes that all see one network: each dropout mask is drawn once, on the first
    pass, and kept; running statistics stay as they are. A numerical gradient's nudges need this, or each
    loss would be of a differently masked network (and every nudge would move the statistics)."""
    stateful = [layer for layer in layers if isinstance(layer, (Dropout, BatchNormalization))]
    for layer in stateful:
        layer.frozen = True
        if isinstance(layer, Dropout):
            layer.mask = None
    try:
        yield
    finally:
        for layer in stateful:
            layer.frozen = False


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
