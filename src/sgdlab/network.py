"""Fully connected networks: the book's TwoLayerNet and its deeper generalisation.

A network is a stack Affine, activation, Affine, ..., Affine, SoftmaxWithLoss.
Its parameters live in `params` (`W1, b1, W2, b2, ...`), the arrays the layers
compute with, so an optimizer that updates them in place trains the network.
"""

import numpy as np

from .errors import ConfigError
from .evaluation import as_labels, count_correct
from .functions import softmax
from .gradient import numerical_gradient
from .layers import ACTIVATIONS, Affine, SoftmaxWithLoss
from .perturbation import numerical_gradient_fast


class Params(dict):
    """The parameter dict, keyed `W1, b1, W2, b2, ...`.

    The layers hold references to these arrays, so assigning `params["W1"] = W`
    copies `W` into the existing array instead of replacing it (a shape mismatch
    raises); `params["W1"] -= lr * grad` works as usual.
    """

    def __setitem__(self, key, value):
        if key not in self:
            return super().__setitem__(key, value)
        current = self[key]
        if value is current:
            return None
        value = np.asarray(value)
        if value.shape != current.shape:
            raise ValueError(f"params[{key!r}] has shape {current.shape}; cannot assign an array of shape {value.shape}")
        np.copyto(current, value)
        return None


class MultiLayerNet:
    """A fully connected classifier with `len(sizes) - 1` affine layers.

    `sizes` lists the width of every layer, input first: (784, 50, 10) is the
    book's two-layer net. Weights start as `weight_init_std` times standard
    normal draws from `rng` (a `numpy.random.Generator`, or a seed); biases
    start at zero.
    """

    def __init__(self, sizes, activation="sigmoid", weight_init_std=0.01, rng=None, dtype=np.float64):
        sizes = tuple(int(n) for n in sizes)
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ConfigError(f"layer sizes must be two or more positive integers, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}: use one of {', '.join(ACTIVATIONS)}")
        if not weight_init_std > 0:
            raise ConfigError(f"weight_init_std must be positive, got {weight_init_std}")
        self.sizes = sizes
        self.activation = activation
        self.weight_init_std = float(weight_init_std)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(rng)

        self.params = Params()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.params[f"W{i}"] = (weight_init_std * rng.standard_normal((n_in, n_out))).astype(self.dtype)
            self.params[f"b{i}"] = np.zeros(n_out, dtype=self.dtype)

        self.affine_layers = [Affine(self.params[f"W{i}"], self.params[f"b{i}"]) for i in range(1, len(sizes))]
        self.layers = []
        for affine in self.affine_layers[:-1]:
            self.layers += [affine, ACTIVATIONS[activation]()]
        self.layers.append(self.affine_layers[-1])
        self.last_layer = SoftmaxWithLoss()

    @property
    def num_params(self):
        return sum(p.size for p in self.params.values())

    def scores(self, x):
        """The last affine layer's output (the softmax's input) for a batch `x`."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def predict(self, x):
        """Class probabilities for a batch `x`, as chapter 4's `predict`."""
        return softmax(self.scores(x))

    def loss(self, x, t):
        """Mean cross-entropy on the batch `x` with label or one-hot targets `t`."""
        return self.last_layer.forward(self.scores(x), t)

    def accuracy(self, x, t):
        """Fraction of samples whose most probable class is the target (labels or one-hot)."""
        return count_correct(self, x, as_labels(t)) / x.shape[0]

    def loss_and_gradient(self, x, t):
        """The batch loss and its gradient by backpropagation, from one forward pass."""
        loss = self.loss(x, t)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for i, affine in enumerate(self.affine_layers, start=1):
            grads[f"W{i}"] = affine.dW
            grads[f"b{i}"] = affine.db
        return loss, grads

    def gradient(self, x, t):
        """Gradient of the batch loss for every parameter, by backpropagation."""
        return self.loss_and_gradient(x, t)[1]

    def numerical_gradient(self, x, t, h=1e-4, method="fast"):
        """Gradient of the batch loss for every parameter, by central differences.

        Both methods compute (L(w+h) - L(w-h)) / 2h for every parameter w.
        "textbook" nudges each element and recomputes the whole loss: two
        forward passes per parameter (about 80000 for the book's net).
        "fast" (see `sgdlab.perturbation`) evaluates only what each nudge
        changes, many nudges at once: the same numbers to float64 rounding,
        over a thousand times sooner.
        """
        if method == "fast":
            return self.loss_and_numerical_gradient(x, t, h)[1]
        if method != "textbook":
            raise ConfigError(f"unknown numerical gradient method {method!r}: use fast or textbook")

        def loss_of_params(_):
            return self.loss(x, t)

        return {key: numerical_gradient(loss_of_params, param, h) for key, param in self.params.items()}

    def loss_and_numerical_gradient(self, x, t, h=1e-4):
        """The batch loss and its numerical gradient (the fast method), in float64."""
        return numerical_gradient_fast(self, x, t, h)

    def copy(self):
        """An independent network with the same architecture and a copy of the weights."""
        clone = network_from_architecture(self.architecture())
        for key, value in self.params.items():
            clone.params[key] = value
        return clone

    def architecture(self):
        """What is needed to rebuild this network: its class name and constructor arguments."""
        return {
            "class": "MultiLayerNet",
            "sizes": list(self.sizes),
            "activation": self.activation,
            "weight_init_std": self.weight_init_std,
            "dtype": self.dtype.name,
        }

    def __repr__(self):
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{layers}, {self.last_layer!r}], params={self.num_params})"


class TwoLayerNet(MultiLayerNet):
    """The book's network: affine, sigmoid, affine, softmax (784-50-10 by default)."""

    def __init__(self, input_size=784, hidden_size=50, output_size=10, weight_init_std=0.01,
                 activation="sigmoid", rng=None, dtype=np.float64):
        super().__init__((input_size, hidden_size, output_size), activation, weight_init_std, rng, dtype)

    def architecture(self):
        input_size, hidden_size, output_size = self.sizes
        return {
            "class": "TwoLayerNet",
            "input_size": input_size,
            "hidden_size": hidden_size,
            "output_size": output_size,
            "activation": self.activation,
            "weight_init_std": self.weight_init_std,
            "dtype": self.dtype.name,
        }


NETWORK_CLASSES = {cls.__name__: cls for cls in (MultiLayerNet, TwoLayerNet)}


def network_from_architecture(architecture):
    """Build an untrained network from the dict `architecture()` returned."""
    spec = dict(architecture)
    cls = NETWORK_CLASSES[spec.pop("class")]
    return cls(**spec)
