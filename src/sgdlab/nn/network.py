"""The book's networks: TwoLayerNet and its deeper generalisation, and chapters 7 and 8's convolutional nets.

A network is a list of layers ending in SoftmaxWithLoss, each layer built
from a specification (a small dict such as `{"type": "convolution",
"filter_num": 30, "filter_size": 5}`) by its layer kind (`sgdlab.nn.layers`):
`MultiLayerNet` writes the specifications of Affine, activation, Affine, ...,
Affine (with batch normalization before each hidden activation and dropout
after it when asked), `ConvNet` takes them as given, and `SimpleConvNet` and
`DeepConvNet` are the book's chapter-7 and chapter-8 ones. `Network` holds
everything else, for all of them. Parameters live in `params` (`W1, b1, W2, b2, ...`), the arrays the layers
compute with, so an optimizer that updates them in place trains the network.
Everything here is the book's readable version; `sgdlab.engine` computes the
same numbers faster from the same definitions (the training step, the
whole-set forward pass, the fast numerical gradient).
"""

import math

import numpy as np

from ..errors import ConfigError
from ..ranges import NON_NEGATIVE_NUMBER, POSITIVE_INT, UNIT_INTERVAL
from .activations import get_activation
from .functions import as_labels, softmax
from .gradient import numerical_gradient
from .init import InitialParameters, ParameterShapes, check_weight_init
from .layers import MAX_FEATURES, Layer, SoftmaxWithLoss, frozen_training, layer_kind

MAX_PARAMETERS = 2 ** 30  # 4 GB of float32 weights, before gradients and optimizer state: far beyond MNIST's needs
MAX_LAYERS = 100  # layers a specification may list
# The values one sample's forward pass writes, summed over the layers (`Layer.work_per_sample`): 32 MB of float64,
# so that one sample's buffers fit any evaluation chunk. The book's chapter-8 DeepConvNet writes about 533,000.
MAX_WORK_PER_SAMPLE = 1 << 22


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


def build_layers(input_shape, specs, make):
    """The layers that `specs` describe, in order, each built by its kind for the shape the one before gives;
    a bad specification or combination, a first layer that would work in place on the images (an activation,
    dropout: the fast paths give it their input's buffer), or more work per sample than `MAX_WORK_PER_SAMPLE`,
    is a `ConfigError` naming the layer's position and the sizes."""
    layers, shape, work = [], tuple(input_shape), 0
    for position, spec in enumerate(specs, start=1):
        try:
            layer = layer_kind(spec).from_spec(spec, shape, make)
            layer_input, shape = shape, layer.output_shape(shape)
        except ConfigError as exc:
            raise ConfigError(f"layer {position} of {len(specs)}: {exc.problem}", exc.advice) from None
        if position == 1 and layer.in_place:
            raise ConfigError(f"layer 1 of {len(specs)}, {layer!r}, works in place, and the first layer's input is the "
                              "images themselves", "begin with a layer that reads them (convolution, pooling, affine "
                              "or batch_norm) and place it after one")
        if math.prod(shape) > MAX_FEATURES:
            raise ConfigError(f"layer {position} of {len(specs)}, {layer!r}, gives {math.prod(shape):,} values per "
                              f"sample (shape {shape}), more than the {MAX_FEATURES:,} sgdlab builds")
        own = layer.work_per_sample(layer_input)
        work += own
        if work > MAX_WORK_PER_SAMPLE:
            raise ConfigError(f"layer {position} of {len(specs)}, {layer!r}, on samples of shape {layer_input} giving "
                              f"{shape}, writes {own:,} values per sample, which brings the network's to {work:,}, "
                              f"more than the {MAX_WORK_PER_SAMPLE:,} sgdlab computes",
                              "use fewer or smaller filters, less padding or a larger stride")
        layers.append(layer)
    return layers


def parameter_count(layers):
    return sum(math.prod(p.shape) for layer in layers for p in layer.parameters)


