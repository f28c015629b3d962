"""The book's chapter-6 experiments at reduced settings, on the real MNIST: their files, their fairness, and the
book's findings where they hold reliably this early."""

import dataclasses
import json

import numpy as np
import pytest

from sgdlab.errors import ConfigError, SgdlabError
from sgdlab.runs.experiments import (BATCH_NORM_SCALES, experiments, optimizers_experiment, resume_experiment,
                                     run_experiment)
from sgdlab.runs.model_file import load_model
from sgdlab.cli.experiment import NAMES
from sgdlab.training.config import TrainConfig


def subset(experiment, *variants):
    return dataclasses.replace(experiment, variants={name: experiment.variants[name] for name in variants})


def test_the_command_line_knows_every_experiment():
    assert NAMES == tuple(experiments())


def test_every_variant_is_a_valid_config_at_the_books_settings():
    expected_lengths = {"optimizers": 2000, "weight-init": 2000}
    for name, experiment in experiments().items():
        for variant in experiment.variants:
            config = experiment.config(variant, seed=3, length=None)
            assert config.seed == 3
            if name in expected_lengths:
                assert config.iters == expected_lengths[name] and config.batch_size == 128
                assert config.hidden_sizes == (100, 100, 100, 100) and config.activation == "relu"
    assert len(experiments()["batch-norm"].variants) == 32
    np.testing.assert_allclose(BATCH_NORM_SCALES[[0, -1]], [1.0, 1e-4])
    assert experiments()["dropout"].config("dropout-0.2", 0, None).dropout == 0.2
    assert experiments()["weight-decay"].config("decay-0.1", 0, None).weight_decay == 0.1
    assert experiments()["weight-decay"].config("decay-0.1", 0, {"iters": 7}).iters == 7


def test_optimizers_take_the_books_learning_rates_and_unknown_ones_are_refused():
    variants = optimizers_experiment(("sgd", "adam", "rmsprop")).variants
    assert variants == {"sgd": {"optimizer": "sgd", "lr": 0.01}, "adam": {"optimizer": "adam", "lr": 0.001},
                        "rmsprop": {"optimizer": "rmsprop", "lr": 0.01}}
    with pytest.raises(ConfigError, match="unknown optimizers \\['lbfgs'\\]"):
        optimizers_experiment(("sgd", "lbfgs"))


@pytest.mark.slow
def test_optimizers_end_far_below_sgd_and_the_variants_share_weights_and_batches(tmp_path, data_dir):
    out, summary = run_experiment(experiments()["optimizers"], out=tmp_path / "exp", length={"iters": 150},
                                  data_dir=data_dir)
    variants = summary["variants"]
    assert set(variants) == {"sgd", "momentum", "adagrad", "adam"}
    for name in ("momentum", "adagrad", "adam"):
        assert variants[name]["final_loss"] < 0.6 * variants["sgd"]["final_loss"], name
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert (out / "optimizers.png").stat().st_size > 10_000
    for name in variants:
        assert {"config.json", "history.json", "model.npz", "accuracy.png", "loss.png"} <= {
            path.name for path in (out / name).iterdir()}
    # The same seed: the same batches, so the first loss (before any update) is the same for all.
    first_losses = {json.loads((out / name / "history.json").read_text())["loss"][0] for name in variants}
    assert len(first_losses) == 1


@pytest.mark.slow
def test_weight_init_std_001_does_not_learn_while_xavier_and_he_do(tmp_path, data_dir):
    _, summary = run_experiment(experiments()["weight-init"], out=tmp_path / "exp", length={"iters": 400},
                                data_dir=data_dir)
    variants = summary["variants"]  # (final_loss: the mean over the last 100 iterations)
    assert variants["std-0.01"]["final_loss"] > 2.28  # stuck at log(10) = 2.30
    assert variants["xavier"]["final_loss"] < 2.1 and variants["he"]["final_loss"] < 0.8
    # The same draws, scaled: the initial weights of xavier and he differ by the factor sqrt(2).
    xavier, _ = load_model(tmp_path / "exp" / "xavier" / "model.npz")
    assert xavier.weight_init_std == "xavier"


