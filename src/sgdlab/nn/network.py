"""Fully connected networks: the book's TwoLayerNet and its deeper generalisation.

A network is a stack Affine, activation, Affine, ..., Affine, SoftmaxWithLoss.
Its parameters live in `params` (`W1, b1, W2, b2, ...`), the arrays the layers
compute with, so an optimizer that updates them in place trains the network.
Everything here is the book's readable version; `sgdlab.engine` computes the
same numbers faster from the same definitions (the training step, the
whole-set forward pass, the fast numerical gradient).
"""

import numpy as np

from ..errors import ConfigError
from ..ranges import NON_NEGATIVE_NUMBER, POSITIVE_INT
from .activations import get_activation
from .functions import as_labels, softmax
from .gradient import numerical_gradient
from .init import check_weight_init, initial_weights
from .layers import ActivationLayer, Affine, SoftmaxWithLoss


MAX_PARAMETERS = 2 ** 30  # 4 GB of float32 weights, before gradients and optimizer state: far beyond MNIST's needs


def weight_decay_terms(W, decay_lambda):
    """Each weight's share of the weight decay, lambda / 2 * w^2: the penalty is their sum."""
    return 0.5 * decay_lambda * W ** 2


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
    normal draws from `rng` (a `numpy.random.Generator`, or a seed), where
    `weight_init_std` is a number or a fan-in scale ("xavier", "he": see
    `sgdlab.nn.init`); biases start at zero. `activation` names one of
    `sgdlab.nn.activations`. `weight_decay_lambda` (chapter 6.4.1) adds
    lambda / 2 * sum(W ** 2) over every weight matrix (not the biases) to the
    loss, and so lambda * W to each weight's gradient.
    """

    def __init__(self, sizes, activation="sigmoid", weight_init_std=0.01, rng=None, dtype=np.float64,
                 weight_decay_lambda=0.0):
        sizes = tuple(int(n) for n in sizes)
        if len(sizes) < 2 or not all(POSITIVE_INT.contains(n) for n in sizes):
            raise ConfigError(f"layer sizes must be two or more positive integers, got {sizes}")
        count = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        if count > MAX_PARAMETERS:
            raise ConfigError(f"layer sizes {sizes} make {count:,} parameters, more than the {MAX_PARAMETERS:,} "
                              "sgdlab builds: choose narrower layers")
        self.sizes = sizes
        self.hidden_activation = get_activation(activation)
        self.activation = activation
        self.weight_init_std = check_weight_init("weight_init_std", weight_init_std)
        self.weight_decay_lambda = NON_NEGATIVE_NUMBER.check("weight_decay_lambda", weight_decay_lambda)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(rng)

        self.params = Params()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.params[f"W{i}"] = initial_weights(n_in, n_out, self.weight_init_std, rng, self.dtype)
            self.params[f"b{i}"] = np.zeros(n_out, dtype=self.dtype)

        self.affine_layers = [Affine(self.params[f"W{i}"], self.params[f"b{i}"]) for i in range(1, len(sizes))]
        self.layers = []
        for affine in self.affine_layers[:-1]:
            self.layers += [affine, ActivationLayer(self.hidden_activation)]
        self.layers.append(self.affine_layers[-1])
        self.last_layer = SoftmaxWithLoss()

    @property
    def num_params(self):
        return sum(p.size for p in self.params.values())

    def scores(self, x):
        """The last affine layer's output (the softmax's input) for a batch `x` of float pixels."""
        if not np.issubdtype(np.asarray(x).dtype, np.floating):
            raise ConfigError(f"the network takes float pixels in 0..1, got {np.asarray(x).dtype}: load the images "
                              "with load_mnist() (normalize=True), or divide uint8 pixels by 255")
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def predict(self, x):
        """Class probabilities for a batch `x`, as chapter 4's `predict`."""
        return softmax(self.scores(x))

    def loss(self, x, t):
        """Mean cross-entropy on the batch `x` with label or one-hot targets `t`, plus the weight decay."""
        return self.last_layer.forward(self.scores(x), t) + self.weight_decay()

    def weight_decay(self):
        """lambda / 2 * sum(W ** 2) over the weight matrices: the loss's penalty on large weights (0 without it)."""
        if not self.weight_decay_lambda:
            return 0.0
        return sum(float(np.sum(weight_decay_terms(affine.W, self.weight_decay_lambda))) for affine in self.affine_layers)

    def accuracy(self, x, t):
        """Fraction of samples whose most probable class is the target (labels or one-hot)."""
        return float(np.count_nonzero(self.scores(x).argmax(axis=1) == as_labels(t))) / x.shape[0]

    def loss_and_gradient(self, x, t):
        """The batch loss and its gradient by backpropagation, from one forward pass."""
        loss = self.loss(x, t)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for i, affine in enumerate(self.affine_layers, start=1):
            grads[f"W{i}"] = affine.dW + self.weight_decay_lambda * affine.W if self.weight_decay_lambda else affine.dW
            grads[f"b{i}"] = affine.db
        return loss, grads

    def gradient(self, x, t):
        """Gradient of the batch loss for every parameter, by backpropagation."""
        return self.loss_and_gradient(x, t)[1]

    def numerical_gradient(self, x, t, h=1e-4):
        """Gradient of the batch loss for every parameter, by central differences, as the book computes it.

        Every element of every parameter is nudged by +h and -h and the whole
        loss recomputed: two forward passes per parameter (about 80000 for the
        book's net, tens of seconds). `sgdlab.numerical_gradient_fast(network, x, t)`
        computes the same numbers, evaluating only what each nudge changes,
        over a thousand times sooner; training with `grad="numerical"` uses it.
        """

        def loss_of_params(_):
            return self.loss(x, t)

        return {key: numerical_gradient(loss_of_params, param, h) for key, param in self.params.items()}

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
            **self._weight_decay_setting(),
        }

    def _weight_decay_setting(self):
        """The weight decay for `architecture()`, only when there is one (so files without it stay as they were)."""
        return {"weight_decay_lambda": self.weight_decay_lambda} if self.weight_decay_lambda else {}

    def __repr__(self):
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{layers}, {self.last_layer!r}], params={self.num_params})"


class TwoLayerNet(MultiLayerNet):
    """The book's network: affine, sigmoid, affine, softmax (784-50-10 by default)."""

    def __init__(self, input_size=784, hidden_size=50, output_size=10, weight_init_std=0.01,
                 activation="sigmoid", rng=None, dtype=np.float64, weight_decay_lambda=0.0):
        super().__init__((input_size, hidden_size, output_size), activation, weight_init_std, rng, dtype,
                         weight_decay_lambda)

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
            **self._weight_decay_setting(),
        }


NETWORK_CLASSES = {cls.__name__: cls for cls in (MultiLayerNet, TwoLayerNet)}


def network_from_architecture(architecture):
    """Build an untrained network from the dict `architecture()` returned."""
    spec = dict(architecture)
    cls = NETWORK_CLASSES[spec.pop("class")]
    return cls(**spec)