class Network:
    """What every network shares: its layers, named parameters and running statistics, and the book's
    `predict`, `loss`, `accuracy`, `gradient` and `numerical_gradient` on them.

    `input_shape` is one sample's shape ((784,) for a dense net, (1, 28, 28)
    for a convolutional one): a batch may come as (N, 784) rows or (N, 1, 28,
    28) images alike, reshaped (as a view) to (N, *input_shape).
    """

    def _assemble(self, input_shape, specs, weight_init_std, weight_decay_lambda, rng, dtype):
        """Build the layers `specs` describe (their shapes checked and their parameters counted first, before
        any is allocated), and name their parameters."""
        self.input_shape = tuple(int(n) for n in input_shape)
        self.dtype = np.dtype(dtype)
        self.weight_init_std = check_weight_init("weight_init_std", weight_init_std)
        self.weight_decay_lambda = NON_NEGATIVE_NUMBER.check("weight_decay_lambda", weight_decay_lambda)
        build_layers(self.input_shape, specs, ParameterShapes(self.dtype, MAX_PARAMETERS))  # refuses too many
        make = InitialParameters(self.weight_init_std, np.random.default_rng(rng), self.dtype)
        self.layers = build_layers(self.input_shape, specs, make)
        self.output_size = self.layers[-1].output_shape(self._shape_before(len(self.layers) - 1))[0]
        self.last_layer = SoftmaxWithLoss()
        self._name_parameters()

    def _shape_before(self, index):
        shape = self.input_shape
        for layer in self.layers[:index]:
            shape = layer.output_shape(shape)
        return shape

    def _name_parameters(self):
        """params: each layer's parameters numbered among the layers of the same names (a convolution's and an
        affine layer's W and b together), the groups in order of first appearance; running statistics take
        their layer's number."""
        numbers, counts = [], {}
        for layer in self.layers:
            names = layer.parameter_names
            if names:
                counts[names] = counts.get(names, 0) + 1
            numbers.append(counts.get(names, 0))
        self.layer_keys = [tuple(f"{name}{number}" for name in layer.parameter_names)
                           for layer, number in zip(self.layers, numbers)]
        self.params = Params()
        for group in counts:
            for layer, keys in zip(self.layers, self.layer_keys):
                if layer.parameter_names == group:
                    for key, array in zip(keys, layer.parameters):
                        self.params[key] = array
        self.decayed_keys = [f"{name}{number}" for layer, number in zip(self.layers, numbers)
                             for name in layer.decayed_names]
        self.statistic_keys = [tuple(f"{name}{number}" for name in layer.statistic_names)
                               for layer, number in zip(self.layers, numbers)]

    @property
    def running_statistics(self):
        """Batch norm's running means and variances, `running_mean1, running_var1, ...` (empty without it):
        not learned by gradients, but part of the trained network (test time normalises by them)."""
        statistics = Params()
        for layer, keys in zip(self.layers, self.statistic_keys):
            for key, array in zip(keys, layer.statistics):
                statistics[key] = array
        return statistics

    @property
    def dropout_layers(self):
        """The layers that draw random numbers in training (dropout's masks), whose generators a checkpoint keeps."""
        return [layer for layer in self.layers if layer.rng is not None]

    @property
    def num_params(self):
        return sum(p.size for p in self.params.values())

    def as_input(self, x):
        """`x` as a batch of this network's samples, (N, *input_shape): a view of rows or images alike."""
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise ConfigError(f"the network takes float pixels in 0..1, got {x.dtype}: load the images "
                              "with load_mnist() (normalize=True), or divide uint8 pixels by 255")
        if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(self.input_shape):
            raise ConfigError(f"the network takes samples of shape {self.input_shape}, got a batch of shape "
                              f"{x.shape}")
        return x.reshape(len(x), *self.input_shape)

    def scores(self, x, train_flg=False):
        """The last affine layer's output (the softmax's input) for a batch `x` of float pixels; `train_flg`
        runs dropout and batch norm as in training (which draws masks and moves the running statistics)."""
        x = self.as_input(x)
        for layer in self.layers:
            x = layer.forward(x, train_flg) if layer.uses_train_flg else layer.forward(x)
        return x

    def predict(self, x, train_flg=False):
        """Class probabilities for a batch `x`, as chapter 4's `predict` (chapter 7's returns the scores before
        the softmax: `scores`; the most probable class is the same)."""
        return softmax(self.scores(x, train_flg))

    def loss(self, x, t, train_flg=False):
        """Mean cross-entropy on the batch `x` with label or one-hot targets `t`, plus the weight decay."""
        return self.last_layer.forward(self.scores(x, train_flg), t) + self.weight_decay()

    def weight_decay(self):
        """lambda / 2 * sum(W ** 2) over the weights (not the biases, nor batch norm's gamma and beta): the
        loss's penalty on large weights (0 without it)."""
        if not self.weight_decay_lambda:
            return 0.0
        return sum(float(np.sum(weight_decay_terms(self.params[key], self.weight_decay_lambda)))
                   for key in self.decayed_keys)

    def accuracy(self, x, t, batch_size=100):
        """Fraction of samples whose most probable class is the target (labels or one-hot), `batch_size` at a
        time (all of them: the book's chapter-7 version leaves out the last partial batch)."""
        labels = as_labels(t)
        correct = sum(int(np.count_nonzero(self.scores(x[start:start + batch_size]).argmax(axis=1)
                                           == labels[start:start + batch_size]))
                      for start in range(0, len(x), batch_size))
        return correct / x.shape[0]

    def loss_and_gradient(self, x, t):
        """The batch loss and its gradient by backpropagation, from one forward pass in training mode."""
        loss = self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {key: grad for layer, keys in zip(self.layers, self.layer_keys)
                 for key, grad in zip(keys, layer.gradients)}
        for key in self.decayed_keys:
            if self.weight_decay_lambda:
                grads[key] = grads[key] + self.weight_decay_lambda * self.params[key]
        return loss, {key: grads[key] for key in self.params}

    def gradient(self, x, t):
        """Gradient of the batch loss for every parameter, by backpropagation."""
        return self.loss_and_gradient(x, t)[1]

    def numerical_gradient(self, x, t, h=1e-4):
        """Gradient of the batch loss for every parameter, by central differences, as the book computes it.

        Every element of every parameter is nudged by +h and -h and the whole
        loss recomputed: two forward passes per parameter (about 80000 for the
        book's two-layer net, tens of seconds). `sgdlab.numerical_gradient_fast(network, x, t)`
        computes the same numbers for dense and convolutional nets, evaluating only what each
        nudge changes, over a thousand times sooner; training with `grad="numerical"` uses it.
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

    def copy(self, dtype=None):
        """An independent network with the same architecture, a copy of the weights and running statistics; in
        `dtype` if one is given (float16, say), the weights rounded to it and every value it computes stored in it."""
        architecture = self.architecture()
        clone = network_from_architecture(architecture if dtype is None else
                                          {**architecture, "dtype": np.dtype(dtype).name})
        clone.load_weights(self.weights())
        return clone

    def architecture(self):
        """What is needed to rebuild this network: its class name and constructor arguments."""
        raise NotImplementedError

    def __repr__(self):
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{layers}, {self.last_layer!r}], params={self.num_params})"


class MultiLayerNet(Network):
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
        self.use_dropout = bool(use_dropout)
        if dropout_ration is not None and dropout_ratio not in (0.5, dropout_ration):
            raise ConfigError(f"dropout_ratio {dropout_ratio} and dropout_ration {dropout_ration} are the same "
                              "setting (the book spells it dropout_ration): give one of them")
        self.dropout_ratio = UNIT_INTERVAL.check("dropout_ratio", dropout_ratio if dropout_ration is None
                                                 else dropout_ration)
        self.use_batchnorm = bool(use_batchnorm)
        input_shape, specs = MultiLayerNet.specification(self.sizes, activation, self.use_batchnorm,
                                                         self.use_dropout, self.dropout_ratio)
        self._assemble(input_shape, specs, weight_init_std, weight_decay_lambda, rng, dtype)
        self.affine_layers = [layer for layer in self.layers if layer.kind == "affine"]
        self.batch_norm_layers = [layer for layer in self.layers if layer.kind == "batch_norm"]

    @staticmethod
    def specification(sizes, activation, use_batchnorm=False, use_dropout=False, dropout_ratio=0.5):
        """(input shape, every layer's specification) of the net of layer widths `sizes`, input to output: each
        hidden layer affine, batch norm (`use_batchnorm`), the activation, dropout (`use_dropout`)."""
        specs = []
        for width in sizes[1:-1]:
            specs.append({"type": "affine", "output_size": width})
            if use_batchnorm:
                specs.append({"type": "batch_norm"})
            specs.append({"type": activation})
            if use_dropout:
                specs.append({"type": "dropout", "ratio": dropout_ratio})
        specs.append({"type": "affine", "output_size": sizes[-1]})
        return (sizes[0],), specs

    def architecture(self):
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


class ConvNet(Network):
    """A convolutional classifier built from a list of layer specifications, followed by an affine layer to
    `output_size` scores (and the `output_layers` after it, if any) and the softmax.

    `input_dim` is one image's (channels, height, width). Each specification
    is a dict naming its layer's "type" and settings:
    `{"type": "convolution", "filter_num": 30, "filter_size": 5, "stride": 1,
    "pad": 0}`, `{"type": "pooling", "pool_size": 2, "stride": 2, "pad": 0}`,
    `{"type": "affine", "output_size": 100}`, `{"type": "batch_norm"}`,
    `{"type": "dropout", "ratio": 0.5}`, or an activation by its name,
    `{"type": "relu"}` (omitted settings take the defaults shown).
    `output_layers` come after the output affine layer and keep its
    `output_size` scores' shape (chapter 8's DeepConvNet puts a dropout
    there). Weights start as in `MultiLayerNet`: `weight_init_std` a standard
    deviation, or "he"/"xavier" scaled by each layer's fan-in (C * FH * FW
    for a convolution's filters); `weight_decay_lambda` covers every W,
    convolutions' and affine layers'. A bad combination (a filter larger
    than its input, a stride that does not fit, a pooling window left over)
    is a `ConfigError` naming the layer and the sizes.
    """

    def __init__(self, input_dim=(1, 28, 28), layers=(), output_size=10, weight_init_std="he",
                 weight_decay_lambda=0.0, rng=None, dtype=np.float64, output_layers=()):
        input_shape, specs = ConvNet.specification(input_dim, layers, output_size, output_layers)
        self._assemble(input_shape, specs, weight_init_std, weight_decay_lambda, rng, dtype)

    @staticmethod
    def specification(input_dim, layers, output_size, output_layers=()):
        """(input shape, every layer's specification, the output layer and those after it included), the sizes
        checked."""
        if not isinstance(input_dim, (list, tuple)) or len(input_dim) not in (1, 3) or \
                not all(POSITIVE_INT.contains(n) for n in input_dim) or math.prod(input_dim) > MAX_FEATURES:
            raise ConfigError(f"input_dim is one sample's (channels, height, width), such as (1, 28, 28), of at "
                              f"most {MAX_FEATURES:,} values, got {input_dim!r}")
        if not isinstance(layers, (list, tuple)) or len(layers) >= MAX_LAYERS:
            raise ConfigError(f"layers is a list of fewer than {MAX_LAYERS} layer specifications, such as "
                              f"[{{'type': 'convolution', 'filter_num': 30, 'filter_size': 5}}, {{'type': 'relu'}}]")
        if not isinstance(output_layers, (list, tuple)) or len(layers) + len(output_layers) >= MAX_LAYERS:
            raise ConfigError(f"output_layers is a list of layer specifications, fewer than {MAX_LAYERS} with the "
                              f"layers, such as [{{'type': 'dropout', 'ratio': 0.5}}]")
        POSITIVE_INT.check("output_size", output_size)
        for spec in output_layers:
            kind = layer_kind(spec)
            if kind.parameter_names or kind.output_shape is not Layer.output_shape:
                raise ConfigError(f"an output layer keeps the {output_size} scores as they are (dropout, an "
                                  f"activation), got {spec!r}")
        return tuple(input_dim), [*layers, {"type": "affine", "output_size": output_size}, *output_layers]

    @property
    def output_layer_index(self):
        """The position in `layers` of the affine layer that gives the scores: the last layer with parameters, as
        the layers after it (`output_layers`) have none."""
        return max(k for k, layer in enumerate(self.layers) if layer.parameter_names)

    def architecture(self):
        output = self.output_layer_index
        after = {"output_layers": [layer.spec() for layer in self.layers[output + 1:]]} \
            if output + 1 < len(self.layers) else {}
        return {"class": "ConvNet", "input_dim": list(self.input_shape),
                "layers": [layer.spec() for layer in self.layers[:output]], "output_size": self.output_size,
                **after, **self._common_settings()}

    def _common_settings(self):
        settings = {"weight_init_std": self.weight_init_std, "dtype": self.dtype.name}
        if self.weight_decay_lambda:
            settings["weight_decay_lambda"] = self.weight_decay_lambda
        return settings


SIMPLE_CONV_PARAM = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}


class SimpleConvNet(ConvNet):
    """The book's chapter-7 network: conv - relu - pool - affine - relu - affine - softmax.

    The book's signature and defaults: 30 filters of 5x5 (`conv_param`),
    max pooling 2x2 at stride 2, `hidden_size` hidden units, weights drawn as
    `weight_init_std` (0.01) times standard normal draws; `params` are the
    book's `W1` (30, 1, 5, 5), `b1`, `W2` (4320, 100), `b2`, `W3` (100, 10),
    `b3`. It is one `ConvNet` specification. Unlike the book's, the pooled
    size is computed exactly (the book's float arithmetic is wrong for an odd
    convolution output), weights come from `rng` rather than NumPy's global
    generator, and `rng`, `dtype` and `weight_decay_lambda` are taken as in
    the other networks.
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param=SIMPLE_CONV_PARAM, hidden_size=100, output_size=10,
                 weight_init_std=0.01, weight_decay_lambda=0.0, rng=None, dtype=np.float64):
        input_shape, specs = SimpleConvNet.specification(input_dim, conv_param, hidden_size, output_size)
        self.conv_param = {**SIMPLE_CONV_PARAM, **conv_param}
        self.hidden_size = hidden_size
        self._assemble(input_shape, specs, weight_init_std, weight_decay_lambda, rng, dtype)

    @staticmethod
    def specification(input_dim, conv_param, hidden_size, output_size):
        if not isinstance(conv_param, dict) or set(conv_param) - set(SIMPLE_CONV_PARAM):
            raise ConfigError(f"conv_param holds {', '.join(SIMPLE_CONV_PARAM)}, got {conv_param!r}")
        conv_param = {**SIMPLE_CONV_PARAM, **conv_param}
        POSITIVE_INT.check("hidden_size", hidden_size)
        layers = [{"type": "convolution", **conv_param}, {"type": "relu"},
                  {"type": "pooling", "pool_size": 2, "stride": 2, "pad": 0},
                  {"type": "affine", "output_size": hidden_size}, {"type": "relu"}]
        return ConvNet.specification(input_dim, layers, output_size)

    def architecture(self):
        return {"class": "SimpleConvNet", "input_dim": list(self.input_shape), "conv_param": dict(self.conv_param),
                "hidden_size": self.hidden_size, "output_size": self.output_size, **self._common_settings()}