@pytest.mark.slow
def test_batch_norm_learns_where_the_plain_net_does_not(tmp_path, data_dir):
    experiment = experiments()["batch-norm"]
    small = [name for name in experiment.variants if name.endswith("std-0.00215")]
    assert len(small) == 2
    _, summary = run_experiment(subset(experiment, *small), out=tmp_path / "exp", length={"epochs": 8},
                                data_dir=data_dir)
    variants = summary["variants"]
    assert variants["batch-norm-std-0.00215"]["train_acc"] > 0.5
    assert variants["plain-std-0.00215"]["train_acc"] < 0.3
    model, _ = load_model(tmp_path / "exp" / "batch-norm-std-0.00215" / "model.npz")
    assert model.use_batchnorm and all(np.any(value != 0) for value in model.running_statistics.values())


def test_every_experiment_moves_to_a_convolutional_net_keeping_what_it_compares():
    for net in ("simple-convnet", "deep-convnet"):
        for name, experiment in experiments().items():
            if net == "deep-convnet" and name in ("batch-norm", "dropout"):
                with pytest.raises(ConfigError, match=f"the {name} experiment cannot run on deep-convnet: .*; run it "
                                                      "with --net mlp or simple-convnet$"):
                    experiment.on_net(net)
                continue
            moved = experiment.on_net(net)
            assert moved.variants == experiment.variants and moved.shared["net"] == net
            for variant, settings in experiment.variants.items():
                config = moved.config(variant, 0, None)
                assert config.hidden_sizes is None and config.activation is None  # the net's own layers
                assert {key: getattr(config, key) for key in settings} == settings
                assert {key: getattr(config, key) for key in ("train_size", "batch_size", "iters", "epochs")} == {
                    key: experiment.shared.get(key, TrainConfig.__dataclass_fields__[key].default)
                    for key in ("train_size", "batch_size", "iters", "epochs")}
    assert experiments()["weight-init"].on_net("deep-convnet").config("std-0.01", 0, None).weight_init_std == 0.01
    assert experiments()["optimizers"].on_net("deep-convnet").config("sgd", 0, None).weight_init_std is None  # He
    assert experiments()["optimizers"].on_net("mlp") == experiments()["optimizers"]


def test_batch_norm_on_a_convolutional_net_trains_its_batch_norm_layers(tmp_path, data_dir):
    experiment = experiments()["batch-norm"].on_net("simple-convnet")
    # 4 filters rather than the net's 30: where the layers stand and what the batches move do not depend on them,
    # and the test set's evaluation through the convolution then costs a seventh
    experiment = dataclasses.replace(experiment, shared={**experiment.shared, "filter_num": 4})
    _, summary = run_experiment(subset(experiment, "batch-norm-std-1", "plain-std-1"), out=tmp_path / "exp",
                                length={"iters": 3}, data_dir=data_dir)
    assert [variant["iterations"] for variant in summary["variants"].values()] == [3, 3]
    normed, _ = load_model(tmp_path / "exp" / "batch-norm-std-1" / "model.npz")
    plain, _ = load_model(tmp_path / "exp" / "plain-std-1" / "model.npz")
    assert [layer.spec()["type"] for layer in normed.layers[:3]] == ["convolution", "batch_norm", "relu"]
    assert [layer.spec()["type"] for layer in plain.layers[:3]] == ["convolution", "relu", "pooling"]
    assert all(np.any(value != 0) for value in normed.running_statistics.values())  # moved by its batches


