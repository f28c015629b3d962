"""The settings of a training run, in one place, each with the book's default, its range and what it means.

Each field declares once what values it takes (a `Range`, or the names of a
registry); `TrainConfig` checks them when made and the command line builds
its options, choices and help from the same declarations. `net` chooses
among the named networks of `NETS`, each of which implies its chapter's
defaults for the settings left out. This module imports no NumPy, so
`sgdlab --help` stays quick.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..fileio import MAX_JSON_BYTES
from ..nn.activations import activation_names
from ..nn.init import check_weight_init, parse_weight_init
from ..nn.optimizers import OPTIMIZERS
from ..ranges import (NON_NEGATIVE_INT, NON_NEGATIVE_NUMBER, POSITIVE_INT, POSITIVE_NUMBER, UNIT_INTERVAL, Range,
                      check_choice, check_flag, check_widths, parse_widths)
from .history import largest_json_size
from .learning_rate import LearningRate, check_lr_schedule, parse_lr_schedule

CHAPTER_4_ITERS = 10_000  # the updates of chapter 4's run
CHAPTER_7_EPOCHS = 20  # the length of chapter 7's run (ch07/train_convnet.py's max_epochs)
CHAPTER_8_EPOCHS = 20  # the length of chapter 8's run (ch08/train_deepnet.py's epochs)
CHAPTER_4_LR = 0.1  # the learning rate of chapter 4's run, SGD's default here (the book's SGD class has 0.01)
GRAD_METHODS = ("backprop", "numerical")
DTYPES = ("float32", "float64")
TEST_EVALUATIONS = ("every", "last")
SAMPLING_METHODS = ("random", "epoch")
# What a run holds as large as its parameters: the weights, their gradients, the optimizer's slots (two at most),
# the snapshots of the evaluation running and the one waiting (2), and the checkpoints captured with those two,
# each the weights and the optimizer's slots (2 x 3).
PARAMETER_COPIES = 12
EVALUATION_CHUNKS = 3  # whole-set forward passes at once: the evaluation's two (half a set each), the lab page's
RUN_OVERHEAD_BYTES = 300 << 20  # Python, NumPy, MNIST as uint8, the batches gathered ahead
# The settings that are optimizers' hyperparameters -> the keyword an optimizer takes each by: the only way a
# setting reaches an optimizer. A setting given for an optimizer that takes no such keyword is refused; an
# optimizer's keyword that is not here keeps the optimizer's default whatever the settings hold (weight_decay
# here is the loss term of the network, never an optimizer's own decay).
OPTIMIZER_SETTINGS = {"momentum": "momentum"}
# The ranges of augment's random transforms when they are left out: small enough to keep a digit a digit.
AUGMENT_DEFAULTS = {"augment_shift": 2.0, "augment_rotate": 10.0, "augment_scale": 0.1}
# With early_stop, the weights kept at once besides the network's: the best evaluation's, and those of each
# evaluation submitted and not yet recorded (the one being measured, the one waiting behind it, one just submitted).
EARLY_STOP_COPIES = 4
# augment's ranges: a shift of MNIST's side or more leaves nothing of a digit, and a turn is at most half of one
AUGMENT_SHIFT = Range(float, 0, strict=False, description="a number of pixels in [0, 28)", below=28)
AUGMENT_ROTATION = Range(float, 0, strict=False, description="a number of degrees in [0, 180)", below=180)


def optimizers_taking(keyword):
    """The names of the optimizers that take the hyperparameter `keyword`."""
    return [name for name, optimizer in OPTIMIZERS.items() if keyword in optimizer.hyperparameters]


def setting(default, help, range=None, choices=None, parse=None, check=None, metavar=None, option=None):
    """A config field: its default, one line of help, and the values it takes.

    Those are declared by a `Range`, or a tuple of `choices`, or a `check(name,
    value)` with the `parse(text)` that reads it from the command line (and
    the `metavar` its option shows; a `check` alone is a flag, on or off).
    `option` names its command-line option when the field's name would not do.
    """
    if range is not None:
        parse, check, metavar = range.parse, range.check, "N" if range.kind is int else "X"
    return field(default=default, metadata={"help": help, "choices": choices, "parse": parse, "check": check,
                                            "metavar": metavar, "option": option})


BOTH_WIDTHS = "give either hidden_size (one hidden layer) or hidden_sizes (any number of them), not both"
LENGTHS = ("iters", "epochs")  # the settings that say how long a run is: a net implies one of them


@dataclass(frozen=True)
class Net:
    """A network `TrainConfig.net` names.

    `defaults`: the settings it implies when they are left out (None), its
    length (iters or epochs) among them; `own_settings`: the settings only
    nets that list them take (given to another net, they are refused);
    `layers(config, input_shape, output_size)`: (the input's shape, every
    layer's specification), as `sgdlab.nn.network` builds them, for planning
    its shapes and memory before anything is allocated; `build(config,
    input_shape, output_size, rng)`: the untrained network.
    """

    description: str
    defaults: dict
    own_settings: tuple
    layers: object
    build: object


def _dense_widths(config, input_shape, output_size):
    return (math.prod(input_shape), *(config.hidden_sizes or (config.implied("hidden_size"),)), output_size)


def _dense_layers(config, input_shape, output_size):
    from ..nn.network import MultiLayerNet

    return MultiLayerNet.specification(_dense_widths(config, input_shape, output_size), config.implied("activation"),
                                       config.batch_norm, config.dropout > 0, config.dropout)


def _dense_network(config, input_shape, output_size, rng):
    """The book's TwoLayerNet for one hidden layer, a MultiLayerNet for more."""
    from ..nn.network import MultiLayerNet, TwoLayerNet

    input_size, *hidden, output_size = _dense_widths(config, input_shape, output_size)
    options = {"weight_init_std": config.implied("weight_init_std"), "activation": config.implied("activation"),
               "rng": rng, "dtype": config.network_dtype, "weight_decay_lambda": config.weight_decay,
               "use_dropout": config.dropout > 0, "use_batchnorm": config.batch_norm}
    if config.dropout:
        options["dropout_ratio"] = config.dropout
    if config.hidden_sizes is None:
        return TwoLayerNet(input_size, hidden[0], output_size, **options)
    return MultiLayerNet(input_size, hidden, output_size, **options)


def _images(net, input_shape):
    if len(input_shape) != 3:
        raise ConfigError(f"{net} takes images, (channels, height, width) each, not samples of shape "
                          f"{tuple(input_shape)}")
    return input_shape


def _simple_convnet_layers(config, input_shape, output_size):
    """conv - relu - pool - affine - relu - affine, the book's SimpleConvNet: batch norm (`batch_norm`) after the
    convolution and after the hidden affine layer, before each activation, as chapter 6 places it; dropout
    (`dropout`) after the hidden activation, on the fully connected units (where chapter 8's DeepConvNet drops)."""
    from ..nn.network import ConvNet

    value = config.implied
    norm = [{"type": "batch_norm"}] if config.batch_norm else []
    activation = {"type": value("activation")}
    pool = value("pool_size")
    layers = [{"type": "convolution", "filter_num": value("filter_num"), "filter_size": value("filter_size"),
               "stride": value("filter_stride"), "pad": value("filter_pad")}, *norm, activation,
              {"type": "pooling", "pool_size": pool, "stride": pool, "pad": 0},
              {"type": "affine", "output_size": value("hidden_size")}, *norm, activation,
              *([{"type": "dropout", "ratio": config.dropout}] if config.dropout else [])]
    return ConvNet.specification(_images("simple-convnet", input_shape), layers, output_size)


def _simple_convnet(config, input_shape, output_size, rng):
    """The book's SimpleConvNet (its class, its record in a model file) when the settings are its own; with
    another activation, pooling window, batch norm or dropout, the `ConvNet` of the same layers."""
    from ..nn.network import ConvNet, SimpleConvNet

    input_dim, specs = _simple_convnet_layers(config, input_shape, output_size)
    conv_param = {key: specs[0][key] for key in ("filter_num", "filter_size", "pad", "stride")}
    hidden_size = config.implied("hidden_size")
    options = {"weight_init_std": config.implied("weight_init_std"), "weight_decay_lambda": config.weight_decay,
               "rng": rng, "dtype": config.network_dtype}
    if (input_dim, specs) == SimpleConvNet.specification(input_dim, conv_param, hidden_size, output_size):
        return SimpleConvNet(input_dim, conv_param, hidden_size, output_size, **options)
    return ConvNet(input_dim, specs[:-1], output_size, **options)


def _deep_conv_params(config):
    """The six convolutions' settings: `filter_num` filters (16, the book's) in the first block, twice as many in
    the second and four times in the third, each 3x3 and padded as the book's."""
    from ..nn.network import DEEP_CONV_PARAMS

    first = config.implied("filter_num")
    return tuple({**book, "filter_num": first * book["filter_num"] // DEEP_CONV_PARAMS[0]["filter_num"]}
                 for book in DEEP_CONV_PARAMS)


def _deep_convnet_layers(config, input_shape, output_size):
    """The book's DeepConvNet, its activation `activation` (relu by default); its dropout is its own (0.5 after
    the hidden and the output affine layers), so neither dropout nor batch norm is another setting of it."""
    from ..nn.network import ConvNet, DeepConvNet

    if config.dropout or config.batch_norm:
        raise ConfigError(f"deep-convnet has the book's dropout {DEEP_DROPOUT} built in and no batch norm: leave "
                          f"{'--dropout' if config.dropout else '--batch-norm'} out, or choose simple-convnet")
    input_dim, specs = DeepConvNet.specification(_images("deep-convnet", input_shape), *_deep_conv_params(config),
                                                 config.implied("hidden_size"), output_size)
    activation = config.implied("activation")
    specs = [{"type": activation} if spec["type"] == "relu" else spec for spec in specs]
    output = max(k for k, spec in enumerate(specs) if spec["type"] == "affine")
    return ConvNet.specification(input_dim, specs[:output], output_size, specs[output + 1:])


def _deep_convnet(config, input_shape, output_size, rng):
    """The book's DeepConvNet, of `filter_num` filters in its first block; with another activation, the
    `ConvNet` of the same layers."""
    from ..nn.network import ConvNet, DeepConvNet

    input_dim, specs = _deep_convnet_layers(config, input_shape, output_size)
    options = {"weight_init_std": config.implied("weight_init_std"), "weight_decay_lambda": config.weight_decay,
               "rng": rng, "dtype": config.network_dtype}
    if config.implied("activation") == "relu":
        return DeepConvNet(input_dim, *_deep_conv_params(config), config.implied("hidden_size"), output_size,
                           **options)
    output = max(k for k, spec in enumerate(specs) if spec["type"] == "affine")
    return ConvNet(input_dim, specs[:output], output_size, output_layers=specs[output + 1:], **options)


DEEP_DROPOUT = 0.5  # DeepConvNet's (sgdlab.nn.network.DEEP_DROPOUT_RATIO; this module imports no NumPy)
CONVOLUTION_SETTINGS = ("filter_num", "filter_size", "filter_stride", "filter_pad", "pool_size")
# Settings whose values fit an input's shape or not one by one, not as a range: a 4x4 filter leaves a 2x2 pooling
# window over on MNIST where 3x3 and 5x5 ones do not. A sweep checks each of their values, not only its ends.
SHAPE_SETTINGS = ("filter_size", "filter_stride", "filter_pad", "pool_size")
SHAPE_SEARCH = 12  # a misfit's advice names the values up to this of each shape setting that would fit
NETS = {
    "mlp": Net("a fully connected net: chapter 4's TwoLayerNet (784-50-10, sigmoid, SGD at 0.1, 10000 "
               "iterations), or a MultiLayerNet with hidden_sizes",
               {"iters": CHAPTER_4_ITERS, "optimizer": "sgd", "activation": "sigmoid", "hidden_size": 50,
                "weight_init_std": 0.01},
               ("hidden_sizes",), _dense_layers, _dense_network),
    "simple-convnet": Net("chapter 7's SimpleConvNet: conv - relu - pool - affine - relu - affine (30 5x5 filters, "
                          "2x2 pooling, 100 hidden units, Adam at 0.001, 20 epochs)",
                          {"epochs": CHAPTER_7_EPOCHS, "optimizer": "adam", "activation": "relu", "hidden_size": 100,
                           "filter_num": 30, "filter_size": 5, "filter_stride": 1, "filter_pad": 0, "pool_size": 2,
                           "weight_init_std": 0.01},
                          CONVOLUTION_SETTINGS, _simple_convnet_layers, _simple_convnet),
    "deep-convnet": Net("chapter 8's DeepConvNet: three blocks of conv - relu - conv - relu - pool (16, 32 and 64 "
                        "3x3 filters), affine - relu - dropout - affine - dropout (50 hidden units, dropout 0.5), He "
                        "initial weights, Adam at 0.001, 20 epochs",
                        {"epochs": CHAPTER_8_EPOCHS, "optimizer": "adam", "activation": "relu", "hidden_size": 50,
                         "filter_num": 16, "weight_init_std": "he"},
                        ("filter_num",), _deep_convnet_layers, _deep_convnet),
}


def nets_taking(name):
    """The names of the nets that take the setting `name` of their own."""
    return [net for net, definition in NETS.items() if name in definition.own_settings]


def sample_shape(input_shape):
    """One sample's shape from `input_shape`: a number of inputs (a dense net's), or the shape itself."""
    return (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; the defaults are chapter 4's.

    Invalid values raise `ConfigError` (a `ValueError`) when the config is made,
    not minutes into training.
    """

    iters: int | None = setting(None, f"mini-batch updates in total (default {CHAPTER_4_ITERS} for mlp, as in "
                                      "chapter 4, unless epochs is given)", POSITIVE_INT)
    epochs: int | None = setting(None, f"full passes over the training set, instead of iters (default "
                                       f"{CHAPTER_7_EPOCHS} for simple-convnet, as in chapter 7, and "
                                       f"{CHAPTER_8_EPOCHS} for deep-convnet, as in chapter 8)", POSITIVE_INT)
    train_size: int | None = setting(None, "train on the first N training images only, as the book's overfitting "
                                           "experiments do (default: all of them)", POSITIVE_INT)
    validation: float = setting(0.0, "fraction of the training images held out, by the seed, to measure val_acc "
                                     "at each evaluation (the test set never chooses anything; 0: none)",
                                UNIT_INTERVAL)
    batch_size: int = setting(100, "samples per mini-batch", POSITIVE_INT)
    eval_every: int | None = setting(None, "iterations between evaluations of train and test accuracy (default: "
                                           "one epoch); 0: only after the last iteration", NON_NEGATIVE_INT)
    test_eval: str = setting("every", "when the test accuracy is measured: at every evaluation (the book's train and "
                                      "test curves), or last, once, after the last iteration (enough for a search, "
                                      "which chooses by validation)", choices=TEST_EVALUATIONS)
    lr: float | None = setting(None, f"learning rate (default: {CHAPTER_4_LR} for sgd, as in chapter 4; the "
                                     "book's default for the other optimizers)", POSITIVE_NUMBER)
    net: str = setting("mlp", "the network: " + "; ".join(f"{name}, {net.description}" for name, net in NETS.items())
                       + ". Settings left out take the net's defaults", choices=tuple(NETS))
    hidden_size: int | None = setting(None, "units in the hidden layer (default 50 for mlp, as in chapter 4; 100 "
                                            "for simple-convnet, as in chapter 7; 50 for deep-convnet, as in "
                                            "chapter 8)", POSITIVE_INT)
    hidden_sizes: tuple | None = setting(None, "units in each hidden layer of a deeper mlp, such as 100,100,100 "
                                               "(instead of hidden_size)", parse=parse_widths, check=check_widths,
                                         metavar="N,N,...")
    filter_num: int | None = setting(None, "a convolutional net's filters (default 30, the book's); "
                                           "deep-convnet's first block's (default 16, the book's), twice as many in "
                                           "the second block and four times in the third", POSITIVE_INT)
    filter_size: int | None = setting(None, "a convolutional net's filter height and width (default 5)",
                                      POSITIVE_INT)
    filter_stride: int | None = setting(None, "the step between a convolution's windows (default 1)", POSITIVE_INT)
    filter_pad: int | None = setting(None, "zeros padded around each image before a convolution (default 0)",
                                     NON_NEGATIVE_INT)
    pool_size: int | None = setting(None, "a convolutional net's max pooling window, its height, width and stride "
                                          "(default 2)", POSITIVE_INT)
    weight_init_std: float | str | None = setting(
        None, "initial weights ~ N(0, std^2): a number, or xavier (also called sigmoid: sqrt(1/fan-in), for "
              "sigmoid and tanh) or he (also called relu: sqrt(2/fan-in), for relu) (default 0.01, the book's; he "
              "for deep-convnet, as in chapter 8)", parse=parse_weight_init,
        check=check_weight_init, metavar="STD", option="weight-init")
    activation: str | None = setting(None, "hidden activation (default sigmoid for mlp, as in chapter 4; relu for "
                                           "the convolutional nets)", choices=activation_names())
    dropout: float = setting(0.0, "fraction of hidden units dropped at each training step (the book's "
                                  "dropout_ratio; at test time every unit is kept and scaled by 1 - ratio); 0: no "
                                  "dropout", UNIT_INTERVAL)
    batch_norm: bool = setting(False, "batch normalization after each hidden affine layer, before its activation",
                               check=check_flag)
    optimizer: str | None = setting(None, "how gradients become updates (default sgd for mlp, as in chapter 4; adam "
                                          "for the convolutional nets, as in chapters 7 and 8)",
                                    choices=OPTIMIZERS.keys())
    momentum: float | None = setting(None, f"the velocity {' and '.join(optimizers_taking('momentum'))} keep "
                                           "(default 0.9, the book's)",
                                     OPTIMIZERS["momentum"].hyperparameters["momentum"])
    weight_decay: float = setting(0.0, "lambda of the weight decay: lambda/2 * sum(W^2) over the weight matrices "
                                       "added to the loss", NON_NEGATIVE_NUMBER)
    grad: str = setting("backprop", "how gradients are computed: by backpropagation, or by numerical "
                                     "differentiation (the chapter's method)", choices=GRAD_METHODS)
    sampling: str = setting("random", "random: each batch drawn independently, as in the book; epoch: a fresh "
                                      "shuffle every epoch, no repeats", choices=SAMPLING_METHODS)
    seed: int = setting(0, "drives weight init and batch sampling: same seed, same run, bit for bit",
                        NON_NEGATIVE_INT)
    dtype: str | None = setting(None, "float type of weights and arithmetic (default: float32 for backprop, as "
                                      "accurate and faster; float64 for numerical gradients, which need it)",
                                choices=DTYPES)
    lr_schedule: str = setting("constant", "how the learning rate changes over the run: constant; "
                                           "step:EPOCHS:FACTOR, multiplied by FACTOR every EPOCHS epochs; cosine, "
                                           "from lr down towards 0 along half a cosine over the run's iterations. A rate "
                                           "set during the run (the lab page, --resume with --lr) rescales the "
                                           "schedule from there", parse=parse_lr_schedule, check=check_lr_schedule,
                               metavar="SCHEDULE")
    early_stop: int | None = setting(None, "stop when the validation accuracy has not improved for N evaluations, "
                                           "keeping the weights of the best one (model.npz holds them; needs "
                                           "validation)", POSITIVE_INT)
    augment: bool = setting(False, "data augmentation (the book's 8.1.3): every training image of every batch "
                                   "shifted, rotated and scaled at random, within augment_shift, augment_rotate and "
                                   "augment_scale, drawn from the seed", check=check_flag)
    augment_shift: float | None = setting(None, "with augment: the largest shift, in pixels, up or down and left or "
                                                f"right (default {AUGMENT_DEFAULTS['augment_shift']:g})",
                                          AUGMENT_SHIFT)
    augment_rotate: float | None = setting(None, "with augment: the largest rotation, in degrees, either way "
                                                 f"(default {AUGMENT_DEFAULTS['augment_rotate']:g})",
                                           AUGMENT_ROTATION)
    augment_scale: float | None = setting(None, "with augment: the largest change of size, a fraction: from 1 - X "
                                                f"to 1 + X times (default {AUGMENT_DEFAULTS['augment_scale']:g})",
                                          UNIT_INTERVAL)

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is None and spec.default is None:  # None: the default that other settings imply
                continue
            if spec.metadata["check"] is not None:
                spec.metadata["check"](spec.name, value)
            else:
                check_choice(spec.name, value, spec.metadata["choices"])
        if self.iters is not None and self.epochs is not None:
            raise ConfigError("give either iters or epochs, not both: they both say how long the run is")
        for name in sorted({name for net in NETS.values() for name in net.own_settings}):
            if getattr(self, name) is not None and name not in NETS[self.net].own_settings:
                takers = nets_taking(name)
                raise ConfigError(f"{name} is a setting of {' and '.join(takers)}, not of {self.net}: choose net "
                                  f"{' or '.join(takers)}, or leave {name} out")
        if self.hidden_sizes is not None:
            object.__setattr__(self, "hidden_sizes", check_widths("hidden_sizes", self.hidden_sizes))  # lists too
            # the default is what config.json records beside hidden_sizes (the command line refuses it given)
            if self.hidden_size not in (None, NETS[self.net].defaults["hidden_size"]):
                raise ConfigError(BOTH_WIDTHS)
        optimizer = self.implied("optimizer")
        for setting_name, keyword in OPTIMIZER_SETTINGS.items():
            if getattr(self, setting_name) is not None and keyword not in OPTIMIZERS[optimizer].hyperparameters:
                takers = " and ".join(optimizers_taking(keyword))
                raise ConfigError(f"{setting_name} is a setting of the {takers} optimizers, not of "
                                  f"{optimizer}: choose one of them as the optimizer, or leave {setting_name} "
                                  "out")
        if self.iters is not None:
            self.check_history_fits(self.iters, self.iters // self.eval_every if self.eval_every else 0)
        object.__setattr__(self, "lr_schedule", check_lr_schedule("lr_schedule", self.lr_schedule))  # as written
        self._check_early_stop_and_augment()
        if self.grad == "numerical" and self.network_dtype != "float64":
            raise ConfigError("numerical gradients need float64: in float32 the loss changes made by h=1e-4 "
                              "drown in rounding error; use dtype float64 (the default for numerical gradients)")

    def _check_early_stop_and_augment(self):
        if self.early_stop is not None and not self.validation:
            raise ConfigError("early_stop watches the validation accuracy: hold out a validation set too "
                              "(validation 0.1, say), or leave early_stop out")
        if self.early_stop is not None and self.eval_every == 0:
            raise ConfigError("early_stop needs evaluations during the run: leave eval_every out (one an epoch) or "
                              "give it a positive number of iterations")
        ranges = [name for name in AUGMENT_DEFAULTS if getattr(self, name) is not None]
        if ranges and not self.augment:
            what = "sets a range" if len(ranges) == 1 else "set the ranges"
            raise ConfigError(f"{', '.join(ranges)} {what} of augment: give augment too, or leave "
                              f"{', '.join(ranges)} out")

    def implied(self, name):
        """The setting `name` as the run uses it: as given, else the net's default for it (None for a setting
        the net does not take)."""
        value = getattr(self, name)
        return value if value is not None else NETS[self.net].defaults.get(name)

    @property
    def learning_rate(self):
        """The learning rate the run uses: `lr`, else chapter 4's for SGD and the book's default for the others."""
        if self.lr is not None:
            return self.lr
        optimizer = self.implied("optimizer")
        return CHAPTER_4_LR if optimizer == "sgd" else OPTIMIZERS[optimizer].default_lr

    def resolved(self):
        """The same settings with every implied default filled in (the net's, the length among them, learning
        rate, the optimizer's settings, dtype): what the run used, as its files record it, so that a change of
        default never changes a saved run's meaning. (With `epochs`, the number of updates depends on the
        training set and stays implied.)"""
        optimizer = self.make_optimizer()
        given_length = self.iters is not None or self.epochs is not None
        implied = {name: self.implied(name) for name in NETS[self.net].defaults
                   if not (name in LENGTHS and given_length)}
        taken = {name: getattr(optimizer, keyword) if keyword in optimizer.hyperparameters else None
                 for name, keyword in OPTIMIZER_SETTINGS.items()}
        augment = {name: self.augment_range(name) for name in AUGMENT_DEFAULTS} if self.augment else {}
        return dataclasses.replace(self, **implied, lr=optimizer.lr, dtype=self.network_dtype, **taken, **augment)

    def augment_range(self, name):
        """The range `name` (augment_shift, augment_rotate or augment_scale) as given, else its default."""
        value = getattr(self, name)
        return value if value is not None else AUGMENT_DEFAULTS[name]

    def data_rows(self, available):
        """(images trained on, images held out for validation) of the `available` training images: the first
        `train_size` of them (else all), `validation` of those, at least one, held out."""
        rows = available if self.train_size is None else self.train_size
        held_out = max(1, round(rows * self.validation)) if self.validation else 0
        return rows - held_out, held_out

    def checked_data_rows(self, available, weight_arrays=0):
        """`data_rows(available)`, or a ConfigError saying why these settings cannot train on `available` images
        (with a network of `weight_arrays`, whose spread each evaluation records)."""
        if self.train_size is not None and self.train_size > available:
            raise ConfigError(f"train size {self.train_size} is more than the {available} training images: "
                              f"choose a train size of at most {available}")
        trained, held_out = self.data_rows(available)
        if self.batch_size > trained:
            note = f", {held_out} more held out for validation" if held_out else ""
            raise ConfigError(f"batch size {self.batch_size} is larger than the training set "
                              f"({trained} samples{note}): choose a batch size of at most {trained}")
        iterations, per_epoch = self.iterations(trained), math.ceil(trained / self.batch_size)
        self.check_history_fits(iterations, iterations // (self.evaluation_interval(per_epoch) or iterations) + 2,
                                weight_arrays)
        LearningRate.of(self, iterations, per_epoch)  # refuses a schedule that takes the rate to 0 on the way
        return trained, held_out

    def check_history_fits(self, iterations, evaluations, weight_arrays=0):
        """Refuse a run whose history.json could grow past what sgdlab reads back (`MAX_JSON_BYTES`)."""
        size = largest_json_size(iterations, evaluations, weight_arrays)
        if size > MAX_JSON_BYTES:
            most = int(MAX_JSON_BYTES // (size / iterations))  # evaluated as often (they grow with the iterations)
            evaluated = f" with {evaluations} evaluations" if evaluations else ""
            raise ConfigError(f"{iterations} iterations{evaluated} make a history larger than the "
                              f"{MAX_JSON_BYTES >> 20} MB sgdlab reads back: train for at most about {most} "
                              "iterations, or evaluate less often (--eval-every)")

    def planned_layers(self, input_shape, output_size):
        """The layers of the network these settings describe for samples of `input_shape` (a number of inputs,
        or one sample's shape), as `(input shape, layers)`, their shapes checked and nothing allocated: a bad
        combination (a filter larger than its input, a pooling window left over) is a ConfigError naming the
        layer and the sizes, before any data is loaded."""
        try:
            return self._layers(input_shape, output_size)
        except ConfigError as misfit:
            fitting = self.shape_settings_that_fit(input_shape, output_size) if misfit.advice else None
            raise misfit.with_advice(fitting) if fitting else misfit

    def _layers(self, input_shape, output_size):
        from ..nn.init import ParameterShapes
        from ..nn.network import MAX_PARAMETERS, build_layers

        shape, specs = NETS[self.net].layers(self, sample_shape(input_shape), output_size)
        return shape, build_layers(shape, specs, ParameterShapes(self.network_dtype, MAX_PARAMETERS))

    def shape_settings_that_fit(self, input_shape, output_size):
        """What to change where the layers' windows do not fit the input: for each setting of the net's shapes,
        its small values that fit with the others as they are (None if no one setting alone makes it fit)."""
        choices = []
        for name in SHAPE_SETTINGS:
            if name not in NETS[self.net].own_settings:
                continue
            values = []
            for value in range(0 if name == "filter_pad" else 1, SHAPE_SEARCH + 1):
                try:
                    dataclasses.replace(self, **{name: value})._layers(input_shape, output_size)
                except ConfigError:
                    continue
                values.append(str(value))
            if values:
                choices.append(f"{name} {', '.join(values)}")
        return f"with the other settings as they are, these fit: {'; '.join(choices)}" if choices else None

    def memory_needed(self, input_size, output_size):
        """About how many bytes a run of these settings takes, estimated from the network's layers before any of
        it is allocated: its parameters' copies; a batch's buffers as the training step makes them (every
        layer's output but those computed in place, the gradients of its inputs, and what each layer declares
        its fast forms keep, `Layer.workspace_bytes`: a convolution's columns, a pooling's winners, dropout's
        draws); the whole-set evaluations' chunks, as large at test time; and the rest of the process.
        `input_size`: inputs per sample, or one sample's shape."""
        from ..engine.forward import execution_order
        from .evaluation import rows_for

        shape, layers = self.planned_layers(input_size, output_size)
        layers = [layers[i] for i in execution_order(layers)]  # as the fast paths run them (relu after pooling)
        dtype = self.network_dtype
        itemsize = 8 if dtype == "float64" else 4
        parameters = sum(math.prod(array.shape) for layer in layers for array in (*layer.parameters,
                                                                                   *layer.statistics))
        outputs, input_grads, shapes = math.prod(shape), 0, []  # values per sample
        for layer in layers:
            shapes.append(shape)
            shape = layer.output_shape(shape)
            if not layer.in_place:
                outputs += math.prod(shape)
            input_grads += math.prod(shape)  # the last layer's is the scores' own buffer: one more is no matter
        batch = self.batch_size
        step = batch * (outputs + input_grads) * itemsize + sum(
            layer.workspace_bytes(batch, shape, dtype, train=True) for layer, shape in zip(layers, shapes))

        def evaluation_chunk(rows):
            return rows * outputs * itemsize + sum(layer.workspace_bytes(rows, shape, dtype, train=False)
                                                   for layer, shape in zip(layers, shapes))

        evaluation = evaluation_chunk(rows_for(evaluation_chunk(1)))
        copies = PARAMETER_COPIES + (EARLY_STOP_COPIES if self.early_stop else 0)
        return copies * parameters * itemsize + step + EVALUATION_CHUNKS * evaluation + RUN_OVERHEAD_BYTES

    def check_memory(self, input_size, output_size, runs=1):
        """Refuse, before allocating, settings that `runs` runs side by side (one by default) need more memory for
        than this machine has available, in one line naming the estimate and the limit; and settings whose layers
        do not fit the input (see `planned_layers`)."""
        from ..engine.threads import check_memory

        shape, layers = self.planned_layers(input_size, output_size)
        sizes = [shape]
        for layer in layers:
            shape, before = layer.output_shape(shape), shape
            if layer.decayed_names or shape != before:  # the weighted layers, and those that reshape (pooling)
                sizes.append(shape)
        layout = "-".join("x".join(map(str, size)) for size in sizes)
        what = f"a {layout} net in {self.network_dtype}" + (f", {runs} trained side by side," if runs > 1 else "")
        check_memory(runs * self.memory_needed(input_size, output_size), what,
                     f"choose {self.smaller()}" + (" or fewer workers" if runs > 1 else ""))

    def smaller(self):
        """What makes a net of these settings smaller, in words."""
        return "fewer filters or a smaller hidden layer" if "filter_num" in NETS[self.net].own_settings \
            else "smaller hidden layers"

    def iterations(self, train_rows):
        """The updates the run makes on `train_rows` images: `iters`, else `epochs` full epochs, else the net's
        length (chapter 4's 10000 updates, chapter 7's and chapter 8's 20 epochs)."""
        if self.iters is None and self.epochs is None:
            return dataclasses.replace(self, **{name: value for name, value in NETS[self.net].defaults.items()
                                                if name in LENGTHS}).iterations(train_rows)
        if self.iters is not None:
            return self.iters
        return self.epochs * math.ceil(train_rows / self.batch_size)

    def evaluation_interval(self, iters_per_epoch):
        """Iterations between evaluations: `eval_every`, else one epoch; 0 for none before the last iteration."""
        return self.eval_every if self.eval_every is not None else iters_per_epoch

    def make_network(self, input_size, output_size, rng):
        """The untrained network these settings describe for samples of `input_size` (a number of inputs, or one
        sample's shape: (1, 28, 28) for MNIST's images, which a convolutional net needs), its weights drawn from
        `rng`: for mlp, the book's TwoLayerNet for one hidden layer, a MultiLayerNet for more; for simple-convnet,
        the book's SimpleConvNet, for deep-convnet its DeepConvNet (each a ConvNet of its layers when the settings
        change them)."""
        return NETS[self.net].build(self, sample_shape(input_size), output_size, rng)

    def make_optimizer(self):
        """The optimizer these settings describe: the settings of `OPTIMIZER_SETTINGS` that were given, by their
        keywords; its other hyperparameters keep the book's defaults."""
        given = {keyword: getattr(self, name) for name, keyword in OPTIMIZER_SETTINGS.items()
                 if getattr(self, name) is not None}
        return OPTIMIZERS[self.implied("optimizer")](self.learning_rate, **given)

    @property
    def network_dtype(self):
        """The float type the run computes in: `dtype`, else the default for the gradient method."""
        if self.dtype is not None:
            return self.dtype
        return "float64" if self.grad == "numerical" else "float32"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """A config from `to_dict()` output; unknown keys are an error, missing ones take defaults (a config.json
        written before `net` existed is an mlp's, as it was)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}: expected some of {sorted(known)}")
        return cls(**values)