DEEP_CONV_PARAMS = tuple({"filter_num": filters, "filter_size": 3, "pad": pad, "stride": 1}
                         for filters, pad in ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1)))
DEEP_DROPOUT_RATIO = 0.5


class DeepConvNet(ConvNet):
    """The book's chapter-8 network, above 99% on MNIST: three blocks of conv - relu - conv - relu - pool, then
    affine - relu - dropout - affine - dropout - softmax.

    The book's signature and defaults: six 3x3 convolutions of 16, 16, 32, 32,
    64, 64 filters (`conv_param_1` .. `conv_param_6`, each a dict as
    `SimpleConvNet`'s `conv_param`, the settings it leaves out the book's for
    its place), padded by 1 but the fourth by 2 (14x14 becomes 16x16, so that
    the pooling after the third block leaves 64 x 4 x 4 = 1024 values), max
    pooling 2x2 at stride 2, `hidden_size` (50) hidden units and dropout 0.5;
    `params` are the book's `W1` .. `W6` (the filters), `W7` (1024, 50), `W8`
    (50, 10) and their `b1` .. `b8`, 123,552 numbers. Weights start as the
    book's: He, sqrt(2 / fan-in) times standard normal draws, the fan-in
    C * 3 * 3 of each convolution's input and that of each affine layer
    (the book lists them by hand; "he" computes the same ones).

    The dropout after the output affine layer is the book's, and unusual:
    in training it zeroes half of the class scores at random before the
    softmax (each a fresh draw per step), so the net cannot lean on any one
    score and learns to put its answer clearly above the others (a
    regulariser); at test time it multiplies every score by 0.5, which
    changes the softmax's probabilities (flatter) but never which class is
    largest, so accuracy and predictions are those of the net without it.

    It is one `ConvNet` specification (that dropout is its one output
    layer). Unlike the book's, weights come from `rng` (the dropout masks
    too) rather than NumPy's global generator, and `weight_init_std`,
    `rng`, `dtype` and `weight_decay_lambda` are taken as in the other
    networks.
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param_1=DEEP_CONV_PARAMS[0], conv_param_2=DEEP_CONV_PARAMS[1],
                 conv_param_3=DEEP_CONV_PARAMS[2], conv_param_4=DEEP_CONV_PARAMS[3],
                 conv_param_5=DEEP_CONV_PARAMS[4], conv_param_6=DEEP_CONV_PARAMS[5], hidden_size=50, output_size=10,
                 weight_init_std="he", weight_decay_lambda=0.0, rng=None, dtype=np.float64):
        conv_params = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        input_shape, specs = DeepConvNet.specification(input_dim, *conv_params, hidden_size, output_size)
        self.conv_params = DeepConvNet.full_conv_params(conv_params)
        self.hidden_size = hidden_size
        self._assemble(input_shape, specs, weight_init_std, weight_decay_lambda, rng, dtype)

    @staticmethod
    def full_conv_params(conv_params):
        """Each convolution's settings, those left out the book's for its place."""
        for number, conv_param in enumerate(conv_params, start=1):
            if not isinstance(conv_param, dict) or set(conv_param) - set(SIMPLE_CONV_PARAM):
                raise ConfigError(f"conv_param_{number} holds {', '.join(SIMPLE_CONV_PARAM)}, got {conv_param!r}")
        return tuple({**book, **given} for book, given in zip(DEEP_CONV_PARAMS, conv_params))

    @staticmethod
    def specification(input_dim, conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6,
                      hidden_size, output_size):
        conv_params = DeepConvNet.full_conv_params((conv_param_1, conv_param_2, conv_param_3, conv_param_4,
                                                    conv_param_5, conv_param_6))
        POSITIVE_INT.check("hidden_size", hidden_size)
        pool = {"type": "pooling", "pool_size": 2, "stride": 2, "pad": 0}
        layers = []
        for first, second in zip(conv_params[::2], conv_params[1::2]):
            layers += [{"type": "convolution", **first}, {"type": "relu"},
                       {"type": "convolution", **second}, {"type": "relu"}, pool]
        layers += [{"type": "affine", "output_size": hidden_size}, {"type": "relu"},
                   {"type": "dropout", "ratio": DEEP_DROPOUT_RATIO}]
        return ConvNet.specification(input_dim, layers, output_size,
                                     [{"type": "dropout", "ratio": DEEP_DROPOUT_RATIO}])

    def architecture(self):
        conv_params = {f"conv_param_{number}": dict(conv_param)
                       for number, conv_param in enumerate(self.conv_params, start=1)}
        return {"class": "DeepConvNet", "input_dim": list(self.input_shape), **conv_params,
                "hidden_size": self.hidden_size, "output_size": self.output_size, **self._common_settings()}


NETWORK_CLASSES = {cls.__name__: cls for cls in (MultiLayerNet, TwoLayerNet, ConvNet, SimpleConvNet, DeepConvNet)}


def network_from_architecture(architecture):
    """Build an untrained network from the dict `architecture()` returned."""
    spec = dict(architecture)
    cls = NETWORK_CLASSES[spec.pop("class")]
    if "sizes" in spec:  # as sgdlab 0.1 recorded a MultiLayerNet: every width in one list
        *widths, spec["output_size"] = spec.pop("sizes")
        spec["input_size"], *spec["hidden_size_list"] = widths
    return cls(**spec)


def planned_parameter_count(architecture):
    """How many parameters the convolutional network `architecture` describes, from its layers' shapes alone
    (nothing allocated): a model file's description is bounded by it before the network is built."""
    settings = {key: value for key, value in architecture.items()
                if key not in ("class", "weight_init_std", "weight_decay_lambda", "dtype")}
    input_shape, specs = NETWORK_CLASSES[architecture["class"]].specification(**settings)
    return parameter_count(build_layers(input_shape, specs, ParameterShapes(np.float64, MAX_PARAMETERS)))