@pytest.mark.slow  # three narrow DeepConvNets, evaluated on the test set
def test_weight_init_on_a_deep_convnet_starts_its_variants_from_their_scales(tmp_path, data_dir):
    experiment = experiments()["weight-init"].on_net("deep-convnet")
    narrow = dataclasses.replace(experiment, shared={**experiment.shared, "filter_num": 4, "train_size": 1000})
    out, summary = run_experiment(narrow, out=tmp_path / "exp", length={"iters": 5}, data_dir=data_dir)
    first = {variant: json.loads((out / variant / "history.json").read_text())["loss"][0]
             for variant in summary["variants"]}
    assert abs(first["std-0.01"] - np.log(10)) < 1e-3  # six layers of 0.01 weights: scores near 0, every class 1/10
    fan_in = 8 * 3 * 3  # the fifth convolution's: 8 channels of 3x3
    for variant, scale in (("std-0.01", 0.01), ("xavier", np.sqrt(1 / fan_in)), ("he", np.sqrt(2 / fan_in))):
        network, _ = load_model(out / variant / "model.npz")
        assert network.params["W1"].shape == (4, 1, 3, 3) and len(network.params) == 16  # six convolutions, 2 affine
        # its 1152 weights as drawn, moved little by 5 updates of SGD at 0.01
        assert abs(np.std(network.params["W5"]) / scale - 1) < 0.1, variant


def test_a_folder_holding_an_experiment_is_refused_unless_overwritten(tmp_path, data_dir):
    experiment = subset(experiments()["dropout"], "dropout-0.2")
    run_experiment(experiment, out=tmp_path / "exp", length={"iters": 3}, data_dir=data_dir)
    with pytest.raises(ConfigError, match="already holds an experiment"):
        run_experiment(experiment, out=tmp_path / "exp", length={"iters": 3}, data_dir=data_dir)
    _, summary = run_experiment(experiment, out=tmp_path / "exp", length={"iters": 4}, data_dir=data_dir,
                                overwrite=True)
    assert summary["variants"]["dropout-0.2"]["iterations"] == 4


def test_an_interrupted_experiment_resumed_equals_the_experiment_made_in_one_go(tmp_path, data_dir):
    experiment = subset(optimizers_experiment(("sgd", "adam", "momentum")), "sgd", "adam", "momentum")
    length = {"iters": 60}
    _, whole = run_experiment(experiment, out=tmp_path / "whole", length=length, data_dir=data_dir, workers=1,
                              seed=4)

    def ctrl_c_in_adam(variant, done, total):
        if variant == "adam" and done >= 30:
            raise KeyboardInterrupt

    _, stopped = run_experiment(experiment, out=tmp_path / "exp", length=length, data_dir=data_dir, workers=1,
                                seed=4, progress=ctrl_c_in_adam)
    assert stopped["stopped"] == "interrupted; not run: momentum"
    assert stopped["variants"]["adam"]["stopped"].startswith("interrupted")
    sgd_history = (tmp_path / "exp" / "sgd" / "history.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds an experiment .* --overwrite"):
        run_experiment(experiment, out=tmp_path / "exp", length=length, data_dir=data_dir)

    _, resumed = resume_experiment(tmp_path / "exp", workers=1)
    assert (tmp_path / "exp" / "sgd" / "history.json").read_bytes() == sgd_history  # finished: kept as it was
    assert "stopped" not in resumed
    for variant in ("sgd", "adam", "momentum"):
        assert resumed["variants"][variant] == whole["variants"][variant], variant
        a, b = (json.loads((folder / variant / "history.json").read_text()) for folder in (tmp_path / "exp",
                                                                                           tmp_path / "whole"))
        assert a["loss"] == b["loss"] and a["test_acc"] == b["test_acc"], variant


