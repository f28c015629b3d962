import dataclasses
import re

import pytest

from sgdlab.errors import ConfigError
from sgdlab.nn.optimizers import OPTIMIZERS, Adam, Optimizer
from sgdlab.ranges import NON_NEGATIVE_NUMBER
from sgdlab.training.config import OPTIMIZER_SETTINGS, TrainConfig


def test_defaults_are_the_books():
    config = TrainConfig()
    assert (config.iterations(60000), config.batch_size, config.learning_rate, config.implied("hidden_size")) == \
        (10000, 100, 0.1, 50)
    assert config.resolved().iters == 10000 and config.data_rows(60000) == (60000, 0)
    assert (config.grad, config.sampling, config.implied("activation")) == ("backprop", "random", "sigmoid")
    assert (config.net, config.resolved().optimizer, config.resolved().hidden_size) == ("mlp", "sgd", 50)


@pytest.mark.parametrize("field, value, message", [
    ("iters", 0, "iters must be a positive integer, got 0"),
    ("iters", -5, "iters must be a positive integer"),
    ("iters", 2.5, "iters must be a positive integer"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("hidden_size", True, "hidden_size must be a positive integer"),
    ("lr", 0.0, "lr must be a positive number, got 0.0"),
    ("lr", float("nan"), "lr must be a positive number"),
    ("lr", float("inf"), "lr must be a positive number"),
    ("weight_init_std", -1.0, "weight_init_std must be a positive number"),
    ("grad", "autodiff", "grad must be one of backprop, numerical"),
    ("sampling", "shuffle", "sampling must be one of random, epoch"),
    ("activation", "softplus", "activation must be one of relu, sigmoid, tanh"),
    ("seed", -1, "seed must be a non-negative integer"),
    ("dtype", "float16", "dtype must be one of float32, float64"),
])
def test_bad_values_are_refused_up_front(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


def test_dict_round_trip_and_unknown_keys():
    config = TrainConfig(iters=5, lr=0.5, sampling="epoch")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"unknown config keys \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_dtype_defaults_to_float32_for_backprop_and_float64_for_numerical():
    assert TrainConfig().network_dtype == "float32"
    assert TrainConfig(grad="numerical").network_dtype == "float64"
    assert TrainConfig(dtype="float64").network_dtype == "float64"
    assert dataclasses.replace(TrainConfig(), grad="numerical").network_dtype == "float64"
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_the_learning_rate_defaults_to_the_optimizers():
    assert TrainConfig().learning_rate == 0.1  # chapter 4's run
    assert TrainConfig(optimizer="adam").learning_rate == 0.001
    assert TrainConfig(optimizer="momentum").learning_rate == 0.01
    assert TrainConfig(optimizer="adam", lr=0.5).learning_rate == 0.5
    assert repr(TrainConfig(optimizer="nesterov", momentum=0.5).make_optimizer()) == "Nesterov(lr=0.01, momentum=0.5)"
    assert repr(TrainConfig(optimizer="rmsprop").make_optimizer()) == "RMSprop(lr=0.01, decay_rate=0.99)"


def test_deeper_nets_and_weight_decay_are_settings():
    config = TrainConfig(hidden_sizes=[30, 20], weight_decay=0.01)  # a list, as config.json holds it
    assert config.hidden_sizes == (30, 20)
    assert TrainConfig.from_dict(config.to_dict()) == config
    network = config.make_network(6, 3, rng=0)
    assert type(network).__name__ == "MultiLayerNet" and network.sizes == (6, 30, 20, 3)
    assert network.weight_decay_lambda == 0.01
    assert type(TrainConfig().make_network(6, 3, rng=0)).__name__ == "TwoLayerNet"
    with pytest.raises(ConfigError, match="either hidden_size .* or hidden_sizes"):
        TrainConfig(hidden_size=20, hidden_sizes=(30,))
    for bad in ((), (30, 0), "30", (2.5,)):
        with pytest.raises(ConfigError, match="hidden_sizes must be one or more positive integers"):
            TrainConfig(hidden_sizes=bad)
    with pytest.raises(ConfigError, match="weight_decay must be a non-negative number"):
        TrainConfig(weight_decay=-1.0)


def test_a_runs_length_in_iterations_or_in_epochs_of_its_training_set():
    assert TrainConfig(iters=7).iterations(60000) == 7
    assert TrainConfig(epochs=3).iterations(60000) == 3 * 600
    assert TrainConfig(epochs=2, train_size=300, batch_size=128).iterations(300) == 2 * 3  # ceil(300 / 128)
    assert TrainConfig(train_size=300).data_rows(60000) == (300, 0)
    assert TrainConfig(train_size=500, validation=0.2).data_rows(60000) == (400, 100)
    assert TrainConfig(validation=0.001).data_rows(10) == (9, 1)  # at least one held out
    assert TrainConfig(epochs=2).resolved().iters is None  # depends on the training set: stays implied
    with pytest.raises(ConfigError, match="give either iters or epochs, not both"):
        TrainConfig(iters=5, epochs=3)
    for name in ("epochs", "train_size"):
        with pytest.raises(ConfigError, match=f"{name} must be a positive integer, got 0"):
            TrainConfig(**{name: 0})


def test_resolved_settings_name_every_default_the_run_used():
    resolved = TrainConfig(optimizer="momentum").resolved()
    assert (resolved.lr, resolved.momentum, resolved.dtype) == (0.01, 0.9, "float32")
    assert TrainConfig.from_dict(resolved.to_dict()) == resolved
    plain = TrainConfig().resolved()
    assert (plain.lr, plain.momentum, plain.dtype) == (0.1, None, "float32")  # SGD has no momentum
    assert TrainConfig(grad="numerical", lr=0.5).resolved().dtype == "float64"


def test_momentum_is_refused_for_an_optimizer_without_one():
    with pytest.raises(ConfigError, match="momentum is a setting of the momentum and nesterov optimizers, not of adam"):
        TrainConfig(optimizer="adam", momentum=0.5)
    with pytest.raises(ConfigError, match=r"momentum must be a number in \[0, 1\), got 1.0"):
        TrainConfig(optimizer="momentum", momentum=1.0)


@pytest.fixture
def adamw():
    """A contributor's optimizer whose own hyperparameter is named like a setting of the config (weight_decay,
    there the network's loss term), registered for one test."""
    class AdamW(Adam):
        name = "adamw-test"
        hyperparameters = {**Adam.hyperparameters, "weight_decay": NON_NEGATIVE_NUMBER}

        def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, weight_decay=0.01):
            Optimizer.__init__(self, lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)

    yield AdamW
    del OPTIMIZERS[AdamW.name]


def test_settings_reach_an_optimizer_only_through_the_declared_mapping(adamw):
    assert TrainConfig(optimizer="adamw-test").make_optimizer().weight_decay == 0.01  # its own default, not 0.0
    config = TrainConfig(optimizer="adamw-test", weight_decay=0.1)
    assert config.make_optimizer().weight_decay == 0.01  # the config's weight decay is the network's, only
    assert config.make_network(6, 3, rng=0).weight_decay_lambda == 0.1
    assert repr(config.resolved().make_optimizer()) == "AdamW(lr=0.001, beta1=0.9, beta2=0.999, weight_decay=0.01)"
    with pytest.raises(ConfigError, match="momentum is a setting of the momentum and nesterov optimizers, not of "
                                          "adamw-test"):
        TrainConfig(optimizer="adamw-test", momentum=0.5)
    for setting, keyword in OPTIMIZER_SETTINGS.items():  # each mapped setting is one some optimizer takes
        assert setting in {spec.name for spec in dataclasses.fields(TrainConfig)}
        assert any(keyword in optimizer.hyperparameters for optimizer in OPTIMIZERS.values())


def test_numerical_gradients_in_float32_are_refused():
    with pytest.raises(ConfigError, match="numerical gradients need float64"):
        TrainConfig(grad="numerical", dtype="float32")


def test_command_line_help_needs_no_numpy():
    import subprocess
    import sys

    code = "import sys; from sgdlab.cli import build_parser; build_parser(); print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_submodules_are_reachable_from_the_package():
    import sgdlab

    assert sgdlab.nn.functions.sigmoid(0.0) == 0.5
    assert "TwoLayerNet" in dir(sgdlab)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        sgdlab.nonexistent


@pytest.fixture
def memory_available(monkeypatch):
    """`memory_available(bytes)`: this machine seems to have that much memory available, whatever it has."""
    def set_available(size):
        monkeypatch.setattr("sgdlab.engine.threads.available_memory", lambda: size)

    return set_available


@pytest.mark.parametrize("settings", [{}, {"hidden_sizes": (300, 200), "batch_norm": True, "dtype": "float64"}])
def test_a_runs_memory_is_estimated_from_every_parameter_it_copies(settings):
    from sgdlab.training.config import PARAMETER_COPIES, RUN_OVERHEAD_BYTES

    config = TrainConfig(**settings)
    network = config.make_network(784, 10, rng=0)
    parameters = sum(array.nbytes for array in (*network.params.values(), *network.running_statistics.values()))
    needed = config.memory_needed(784, 10)
    assert PARAMETER_COPIES * parameters + RUN_OVERHEAD_BYTES < needed < 2 * PARAMETER_COPIES * parameters + \
        RUN_OVERHEAD_BYTES + (1 << 30)


def test_a_net_that_cannot_fit_in_memory_is_refused_before_it_is_allocated(memory_available):
    memory_available(1 << 30)
    config = TrainConfig(hidden_sizes=(1_000_000,))
    with pytest.raises(ConfigError) as refused:  # from the settings alone: nothing of the net is made
        config.check_memory(784, 10)
    assert str(refused.value) == ("a 784-1000000-10 net in float32 would need about 37.1 GB of memory, more than "
                                  "the 1.0 GB available: choose smaller hidden layers")
    config = TrainConfig(hidden_size=100)
    with pytest.raises(ConfigError, match=r"a 784-100-10 net in float32, 5 trained side by side, would need about "
                                          r"1\.\d GB of memory, more than the 1\.0 GB available: choose smaller hidden "
                                          r"layers or fewer workers"):
        config.check_memory(784, 10, runs=5)
    config.check_memory(784, 10, runs=2)


def test_a_history_larger_than_sgdlab_reads_back_is_refused_up_front():
    from sgdlab.fileio import MAX_JSON_BYTES
    from sgdlab.training.history import largest_json_size

    most = MAX_JSON_BYTES // largest_json_size(1, 0)
    TrainConfig(iters=most)
    with pytest.raises(ConfigError, match=f"{most + 1} iterations make a history larger than the 256 MB sgdlab "
                                          f"reads back: train for at most about {most} iterations"):
        TrainConfig(iters=most + 1)
    with pytest.raises(ConfigError, match="2000000 iterations with 2000000 evaluations make a history larger") as refused:
        TrainConfig(iters=2_000_000, eval_every=1)
    most = int(re.search(r"train for at most about (\d+) iterations", str(refused.value))[1])
    TrainConfig(iters=most, eval_every=1)  # as many as said, evaluated as often: accepted
    with pytest.raises(ConfigError):
        TrainConfig(iters=int(most * 1.01), eval_every=1)
    with pytest.raises(ConfigError, match="60000000 iterations with 100002 evaluations"):
        TrainConfig(epochs=100_000, batch_size=100).checked_data_rows(60_000)  # epochs are counted with the data


def test_a_history_is_never_larger_than_its_bound(tmp_path):
    from sgdlab.training.history import History, largest_json_size

    widest = -1.2345678901234567e-308  # the longest repr a float has
    history = History(iters_per_epoch=1, loss=[widest] * 1000)
    for iteration in range(100):
        history.record_evaluation(iteration, widest, widest, widest, widest, widest,
                                  {"train_loss": widest, "test_loss": widest, "val_loss": widest},
                                  {f"W{k}": [widest] * 9 for k in range(100, 112)})
    history.save(tmp_path / "history.json")
    size = (tmp_path / "history.json").stat().st_size
    assert largest_json_size(1000, 100) < size  # the weights' spread counted
    assert size <= largest_json_size(1000, 100, 12) + 1000  # + its keys


def test_a_net_is_made_whatever_memory_is_available_at_that_moment(memory_available):
    """The estimate is checked where a run is asked for (train, gradcheck, an experiment or sweep up front), never
    where a net is built: a sweep's trial, a resumed worker or the page's refresh would end on a passing dip."""
    memory_available(1 << 20)
    network = TrainConfig(hidden_size=5).make_network(784, 10, rng=0)
    assert network.params["W1"].shape == (784, 5)


# --- the named nets ----------------------------------------------------------------------------------------------

MNIST_SAMPLE = (1, 28, 28)


def test_simple_convnet_takes_the_books_chapter_7_run_as_its_defaults():
    config = TrainConfig(net="simple-convnet")
    resolved = config.resolved().to_dict()
    assert {key: resolved[key] for key in ("iters", "epochs", "batch_size", "eval_every", "test_eval", "lr",
                                           "optimizer", "activation", "hidden_size", "filter_num", "filter_size",
                                           "filter_stride", "filter_pad", "pool_size", "weight_init_std")} == {
        "iters": None, "epochs": 20, "batch_size": 100, "eval_every": None, "test_eval": "every", "lr": 0.001,
        "optimizer": "adam", "activation": "relu", "hidden_size": 100, "filter_num": 30, "filter_size": 5,
        "filter_stride": 1, "filter_pad": 0, "pool_size": 2, "weight_init_std": 0.01}
    assert config.iterations(60000) == 20 * 600 and repr(config.make_optimizer()).startswith("Adam(lr=0.001,")
    network = config.make_network(MNIST_SAMPLE, 10, rng=0)
    assert type(network).__name__ == "SimpleConvNet"
    assert {key: value.shape for key, value in network.params.items()} == {
        "W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,), "W3": (100, 10), "b3": (10,)}
    assert TrainConfig.from_dict(resolved) == config.resolved()  # config.json read back means the same run


# chapter 8's settings, off unless given: a config.json written before them means a run without them
NEW_SETTINGS_OFF = {"lr_schedule": "constant", "early_stop": None, "augment": False,
                    **dict.fromkeys(("augment_shift", "augment_rotate", "augment_scale"))}


def test_mlps_settings_are_chapter_4s_as_before_and_an_old_config_without_net_is_an_mlps():
    written_before = {"iters": 10000, "epochs": None, "train_size": None, "validation": 0.0, "batch_size": 100,
                      "eval_every": None, "test_eval": "every", "lr": 0.1, "hidden_size": 50, "hidden_sizes": None,
                      "weight_init_std": 0.01, "activation": "sigmoid", "dropout": 0.0, "batch_norm": False,
                      "optimizer": "sgd", "momentum": None, "weight_decay": 0.0, "grad": "backprop",
                      "sampling": "random", "seed": 0, "dtype": "float32"}  # a config.json of sgdlab before net
    old = TrainConfig.from_dict(written_before)
    assert old.net == "mlp" and old.resolved() == TrainConfig().resolved()
    assert TrainConfig().resolved().to_dict() == {**written_before, "net": "mlp", **dict.fromkeys(
        ("filter_num", "filter_size", "filter_stride", "filter_pad", "pool_size")), **NEW_SETTINGS_OFF}
    deeper = TrainConfig.from_dict({**written_before, "hidden_sizes": [100, 100], "activation": "relu"})
    assert type(deeper.make_network(784, 10, rng=0)).__name__ == "MultiLayerNet"  # hidden_size 50 beside it, as
    assert deeper.resolved() == deeper  # files record it


@pytest.mark.parametrize("setting, value", [("filter_num", 8), ("filter_size", 3), ("filter_stride", 1),
                                            ("filter_pad", 0), ("pool_size", 2)])
def test_a_convolutions_settings_given_to_an_mlp_are_refused(setting, value):
    with pytest.raises(ConfigError) as refused:
        TrainConfig(**{setting: value})
    takers = "simple-convnet and deep-convnet" if setting == "filter_num" else "simple-convnet"
    assert str(refused.value) == (f"{setting} is a setting of {takers}, not of mlp: choose net "
                                  f"{takers.replace(' and ', ' or ')}, or leave {setting} out")


@pytest.mark.parametrize("setting, value", [("filter_size", 3), ("filter_stride", 1), ("filter_pad", 0),
                                            ("pool_size", 2)])
def test_deep_convnet_refuses_the_settings_of_simple_convnets_one_convolution(setting, value):
    with pytest.raises(ConfigError, match=f"^{setting} is a setting of simple-convnet, not of deep-convnet: choose "
                                          f"net simple-convnet, or leave {setting} out$"):
        TrainConfig(net="deep-convnet", **{setting: value})


def test_hidden_sizes_are_an_mlps_and_simple_convnet_has_one_hidden_layer():
    with pytest.raises(ConfigError, match="hidden_sizes is a setting of mlp, not of simple-convnet"):
        TrainConfig(net="simple-convnet", hidden_sizes=(10, 10))
    with pytest.raises(ConfigError, match="give either hidden_size"):
        TrainConfig(hidden_size=20, hidden_sizes=(10, 10))


@pytest.mark.parametrize("settings, message", [
    ({"filter_size": 29}, "layer 1 of 6: Convolution(30 filters 1x29x29, stride 1, pad 0) (height): a window of 29 "
                          "is larger than its input of 28"),
    ({"filter_size": 5, "filter_stride": 2}, "layer 1 of 6: Convolution(30 filters 1x5x5, stride 2, pad 0) (height)"),
    ({"filter_size": 4}, "layer 3 of 6: Pooling(2x2, stride 2, pad 0) (height): a window of 2 at stride 2 does not "
                         "fit an input of 25"),
    ({"pool_size": 5}, "layer 3 of 6: Pooling(5x5, stride 5, pad 0) (height): a window of 5 at stride 5 does not "
                       "fit an input of 24"),
])
def test_layers_that_do_not_fit_mnists_images_are_refused_before_anything_is_allocated(settings, message):
    config = TrainConfig(net="simple-convnet", **settings)  # the settings alone are each in range
    for check in (config.planned_layers, config.check_memory, config.memory_needed):
        with pytest.raises(ConfigError) as refused:
            check(MNIST_SAMPLE, 10)
        assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_convolutional_net_needs_images_not_rows():
    with pytest.raises(ConfigError, match=r"simple-convnet takes images, \(channels, height, width\) each, not "
                                          r"samples of shape \(784,\)"):
        TrainConfig(net="simple-convnet").make_network(784, 10, rng=0)


@pytest.mark.parametrize("settings, layers", [
    ({}, ["convolution", "relu", "pooling", "affine", "relu", "affine"]),
    ({"batch_norm": True}, ["convolution", "batch_norm", "relu", "pooling", "affine", "batch_norm", "relu", "affine"]),
    ({"dropout": 0.3}, ["convolution", "relu", "pooling", "affine", "relu", "dropout", "affine"]),
    ({"activation": "tanh", "pool_size": 3, "filter_size": 3, "filter_pad": 2},
     ["convolution", "tanh", "pooling", "affine", "tanh", "affine"]),
])
def test_simple_convnets_options_place_their_layers_as_chapter_6_does(settings, layers):
    """SimpleConvNet itself for the book's layers; batch norm before each activation, dropout after the hidden
    one, another activation or pooling window: the ConvNet of those layers, recorded as such in a model file."""
    network = TrainConfig(net="simple-convnet", filter_num=3, hidden_size=7, **settings).make_network(
        MNIST_SAMPLE, 10, rng=0)
    assert type(network).__name__ == ("SimpleConvNet" if not settings else "ConvNet")
    assert [layer.kind or layer.activation.name for layer in network.layers] == layers
    assert [spec["type"] for spec in network.architecture().get("layers", [])] in ([], layers[:-1])


def allocated_bytes(*passes):
    """The bytes of every distinct array the passes hold: outputs, input gradients, workspaces (a chunk's too)."""
    from sgdlab.nn.layers.base import arrays_of

    arrays = {}
    for forward in passes:
        works = [*forward.workspaces, *getattr(forward, "chunk_workspaces", {}).values()]
        for array in [*forward.outputs, *getattr(forward, "input_grads", []),
                      *(a for work in works for w in (work if isinstance(work, list) else [work])
                        for a in arrays_of(w))]:
            if array is not None:
                arrays[id(array)] = array
    return sum(array.nbytes for array in arrays.values())


@pytest.mark.parametrize("settings", [{}, {"filter_num": 8, "filter_pad": 2, "batch_size": 50, "batch_norm": True},
                                      {"dropout": 0.5, "pool_size": 4, "dtype": "float64"}])
def test_a_convolutional_runs_estimate_is_the_buffers_its_step_and_evaluations_allocate(settings):
    """Counted from the layers' declarations (their outputs, their workspaces: a convolution's columns, a
    pooling's winners, dropout's float64 draws), the estimate is what the training step and the three evaluation
    chunks (the evaluation's two halves, the page's) make, to a few percent."""
    from sgdlab.engine.backprop import BackpropStep
    from sgdlab.engine.forward import ForwardPass
    from sgdlab.training.config import PARAMETER_COPIES, RUN_OVERHEAD_BYTES
    from sgdlab.training.evaluation import chunk_rows

    config = TrainConfig(net="simple-convnet", **settings)
    network = config.make_network(MNIST_SAMPLE, 10, rng=0)
    chunk = chunk_rows(network)
    allocated = (allocated_bytes(BackpropStep(network, config.batch_size)) +
                 3 * allocated_bytes(ForwardPass(network, chunk)))
    parameters = sum(array.nbytes for array in network.weights().values())
    estimated = config.memory_needed(MNIST_SAMPLE, 10) - RUN_OVERHEAD_BYTES - PARAMETER_COPIES * parameters
    assert allocated <= estimated <= 1.05 * allocated, (allocated, estimated)


@pytest.mark.parametrize("given", [{"filter_size": 4}, {"filter_size": 4, "filter_stride": 2}, {"filter_size": 30},
                                   {"pool_size": 5}])
def test_a_misfit_of_shapes_names_the_sizes_that_fit(given):
    """The layers' windows do not tile MNIST's 28x28: the error names the layer and the sizes, and, for each of
    the net's shape settings, the values that would fit with the others as given, each of which does."""
    config = TrainConfig(net="simple-convnet", **given)
    with pytest.raises(ConfigError, match=r"^layer \d of 6: .*; with the other settings as they are, these fit: ") \
            as refused:
        config.planned_layers((1, 28, 28), 10)
    suggestions = refused.value.advice.split("these fit: ")[1].split("; ")
    assert suggestions
    for suggestion in suggestions:
        name, values = suggestion.split(" ", 1)
        for value in map(int, values.split(", ")):
            dataclasses.replace(config, **{name: value}).planned_layers((1, 28, 28), 10)  # fits: no error
