"""The settings of a training run, in one place, each with the book's default, its range and what it means.

Each field declares once what values it takes (a `Range`, or the names of a
registry); `TrainConfig` checks them when made and the command line builds
its options, choices and help from the same declarations. This module
imports no NumPy, so `sgdlab --help` stays quick.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..fileio import MAX_JSON_BYTES
from ..nn.activations import activation_names
from ..nn.init import check_weight_init, parse_weight_init
from ..nn.optimizers import OPTIMIZERS
from ..ranges import (NON_NEGATIVE_INT, NON_NEGATIVE_NUMBER, POSITIVE_INT, POSITIVE_NUMBER, UNIT_INTERVAL, check_choice,
                      check_flag, check_widths, parse_widths)
from .history import largest_json_size

CHAPTER_4_ITERS = 10_000  # the updates of chapter 4's run
CHAPTER_4_LR = 0.1  # the learning rate of chapter 4's run, SGD's default here (the book's SGD class has 0.01)
GRAD_METHODS = ("backprop", "numerical")
DTYPES = ("float32", "float64")
TEST_EVALUATIONS = ("every", "last")
SAMPLING_METHODS = ("random", "epoch")
# What a run holds as large as its parameters: the weights, their gradients, the optimizer's slots (two at most),
# the snapshots of the evaluation running and the one waiting (2), and the checkpoints captured with those two,
# each the weights and the optimizer's slots (2 x 3).
PARAMETER_COPIES = 12
STEP_COPIES = 4  # per unit and sample of a batch: the forward outputs, the backward buffers, masks and workspaces
RUN_OVERHEAD_BYTES = 300 << 20  # Python, NumPy, MNIST as uint8, the batches gathered ahead
# The settings that are optimizers' hyperparameters -> the keyword an optimizer takes each by: the only way a
# setting reaches an optimizer. A setting given for an optimizer that takes no such keyword is refused; an
# optimizer's keyword that is not here keeps the optimizer's default whatever the settings hold (weight_decay
# here is the loss term of the network, never an optimizer's own decay).
OPTIMIZER_SETTINGS = {"momentum": "momentum"}


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


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; the defaults are chapter 4's.

    Invalid values raise `ConfigError` (a `ValueError`) when the config is made,
    not minutes into training.
    """

    iters: int | None = setting(None, f"mini-batch updates in total (default {CHAPTER_4_ITERS}, as in chapter 4, "
                                      "unless epochs is given)", POSITIVE_INT)
    epochs: int | None = setting(None, "full passes over the training set, instead of iters", POSITIVE_INT)
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
    hidden_size: int = setting(50, "units in the hidden layer", POSITIVE_INT)
    hidden_sizes: tuple | None = setting(None, "units in each hidden layer of a deeper net, such as 100,100,100 "
                                               "(instead of hidden_size)", parse=parse_widths, check=check_widths,
                                         metavar="N,N,...")
    weight_init_std: float | str = setting(
        0.01, "initial weights ~ N(0, std^2): a number, or xavier (also called sigmoid: sqrt(1/fan-in), for "
              "sigmoid and tanh) or he (also called relu: sqrt(2/fan-in), for relu)", parse=parse_weight_init,
        check=check_weight_init, metavar="STD", option="weight-init")
    activation: str = setting("sigmoid", "hidden activation", choices=activation_names())
    dropout: float = setting(0.0, "fraction of hidden units dropped at each training step (the book's "
                                  "dropout_ratio; at test time every unit is kept and scaled by 1 - ratio); 0: no "
                                  "dropout", UNIT_INTERVAL)
    batch_norm: bool = setting(False, "batch normalization after each hidden affine layer, before its activation",
                               check=check_flag)
    optimizer: str = setting("sgd", "how gradients become updates", choices=OPTIMIZERS.keys())
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
        if self.hidden_sizes is not None:
            object.__setattr__(self, "hidden_sizes", check_widths("hidden_sizes", self.hidden_sizes))  # lists too
            if self.hidden_size != TrainConfig.hidden_size:  # (the command line also refuses the default given)
                raise ConfigError(BOTH_WIDTHS)
        for setting_name, keyword in OPTIMIZER_SETTINGS.items():
            if getattr(self, setting_name) is not None and keyword not in OPTIMIZERS[self.optimizer].hyperparameters:
                takers = " and ".join(optimizers_taking(keyword))
                raise ConfigError(f"{setting_name} is a setting of the {takers} optimizers, not of "
                                  f"{self.optimizer}: choose one of them as the optimizer, or leave {setting_name} "
                                  "out")
        if self.iters is not None:
            self.check_history_fits(self.iters, self.iters // self.eval_every if self.eval_every else 0)
        if self.grad == "numerical" and self.network_dtype != "float64":
            raise ConfigError("numerical gradients need float64: in float32 the loss changes made by h=1e-4 "
                              "drown in rounding error; use dtype float64 (the default for numerical gradients)")

    @property
    def learning_rate(self):
        """The learning rate the run uses: `lr`, else chapter 4's for SGD and the book's default for the others."""
        if self.lr is not None:
            return self.lr
        return CHAPTER_4_LR if self.optimizer == "sgd" else OPTIMIZERS[self.optimizer].default_lr

    def resolved(self):
        """The same settings with every implied default filled in (updates, learning rate, the optimizer's
        settings, dtype): what the run used, as its files record it, so that a change of default never changes a
        saved run's meaning. (With `epochs`, the number of updates depends on the training set and stays implied.)"""
        optimizer = self.make_optimizer()
        iters = self.iters if self.iters is not None or self.epochs is not None else CHAPTER_4_ITERS
        taken = {name: getattr(optimizer, keyword) if keyword in optimizer.hyperparameters else None
                 for name, keyword in OPTIMIZER_SETTINGS.items()}
        return dataclasses.replace(self, iters=iters, lr=optimizer.lr, dtype=self.network_dtype, **taken)

    def data_rows(self, available):
        """(images trained on, images held out for validation) of the `available` training images: the first
        `train_size` of them (else all), `validation` of those, at least one, held out."""
        rows = available if self.train_size is None else self.train_size
        held_out = max(1, round(rows * self.validation)) if self.validation else 0
        return rows - held_out, held_out

    def checked_data_rows(self, available):
        """`data_rows(available)`, or a ConfigError saying why these settings cannot train on `available` images."""
        if self.train_size is not None and self.train_size > available:
            raise ConfigError(f"train size {self.train_size} is more than the {available} training images: "
                              f"choose a train size of at most {available}")
        trained, held_out = self.data_rows(available)
        if self.batch_size > trained:
            note = f", {held_out} more held out for validation" if held_out else ""
            raise ConfigError(f"batch size {self.batch_size} is larger than the training set "
                              f"({trained} samples{note}): choose a batch size of at most {trained}")
        iterations, per_epoch = self.iterations(trained), math.ceil(trained / self.batch_size)
        self.check_history_fits(iterations, iterations // (self.evaluation_interval(per_epoch) or iterations) + 2)
        return trained, held_out

    def check_history_fits(self, iterations, evaluations):
        """Refuse a run whose history.json could grow past what sgdlab reads back (`MAX_JSON_BYTES`)."""
        if largest_json_size(iterations, evaluations) > MAX_JSON_BYTES:
            most = MAX_JSON_BYTES // largest_json_size(1, 0)
            evaluated = f" with {evaluations} evaluations" if evaluations else ""
            raise ConfigError(f"{iterations} iterations{evaluated} make a history larger than the "
                              f"{MAX_JSON_BYTES >> 20} MB sgdlab reads back: train for at most about {most} "
                              "iterations, or evaluate less often (--eval-every)")

    def memory_needed(self, input_size, output_size):
        """About how many bytes a run of these settings takes, estimated from the network's size before any
        of it is allocated: its parameters' copies, a batch's and an evaluation chunk's activations, and the
        rest of the process."""
        from .evaluation import CHUNK_ROWS

        widths = (input_size, *(self.hidden_sizes or (self.hidden_size,)), output_size)
        parameters = sum((n_in + 1) * n_out for n_in, n_out in zip(widths, widths[1:]))
        if self.batch_norm:
            parameters += 4 * sum(widths[1:-1])  # gamma, beta and the running mean and variance
        itemsize = 8 if self.network_dtype == "float64" else 4
        activations = (STEP_COPIES * self.batch_size + 2 * CHUNK_ROWS) * sum(widths)
        return (PARAMETER_COPIES * parameters + activations) * itemsize + RUN_OVERHEAD_BYTES

    def check_memory(self, input_size, output_size, runs=1):
        """Refuse, before allocating, settings that `runs` runs side by side (one by default) need more memory for
        than this machine has available, in one line naming the estimate and the limit."""
        from ..engine.threads import check_memory

        widths = "-".join(map(str, (input_size, *(self.hidden_sizes or (self.hidden_size,)), output_size)))
        what = f"a {widths} net in {self.network_dtype}" + (f", {runs} trained side by side," if runs > 1 else "")
        check_memory(runs * self.memory_needed(input_size, output_size), what,
                     "choose smaller hidden layers" + (" or fewer workers" if runs > 1 else ""))

    def iterations(self, train_rows):
        """The updates the run makes on `train_rows` images: `iters`, else `epochs` full epochs, else chapter 4's."""
        if self.iters is not None:
            return self.iters
        if self.epochs is not None:
            return self.epochs * math.ceil(train_rows / self.batch_size)
        return CHAPTER_4_ITERS

    def evaluation_interval(self, iters_per_epoch):
        """Iterations between evaluations: `eval_every`, else one epoch; 0 for none before the last iteration."""
        return self.eval_every if self.eval_every is not None else iters_per_epoch

    def make_network(self, input_size, output_size, rng):
        """The untrained network these settings describe, its weights drawn from `rng`: the book's TwoLayerNet
        for one hidden layer, a MultiLayerNet for more."""
        from ..nn.network import MultiLayerNet, TwoLayerNet

        options = {"weight_init_std": self.weight_init_std, "activation": self.activation, "rng": rng,
                   "dtype": self.network_dtype, "weight_decay_lambda": self.weight_decay,
                   "use_dropout": self.dropout > 0, "use_batchnorm": self.batch_norm}
        if self.dropout:
            options["dropout_ratio"] = self.dropout
        if self.hidden_sizes is None:
            return TwoLayerNet(input_size, self.hidden_size, output_size, **options)
        return MultiLayerNet(input_size, list(self.hidden_sizes), output_size, **options)

    def make_optimizer(self):
        """The optimizer these settings describe: the settings of `OPTIMIZER_SETTINGS` that were given, by their
        keywords; its other hyperparameters keep the book's defaults."""
        given = {keyword: getattr(self, name) for name, keyword in OPTIMIZER_SETTINGS.items()
                 if getattr(self, name) is not None}
        return OPTIMIZERS[self.optimizer](self.learning_rate, **given)

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
        """A config from `to_dict()` output; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}: expected some of {sorted(known)}")
        return cls(**values)