def test_an_experiment_killed_before_its_summary_is_resumed_and_a_damaged_one_refused(tmp_path, data_dir):
    experiment = subset(experiments()["dropout"], "no-dropout", "dropout-0.2")
    _, whole = run_experiment(experiment, out=tmp_path / "exp", length={"iters": 5}, data_dir=data_dir, workers=1)
    (tmp_path / "exp" / "summary.json").unlink()  # as a kill during the second variant leaves it:
    for name in ("history.json", "model.npz"):
        (tmp_path / "exp" / "dropout-0.2" / name).unlink()
    with pytest.raises(ConfigError, match="holds an unfinished experiment .* --resume"):
        run_experiment(experiment, out=tmp_path / "exp", length={"iters": 5}, data_dir=data_dir)
    _, resumed = resume_experiment(tmp_path / "exp", workers=2)
    assert resumed["variants"] == whole["variants"]
    (tmp_path / "exp" / "experiment.json").write_text('{"name": "dropout"}')
    with pytest.raises(SgdlabError, match="experiment.json is damaged"):
        resume_experiment(tmp_path / "exp")
    with pytest.raises(ConfigError, match="holds no experiment to resume"):
        resume_experiment(tmp_path / "nothing")


@pytest.mark.slow
def test_dropout_narrows_the_gap_between_train_and_test_accuracy(tmp_path, data_dir):
    _, summary = run_experiment(experiments()["dropout"], out=tmp_path / "exp", length={"epochs": 30},
                                data_dir=data_dir)
    variants = summary["variants"]
    assert variants["no-dropout"]["gap"] > 0.1  # 300 images: the plain net overfits already
    assert variants["dropout-0.2"]["gap"] < variants["no-dropout"]["gap"] - 0.05


def test_a_variant_that_ended_before_its_only_evaluation_is_summarised_without_accuracies():
    from sgdlab.runs.experiments import final_figures
    from sgdlab.training.history import History

    figures = final_figures(History(iters_per_epoch=5, loss=[2.3, 2.5, 9.0], stopped="loss became nan at iteration 4"))
    assert figures == {"iterations": 3, "final_loss": pytest.approx(13.8 / 3), "train_acc": None, "test_acc": None,
                       "gap": None, "best_test_acc": None}


def test_a_running_experiment_is_neither_replaced_nor_resumed_by_another(tmp_path, data_dir):
    experiment = subset(experiments()["dropout"], "no-dropout")
    out = tmp_path / "exp"
    refusals = []

    def another_experiment_meanwhile(variant, done, total):
        if done == 2 and not refusals:  # while this one trains and holds its folder
            stored = (out / "experiment.json").read_bytes()
            for attempt in (lambda: run_experiment(experiment, out=out, length={"iters": 9}, data_dir=data_dir,
                                                   overwrite=True, workers=1),
                            lambda: resume_experiment(out, workers=1)):
                with pytest.raises(ConfigError, match="being used by an experiment still running") as refused:
                    attempt()
                refusals.append(str(refused.value))
            assert (out / "experiment.json").read_bytes() == stored  # refused before anything was replaced

    _, summary = run_experiment(experiment, out=out, length={"iters": 5}, data_dir=data_dir, workers=1,
                                progress=another_experiment_meanwhile)
    assert len(refusals) == 2 and summary["variants"]["no-dropout"]["iterations"] == 5
    assert not (out / ".lock").exists()
    _, summary = run_experiment(experiment, out=out, length={"iters": 4}, data_dir=data_dir, overwrite=True, workers=1)
    assert summary["variants"]["no-dropout"]["iterations"] == 4  # once it has ended, the folder is free again


def test_an_experiment_this_machine_has_no_room_for_is_refused_before_it_starts(tmp_path, monkeypatch):
    from sgdlab.engine.threads import usable_cores

    experiment = experiments()["weight-init"]
    with pytest.raises(ConfigError, match=f"--workers {usable_cores() + 1} is more than the {usable_cores()} cores"):
        run_experiment(experiment, out=tmp_path / "exp", workers=usable_cores() + 1)
    monkeypatch.setattr("sgdlab.engine.threads.available_memory", lambda: 500 << 20)
    with pytest.raises(ConfigError, match="a 784-100-100-100-100-10 net in float32, 2 trained side by side, would "
                                          "need about 0.6 GB of memory, more than the 0.5 GB available"):
        run_experiment(experiment, out=tmp_path / "exp", workers=2)
    assert not (tmp_path / "exp").exists()


