"""Fully connected networks: the book's TwoLayerNet and its deeper generalisation.

A network is a stack Affine, activation, Affine, ..., Affine, SoftmaxWithLoss,
with batch normalization before each hidden activation and dropout after it
when asked.
Its parameters live in `params` (`W1, b1, W2, b2, ...`), the arrays the layers
compute with, so an optimizer that updates them in place trains the network.
Everything here is the book's readable version; `sgdlab.engine` computes the
same numbers faster from the same definitions (the training step, the
whole-set forward pass, the fast numerical gradient).
"""

import numpy as np

from ..errors import ConfigError
from ..ranges import NON_NEGATIVE_NUMBER, POSITIVE_INT, UNIT_INTERVAL
from .activations import get_activation
from .functions import as_labels, softmax
from .gradient import numerical_gradient
from .init import check_weight_init, initial_weights
from .layers import ActivationLayer, Affine, BatchNormalization, Dropout, SoftmaxWithLoss, frozen_training


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
    """A fully connected classifier, the book's `MultiLayerNet` and `MultiLayerNetExtend` (chapter 6) in one.

    `hidden_size_list` gives the width of each hidden layer: `MultiLayerNet(784,
    [100, 100], 10)` is 784-100-100-10. Weights start as `weight_init_std`
    times standard normal draws from `rng` (a `numpy.random.Generator`, or a
    seed), where `weight_init_std` is a number or a fan-in scale ("xavier",
    "he": see `sgdlab.nn.init`); biases start at zero. `activation` names one
    of `sgdlab.nn.activations`. `weight_decay_lambda` (6.4.1) adds lambda / 2 *
    sum(W ** 2) over every weight matrix (not the biases, nor batch norm's
    gamma and beta) to the loss, and so lambda * W to each weight's gradient.
    `use_batchnorm` puts a `BatchNormalization` after each hidden affine layer,
    before its activation (`gamma1, beta1, ...` join `params`);
    `use_dropout` a `Dropout(dropout_ratio)` after each hidden activation,
    its masks drawn from `rng` too (the book's `dropout_ration` is accepted).
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu", weight_init_std="relu",
                 weight_decay_lambda=0.0, use_dropout=False, dropout_ratio=0.5, use_batchnorm=False, rng=None,
                 dtype=np.float64, dropout_ration=None):
        if not isinstance(hidden_size_list, (list, tuple)):
            raise ConfigError(f"hidden_size_list is the list of hidden layer widths, such as [100, 100], got "
                              f"{hidden_size_list!r}")
        sizes = (input_size, *hidden_size_list, output_size)
        if not all(POSITIVE_INT.contains(n) for n in sizes):
            raise ConfigError(f"layer sizes must be positive integers, got {sizes}")
        count = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        if count > MAX_PARAMETERS:
            raise ConfigError(f"layer sizes {sizes} make {count:,} parameters, more than the {MAX_PARAMETERS:,} "
                              "sgdlab builds: choose narrower layers")
        self.sizes = tuple(int(n) for n in sizes)
        self.hidden_activation = get_activation(activation)
        self.activation = activation
        self.weight_init_std = check_weight_init("weight_init_std", weight_init_std)
        self.weight_decay_lambda = NON_NEGATIVE_NUMBER.check("weight_decay_lambda", weight_decay_lambda)
        self.use_dropout = bool(use_dropout)
        if dropout_ration is not None and dropout_ratio not in (0.5, dropout_ration):
            raise ConfigError(f"dropout_ratio {dropout_ratio} and dropout_ration {dropout_ration} are the same "
                              "setting (the book spells it dropout_ration): give one of them")
        self.dropout_ratio = UNIT_INTERVAL.check("dropout_ratio", dropout_ratio if dropout_ration is None
                                                 else dropout_ration)
        self.use_batchnorm = bool(use_batchnorm)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(rng)

        self.params = Params()
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1):
            self.params[f"W{i}"] = initial_weights(n_in, n_out, self.weight_init_std, rng, self.dtype)
            self.params[f"b{i}"] = np.zeros(n_out, dtype=self.dtype)

        self.affine_layers = [Affine(self.params[f"W{i}"], self.params[f"b{i}"]) for i in range(1, len(sizes))]
        self.batch_norm_layers, self.dropout_layers, self.layers = [], [], []
        for i, affine in enumerate(self.affine_layers[:-1], start=1):
            self.layers.append(affine)
            if self.use_batchnorm:
                self.params[f"gamma{i}"] = np.ones(affine.W.shape[1], dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(affine.W.shape[1], dtype=self.dtype)
                self.batch_norm_layers.append(BatchNormalization(self.params[f"gamma{i}"], self.params[f"beta{i}"]))
                self.layers.append(self.batch_norm_layers[-1])
            self.layers.append(ActivationLayer(self.hidden_activation))
            if self.use_dropout:
                self.dropout_layers.append(Dropout(self.dropout_ratio, rng))
                self.layers.append(self.dropout_layers[-1])
        self.layers.append(self.affine_layers[-1])
        self.last_layer = SoftmaxWithLoss()

    @property
    def running_statistics(self):
        """Batch norm's running means and variances, `running_mean1, running_var1, ...` (empty without it):
        not learned by gradients, but part of the trained network (test time normalises by them)."""
        statistics = Params()
        for i, layer in enumerate(self.batch_norm_layers, start=1):
            statistics[f"running_mean{i}"] = layer.running_mean
            statistics[f"running_var{i}"] = layer.running_var
        return statistics

    @property
    def num_params(self):
        return sum(p.size for p in self.params.values())

    def scores(self, x, train_flg=False):
        """The last affine layer's output (the softmax's input) for a batch `x` of float pixels; `train_flg`
        runs dropout and batch norm as in training (which draws masks and moves the running statistics)."""
        if not np.issubdtype(np.asarray(x).dtype, np.floating):
            raise ConfigError(f"the network takes float pixels in 0..1, got {np.asarray(x).dtype}: load the images "
                              "with load_mnist() (normalize=True), or divide uint8 pixels by 255")
        for layer in self.layers:
            x = layer.forward(x, train_flg) if layer.uses_train_flg else layer.forward(x)
        return x

    def predict(self, x, train_flg=False):
        """Class probabilities for a batch `x`, as chapter 4's `predict`."""
        return softmax(self.scores(x, train_flg))

    def loss(self, x, t, train_flg=False):
        """Mean cross-entropy on the batch `x` with label or one-hot targets `t`, plus the weight decay."""
        return self.last_layer.forward(self.scores(x, train_flg), t) + self.weight_decay()

    def weight_decay(self):
        """lambda / 2 * sum(W ** 2) over the weight matrices: the loss's penalty on large weights (0 without it)."""
        if not self.weight_decay_lambda:
            return 0.0
        return sum(float(np.sum(weight_decay_terms(affine.W, self.weight_decay_lambda))) for affine in self.affine_layers)

    def accuracy(self, x, t):
        """Fraction of samples whose most probable class is the target (labels or one-hot)."""
        return float(np.count_nonzero(self.scores(x).argmax(axis=1) == as_labels(t))) / x.shape[0]

    def loss_and_gradient(self, x, t):
        """The batch loss and its gradient by backpropagation, from one forward pass in training mode."""
        loss = self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for i, affine in enumerate(self.affine_layers, start=1):
            grads[f"W{i}"] = affine.dW + self.weight_decay_lambda * affine.W if self.weight_decay_lambda else affine.dW
            grads[f"b{i}"] = affine.db
        for i, layer in enumerate(self.batch_norm_layers, start=1):
            grads[f"gamma{i}"] = layer.dgamma
            grads[f"beta{i}"] = layer.dbeta
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
        The loss is the training mode's, as the book's; unlike the book's,
        every nudge sees the same dropout masks and none moves the running
        statistics (`frozen_training`).
        """

        def loss_of_params(_):
            return self.loss(x, t, train_flg=True)

        with frozen_training(self.layers):
            return {key: numerical_gradient(loss_of_params, param, h) for key, param in self.params.items()}

    def weights(self):
        """The parameters and batch norm's running statistics, by name (`W1`, ..., `running_mean1`, ...): all that
        training changes in a network, and all a model file holds of it."""
        return {**self.params, **self.running_statistics}

    def load_weights(self, weights):
        """Copy `weights` (arrays by the names `weights()` gives, some or all of them) into this network, in its
        dtype; a name it does not have, or an array of another shape, is a ValueError."""
        targets = self.weights()
        for key, value in weights.items():
            if key not in targets:
                raise ValueError(f"{key!r} is none of this network's weights ({', '.join(targets)})")
            value = np.asarray(value)
            if value.shape != targets[key].shape:
                raise ValueError(f"{key} has shape {targets[key].shape}, not {value.shape}")
            np.copyto(targets[key], value)

    def copy(self):
        """An independent network with the same architecture, a copy of the weights and running statistics."""
        clone = network_from_architecture(self.architecture())
        clone.load_weights(self.weights())
        return clone

    def architecture(self):
        """What is needed to rebuild this network: its class name and constructor arguments."""
        return {
            "class": "MultiLayerNet",
            "input_size": self.sizes[0],
            "hidden_size_list": list(self.sizes[1:-1]),
            "output_size": self.sizes[-1],
            **self._common_settings(),
        }

    def _common_settings(self):
        """The settings both classes record; the chapter-6 ones only when used, so files without them stay as
        they were."""
        settings = {"activation": self.activation, "weight_init_std": self.weight_init_std, "dtype": self.dtype.name}
        if self.weight_decay_lambda:
            settings["weight_decay_lambda"] = self.weight_decay_lambda
        if self.use_dropout:
            settings.update(use_dropout=True, dropout_ratio=self.dropout_ratio)
        if self.use_batchnorm:
            settings["use_batchnorm"] = True
        return settings

    def __repr__(self):
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{layers}, {self.last_layer!r}], params={self.num_params})"


class TwoLayerNet(MultiLayerNet):
    """The book's network of chapter 4: affine, sigmoid, affine, softmax (784-50-10 by default).

    Its defaults are chapter 4's; chapter 6's options (weight decay, dropout,
    batch norm) work here as in `MultiLayerNet`.
    """

    def __init__(self, input_size=784, hidden_size=50, output_size=10, weight_init_std=0.01,
                 activation="sigmoid", rng=None, dtype=np.float64, **chapter_6_options):
        super().__init__(input_size, [hidden_size], output_size, activation, weight_init_std, rng=rng, dtype=dtype,
                         **chapter_6_options)

    def architecture(self):
        input_size, hidden_size, output_size = self.sizes
        return {
            "class": "TwoLayerNet",
            "input_size": input_size,
            "hidden_size": hidden_size,
            "output_size": output_size,
            **self._common_settings(),
        }


NETWORK_CLASSES = {cls.__name__: cls for cls in (MultiLayerNet, TwoLayerNet)}


def network_from_architecture(architecture):
    """Build an untrained network from the dict `architecture()` returned."""
    spec = dict(architecture)
    cls = NETWORK_CLASSES[spec.pop("class")]
    if "sizes" in spec:  # as sgdlab 0.1 recorded a MultiLayerNet: every width in one list
        *widths, spec["output_size"] = spec.pop("sizes")
        spec["input_size"], *spec["hidden_size_list"] = widths
    return cls(**spec)
