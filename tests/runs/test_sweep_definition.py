"""What a sweep is, before any trial trains: its checks, and its sweep.json read back as hostile input."""

import json

import pytest

from sgdlab.errors import ConfigError, SgdlabError
from sgdlab.runs.search_space import parse_search
from sgdlab.runs.sweep import MAX_TRIALS, Sweep, load_sweep, new_sweep

LR = parse_search("lr=log:1e-3:1")


def test_a_sweep_holds_some_images_out_and_leaves_the_seeds_to_its_own():
    Sweep((LR, parse_search("validation=choice:0.1,0.2")), {}, trials=2)  # held out by every choice
    with pytest.raises(ConfigError, match="a sweep chooses by validation accuracy"):
        Sweep((LR, parse_search("validation=choice:0,0.2")), {}, trials=2)
    with pytest.raises(ConfigError, match="the trials' seeds derive from the sweep's seed: give --seed"):
        Sweep((LR,), {"validation": 0.2, "seed": 3}, trials=2)
    with pytest.raises(ConfigError, match=f"more than the {MAX_TRIALS} trials a sweep may have"):
        Sweep((LR,), {"validation": 0.2}, trials=MAX_TRIALS, rounds=2)


def _stored(tmp_path):
    out = new_sweep(Sweep((LR, parse_search("optimizer=choice:sgd,adam")), {"validation": 0.2, "epochs": 1}, 3, 2,
                          seed=5), tmp_path / "sweep")
    return out, json.loads((out / "sweep.json").read_text())


def test_a_stored_sweep_reads_back_as_it_was(tmp_path):
    out, _ = _stored(tmp_path)
    sweep, data_dir = load_sweep(out)
    assert sweep == Sweep((LR, parse_search("optimizer=choice:sgd,adam")), {"validation": 0.2, "epochs": 1}, 3, 2,
                          seed=5)
    assert data_dir is None


@pytest.mark.parametrize("edit", [
    lambda s: s["searches"][0].update(kind="bogus"),
    lambda s: s["searches"][0].update(low=10.0),  # above its high
    lambda s: s["searches"][0].update(name="seed"),
    lambda s: s["searches"][0].update(name="hidden_sizes"),
    lambda s: s["searches"][1].update(choices=["sgd", "lbfgs"]),
    lambda s: s["searches"].append(s["searches"][0]),  # one setting searched twice
    lambda s: s.update(searches={"lr": 1}),
    lambda s: s["searches"].__setitem__(0, "lr=log:1e-3:1"),
    lambda s: s["settings"].update(seed=1),
    lambda s: s["settings"].update(lr=0.1),  # searched and fixed
    lambda s: s["settings"].update(hidden_size=-5),
    lambda s: s["settings"].update(learning_rate=0.1),
    lambda s: s.update(settings=[1, 2]),
    lambda s: s.update(trials=10**15),
    lambda s: s.update(trials="3"),
    lambda s: s.update(rounds=0),
    lambda s: s.update(seed=-1),
    lambda s: s.update(data_dir=["a"]),
    lambda s: s.pop("trials"),
])
def test_a_damaged_sweep_file_is_refused_in_one_line(tmp_path, edit):
    out, stored = _stored(tmp_path)
    edit(stored)
    (out / "sweep.json").write_text(json.dumps(stored))
    with pytest.raises(SgdlabError, match=r"sweep\.json is damaged \(.+\): the sweep cannot be resumed") as caught:
        load_sweep(out)
    assert "\n" not in str(caught.value)


def test_a_sweep_file_that_is_not_json_is_refused(tmp_path):
    out, _ = _stored(tmp_path)
    (out / "sweep.json").write_bytes(b"\x80not json")
    with pytest.raises(SgdlabError, match="sweep.json"):
        load_sweep(out)
