"""The search specifications of a sweep: how they are read, refused, drawn from and narrowed."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgdlab.errors import ConfigError
from sgdlab.runs.search_space import Search, check_searches, draw_trial, narrow, parse_search


def test_each_kind_is_read_with_its_range_or_choices():
    assert parse_search("lr=log:1e-6:1e-2") == Search("lr", "log", 1e-6, 1e-2)
    assert parse_search("dropout=uniform:0:0.5") == Search("dropout", "uniform", 0.0, 0.5)
    assert parse_search("hidden_size=int:20:200") == Search("hidden_size", "int", 20, 200)
    assert parse_search("hidden-size=int:20:200").name == "hidden_size"  # the option's spelling, too
    assert parse_search("optimizer=choice:sgd,adam") == Search("optimizer", "choice", choices=("sgd", "adam"))
    assert parse_search("batch_norm=choice:true,false").choices == (True, False)
    assert parse_search("weight_init_std=choice:he,0.01").choices == ("he", 0.01)
    for search in (parse_search("lr=log:1e-6:1e-2"), parse_search("optimizer=choice:sgd,adam")):
        assert parse_search(search.spec()) == search


@pytest.mark.parametrize("text, message", [
    ("lr", "expected NAME=KIND:LOW:HIGH"),
    ("lr=1e-6:1e-2", "unknown kind '1e-6'"),
    ("lr=gauss:0:1", "unknown kind 'gauss'"),
    ("foo=log:1:2", "'foo' is not a setting a sweep can search"),
    ("seed=int:0:9", "'seed' is not a setting a sweep can search"),
    ("lr=log:-6:-2", "a log range needs LOW above 0"),
    ("lr=log:1e-2:1e-6", "LOW must not be above HIGH"),
    ("lr=log:1e-6", "log needs LOW:HIGH"),
    ("lr=uniform:a:b", "LOW and HIGH must be numbers"),
    ("lr=uniform:0:nan", "both must be finite"),
    ("hidden_size=int:1.5:3", "LOW and HIGH must be integers"),
    ("hidden_size=log:10:100", "hidden_size takes integers: use hidden_size=int:LOW:HIGH"),
    ("dropout=uniform:0:1.5", "dropout must be a number in \\[0, 1\\)"),
    ("hidden_size=int:0:10", "hidden_size must be a positive integer"),
    ("optimizer=choice:sgd,lbfgs", "optimizer must be one of sgd, momentum"),
    ("batch_norm=choice:yes", "batch_norm must be true or false"),
])
def test_a_bad_specification_is_refused_saying_what_would_do(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_search(text)


def test_searches_that_contradict_each_other_or_the_fixed_settings_are_refused_at_once():
    lr = parse_search("lr=log:1e-3:1e-1")
    with pytest.raises(ConfigError, match="lr more than once"):
        check_searches([lr, parse_search("lr=log:1e-2:1")], {})
    with pytest.raises(ConfigError, match="lr is both searched and fixed"):
        check_searches([lr], {"lr": 0.1})
    with pytest.raises(ConfigError, match="momentum is a setting of the momentum and nesterov optimizers"):
        check_searches([parse_search("momentum=uniform:0:0.9")], {"optimizer": "sgd"})
    with pytest.raises(ConfigError, match="at least one --search"):
        check_searches([], {})
    check_searches([parse_search("momentum=uniform:0:0.9")], {"optimizer": "momentum"})


def test_every_choice_is_checked_with_every_range_end_and_with_the_data():
    momentum = parse_search("momentum=uniform:0.5:0.9")
    # the first and last choices allow a momentum; the middle one does not
    with pytest.raises(ConfigError, match="momentum is a setting of the momentum and nesterov optimizers, not of sgd"):
        check_searches([parse_search("optimizer=choice:momentum,sgd,nesterov"), momentum], {})
    check_searches([parse_search("optimizer=choice:momentum,nesterov"), momentum], {})
    batch = parse_search("batch_size=int:100:400")
    check_searches([batch], {"train_size": 300, "validation": 0.2})  # the data's limits only when given
    with pytest.raises(ConfigError, match=r"batch size 400 is larger than the training set \(240 samples, 60 more"):
        check_searches([batch], {"train_size": 300, "validation": 0.2}, train_images=60000)
    with pytest.raises(ConfigError, match="train size 70000 is more than the 60000 training images"):
        check_searches([parse_search("train_size=choice:500,70000")], {"validation": 0.2}, train_images=60000)
    many = [parse_search(f"{name}=uniform:0.1:0.5") for name in ("dropout", "validation", "weight_decay")]
    many += [parse_search(f"{name}=int:{low}:{low + 1}") for name, low in (("hidden_size", 10), ("batch_size", 10))]
    many += [parse_search("optimizer=choice:sgd,adam,adagrad,rmsprop"), parse_search("activation=choice:relu,tanh")]
    check_searches(many, {})  # 256 combinations
    many.append(parse_search("weight_init_std=choice:" + ",".join(str(0.01 * k) for k in range(1, 101))))
    with pytest.raises(ConfigError, match="25600 combinations of range ends and choices, more than the 16384"):
        check_searches(many, {})


def test_a_trial_depends_on_the_seed_and_its_number_only():
    searches = [parse_search("lr=log:1e-6:1e-2"), parse_search("hidden_size=int:20:200"),
                parse_search("optimizer=choice:sgd,adam")]
    first = draw_trial(searches, 0, 7)
    np.random.seed(1)  # neither NumPy's global generator nor the draws before it change a trial
    draw_trial(searches, 0, 6)
    assert draw_trial(searches, 0, 7) == first
    assert draw_trial(searches, 0, 7) != draw_trial(searches, 0, 8)
    assert draw_trial(searches, 0, 7) != draw_trial(searches, 1, 7)
    draws = [draw_trial(searches, 3, trial) for trial in range(400)]
    lrs = np.array([settings["lr"] for settings, _ in draws])
    assert lrs.min() >= 1e-6 and lrs.max() <= 1e-2
    # log-uniform as the book's 10 ** np.random.uniform(-6, -2): a quarter of the draws per decade
    decades = np.histogram(np.log10(lrs), bins=[-6, -5, -4, -3, -2])[0]
    assert decades.min() > 60, decades
    assert {settings["optimizer"] for settings, _ in draws} == {"sgd", "adam"}
    assert {settings["hidden_size"] for settings, _ in draws} >= {20, 200}
    assert len({seed for _, seed in draws}) == len(draws)  # each trial trains from its own seed


@given(st.floats(0, 1, exclude_max=True))
def test_every_value_lies_in_its_range(u):
    for search in (Search("lr", "log", 1e-6, 1e-2), Search("dropout", "uniform", 0.0, 0.5),
                   Search("hidden_size", "int", 20, 200)):
        value = search.value(u)
        assert search.low <= value <= search.high * (1 + 1e-12)
    assert 20 + math.floor(u * 181) == Search("hidden_size", "int", 20, 200).value(u)


def test_the_next_round_searches_the_span_of_the_best_fifth():
    searches = [Search("lr", "log", 1e-6, 1e-2), Search("optimizer", "choice", choices=("sgd", "momentum", "adam"))]
    ranked = [{"lr": 1e-3, "optimizer": "adam"}, {"lr": 3e-3, "optimizer": "sgd"}, {"lr": 2e-3, "optimizer": "sgd"},
              *({"lr": 1e-6, "optimizer": "momentum"} for _ in range(7))]
    lr, optimizer = narrow(searches, ranked)  # 10 trials: the best 2
    assert (lr.low, lr.high, lr.kind) == (1e-3, 3e-3, "log")
    assert optimizer.choices == ("sgd", "adam")
    assert narrow(searches, ranked[:3])[0].high == 3e-3  # never fewer than 2
    assert narrow(searches, ranked[:1]) == narrow(searches, []) == searches  # with one trial there is no span


def test_a_stored_search_is_checked_as_a_search_given_on_the_command_line():
    for text in ("lr=log:1e-6:1e-2", "hidden_size=int:20:200", "optimizer=choice:sgd,adam",
                 "weight_init_std=choice:he,0.01", "batch_norm=choice:true,false"):
        search = parse_search(text)
        assert Search.from_dict(search.to_dict()) == search
    lr = parse_search("lr=log:1e-6:1e-2").to_dict()
    for damaged, message in (({**lr, "kind": "bogus"}, "unknown kind 'bogus'"),
                             ({**lr, "low": 1.0}, "LOW must not be above HIGH"),
                             ({**lr, "low": "1e-6"}, "LOW and HIGH must be numbers"),
                             ({"name": "optimizer", "kind": "choice", "choices": ["sgd"], "low": 1},
                              "not a search as --search 'optimizer=choice:sgd' gives it"),
                             ({**lr, "name": "seed"}, "'seed' is not a setting a sweep can search"),
                             ({**lr, "name": "hidden_sizes"}, "is not a setting a sweep can search"),
                             ({**lr, "name": "momentum", "kind": "int"}, "not a search"),
                             ({**lr, "extra": 1}, "unexpected keyword argument"),
                             ({"name": "optimizer", "kind": "choice", "choices": ["sgd", "lbfgs"]},
                              "optimizer must be one of")):
        with pytest.raises(ConfigError, match=message):
            Search.from_dict(damaged)


def test_a_sweep_searches_schedules_and_early_stopping_patience_as_settings():
    schedules = parse_search("lr_schedule=choice:constant,step:2:.5,step:2:0.7,cosine")
    assert schedules.choices == ("constant", "step:2:0.5", "step:2:0.7", "cosine")  # as config.json keeps them
    assert parse_search("early_stop=int:2:5") == Search("early_stop", "int", 2, 5)
    with pytest.raises(ConfigError, match="step:EPOCHS:FACTOR needs a positive whole number of epochs"):
        parse_search("lr_schedule=choice:step:2:1.5")