def stored_experiment(folder, edit=lambda values: None):
    """An experiment.json of the dropout experiment in `folder`, as `run_experiment` writes it, edited by `edit`."""
    values = json.loads(json.dumps({**dataclasses.asdict(experiments()["dropout"]), "seed": 0, "length": {"iters": 3},
                                    "data_dir": None}))
    edit(values)
    folder.mkdir(exist_ok=True)
    (folder / "experiment.json").write_text(json.dumps(values))


@pytest.mark.parametrize("edit, problem", [
    (lambda values: values["variants"].update({"../x": {}}), "a variant's name '../x' is not a folder name"),
    (lambda values: values["variants"].update({"ABSOLUTE": {}}), "a variant's name '/.*' is not a folder name"),
    (lambda values: values["variants"].update({"a\0b": {}}), r"a variant's name 'a\\x00b' is not a folder name"),
    (lambda values: values["variants"].update({"": {}}), "a variant's name '' is not a folder name"),
    (lambda values: values["variants"].update({"x": 3}), "variant 'x''s settings are not an object"),
    (lambda values: values["variants"].update({"x": {"lr": "fast"}}), "lr must be"),
    (lambda values: values.update(name="../../f"), "unknown experiment '../../f'"),
    (lambda values: values.update(figure="save_png"), "unknown figure 'save_png'"),
    (lambda values: values.update(variants={}), "an experiment has at least one variant"),
    (lambda values: values.update(variants=["no-dropout"]), "an experiment has at least one variant"),
    (lambda values: values.update(shared=[]), "shared settings an object"),
    (lambda values: values.update(seed=-1), "seed must be a non-negative integer"),
    (lambda values: values.update(length={"lr": 3}), "an experiment's length is one of iters, epochs"),
    (lambda values: values.update(length={"iters": 0}), "iters must be"),
    (lambda values: values.update(data_dir=5), "data_dir 5 is not a folder's name"),
    (lambda values: values.pop("seed"), "'seed'"),
])
def test_an_experiment_json_that_is_no_experiment_of_sgdlabs_is_refused_before_anything_is_made(tmp_path, edit,
                                                                                              problem):
    stored_experiment(tmp_path / "exp", edit)
    text = (tmp_path / "exp" / "experiment.json").read_text()  # an absolute path, where this test may write
    (tmp_path / "exp" / "experiment.json").write_text(text.replace("ABSOLUTE", str(tmp_path / "elsewhere")))
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SgdlabError, match=f"experiment.json is damaged \\(.*{problem}.*\\): it cannot be resumed"):
        resume_experiment(tmp_path / "exp")
    assert sorted(tmp_path.rglob("*")) == before  # no folder, no figure, inside or outside


def test_a_variant_folder_of_other_settings_is_refused_on_resume_as_a_sweeps_trial_is(tmp_path):
    stored_experiment(tmp_path / "exp")
    foreign = experiments()["dropout"].config("no-dropout", 0, {"iters": 3}).resolved().to_dict()
    (tmp_path / "exp" / "dropout-0.2").mkdir()
    (tmp_path / "exp" / "dropout-0.2" / "config.json").write_text(json.dumps(foreign))  # the other variant's
    with pytest.raises(SgdlabError, match="dropout-0.2 holds a run with other settings than this experiment gives "
                                          "that variant: move the folder away"):
        resume_experiment(tmp_path / "exp")
    assert not (tmp_path / "exp" / "no-dropout").exists()  # refused before any variant trained


def test_the_known_experiments_are_the_ones_their_files_may_name():
    from sgdlab.plots.experiment_charts import FIGURES
    from sgdlab.runs.experiments import NAMES as KNOWN

    assert tuple(experiments()) == KNOWN
    assert {experiment.figure for experiment in experiments().values()} <= set(FIGURES)
