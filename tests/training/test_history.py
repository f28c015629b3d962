import csv
import json

import pytest

from sgdlab.errors import SgdlabError
from sgdlab.training.history import History


def sample_history():
    history = History(iters_per_epoch=2)
    history.record_evaluation(0, 0.1, 0.12, 0.0)
    history.loss += [2.3, 2.1]
    history.record_evaluation(2, 0.5, 0.48, 1.5)
    history.loss += [1.9]
    history.record_evaluation(3, 0.6, 0.55, 2.0)
    return history


def test_evaluation_records_and_mean_loss():
    history = sample_history()
    assert history.epoch == [0.0, 1.0, 1.5]
    assert history.mean_loss_since_last_evaluation() == pytest.approx(1.9)
    assert history.evaluation_rows()[1] == {"iteration": 2, "epoch": 1.0, "train_acc": 0.5, "test_acc": 0.48,
                                            "seconds": 1.5}


def test_json_and_csv_files(tmp_path):
    history = sample_history()
    history.save(tmp_path / "history.json", tmp_path / "history.csv")
    saved = json.loads((tmp_path / "history.json").read_text())
    assert {"loss", "iteration", "epoch", "train_acc", "test_acc", "seconds", "iters_per_epoch"} <= set(saved)
    assert History.load(tmp_path / "history.json") == history
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert len(rows) == 3 and rows[2]["test_acc"] == "0.55"


def test_loading_bad_files(tmp_path):
    with pytest.raises(SgdlabError, match="not found"):
        History.load(tmp_path / "history.json")
    (tmp_path / "broken.json").write_text('{"loss": [1.0')
    with pytest.raises(SgdlabError, match="may be damaged"):
        History.load(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text('{"accuracy": 1}')
    with pytest.raises(SgdlabError, match="missing the keys"):
        History.load(tmp_path / "other.json")


@pytest.mark.parametrize("edit, message", [
    (lambda values: values["test_acc"].pop(), r"evaluation lists differ in length .*'test_acc': 2"),
    (lambda values: values.update(loss="2.3, 2.1"), r"'loss' is not a list of numbers"),
    (lambda values: values["train_acc"].__setitem__(1, "high"), r"'train_acc' is not a list of numbers"),
    (lambda values: values["iteration"].__setitem__(1, None), r"'iteration' is not a list of numbers"),
    (lambda values: values.update(lr_changes=[{"iteration": 2, "lr": 0.0}]), r"'lr_changes' is not a list"),
    (lambda values: values.update(lr_changes=[{"iteration": 3, "lr": 0.1}, {"iteration": 1, "lr": 0.2}]),
     r"'lr_changes' is not a list .* in the order of the run"),
    (lambda values: values.update(lr_changes=[{"iteration": 10**6, "lr": 0.1}]), r"'lr_changes' is not a list"),
    (lambda values: values.update(lr_changes=[[2, 0.1]]), r"'lr_changes' is not a list"),
    (lambda values: values.update(lr_changes={"iteration": 2, "lr": 0.1}), r"'lr_changes' is not a list"),
    (lambda values: values["loss"].__setitem__(0, -1e308), r"'loss' hold values no run records"),
    (lambda values: values["test_acc"].__setitem__(0, 1e308), r"'test_acc' hold values no run records"),
    (lambda values: values.update(stopped=5), r"'stopped' hold values no run records"),
    (lambda values: values.update(iters_per_epoch=0), r"'iters_per_epoch' hold values no run records"),
    (lambda values: values["iteration"].__setitem__(1, 2.5), r"'iteration' hold values no run records"),
])
def test_an_edited_history_is_refused_clearly(tmp_path, edit, message):
    values = sample_history().to_dict()
    edit(values)
    (tmp_path / "history.json").write_text(json.dumps(values))
    with pytest.raises(SgdlabError, match=message):
        History.load(tmp_path / "history.json")


def test_validation_accuracy_is_kept_and_written_when_there_is_one(tmp_path):
    history = History(iters_per_epoch=10, loss=[1.0] * 20)
    history.record_evaluation(0, 0.1, 0.1, 0.0, 0.12)
    history.record_evaluation(20, 0.8, 0.7, 1.0, 0.75)
    history.save(tmp_path / "h.json", tmp_path / "h.csv")
    assert History.load(tmp_path / "h.json").val_acc == [0.12, 0.75]
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "iteration,epoch,train_acc,test_acc,seconds,val_acc"
    values = json.loads((tmp_path / "h.json").read_text())
    values["val_acc"] = [0.12]
    with pytest.raises(SgdlabError, match="differ in length"):
        History.from_dict(values)
    del values["val_acc"]  # a history written before validation sets existed
    assert History.from_dict(values).val_acc == []


def test_the_sets_losses_are_kept_written_and_read_back_and_older_histories_still_load(tmp_path):
    history = History(iters_per_epoch=10, loss=[1.0] * 20)
    history.record_evaluation(0, 0.1, 0.1, 0.0, 0.12, losses={"train_loss": 2.3, "test_loss": 2.31, "val_loss": 2.29})
    history.record_evaluation(20, 0.8, None, 1.0, 0.75, losses={"train_loss": 0.6, "test_loss": None, "val_loss": 0.7})
    history.save(tmp_path / "h.json", tmp_path / "h.csv")
    loaded = History.load(tmp_path / "h.json")
    assert (loaded.train_loss, loaded.test_loss, loaded.val_loss) == ([2.3, 0.6], [2.31, None], [2.29, 0.7])
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert rows[1]["train_loss"] == "0.6" and rows[1]["test_loss"] == "" and rows[0]["val_loss"] == "2.29"
    older = sample_history().to_dict()
    for key in ("train_loss", "test_loss", "val_loss"):
        del older[key]  # a history written before sgdlab measured the sets' losses
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert History.load(tmp_path / "older.json").train_loss == []
    assert sample_history().evaluation_keys() == ("iteration", "epoch", "train_acc", "test_acc", "seconds")


def test_a_run_continued_from_a_history_without_losses_records_none_for_the_evaluations_before():
    history = sample_history()
    history.record_evaluation(4, 0.7, 0.6, 3.0, losses={"train_loss": 0.5, "test_loss": 0.6})
    assert history.train_loss == [None, None, None, 0.5] and history.test_loss == [None, None, None, 0.6]
    assert History.from_dict(history.to_dict()) == history


@pytest.mark.parametrize("key", ["train_loss", "test_loss", "val_loss"])
def test_a_negative_sets_loss_is_refused(key):
    history = History(iters_per_epoch=10, loss=[1.0])
    history.record_evaluation(0, 0.1, 0.1, 0.0, 0.1, losses={"train_loss": 1.0, "test_loss": 1.0, "val_loss": 1.0})
    values = history.to_dict()
    values[key] = [-0.5]
    with pytest.raises(SgdlabError, match=f"'{key}' hold values no run records"):
        History.from_dict(values)


def test_mean_loss_covers_only_the_iterations_up_to_the_last_evaluation():
    history = History(iters_per_epoch=2, loss=[4.0, 2.0, 1.0, 9.0])  # iteration 4 comes after the evaluation
    history.record_evaluation(0, 0.1, 0.1, 0.0)
    history.record_evaluation(3, 0.5, 0.5, 1.0)
    assert history.mean_loss_since_last_evaluation() == pytest.approx(7 / 3)


def test_a_finished_history_without_an_evaluation_is_refused_naming_its_file(tmp_path):
    values = History(iters_per_epoch=2, loss=[2.3, 2.1]).to_dict()
    (tmp_path / "history.json").write_text(json.dumps(values))
    with pytest.raises(SgdlabError, match="history.json: history is of a finished run but holds no evaluation"):
        History.load(tmp_path / "history.json")
    values["stopped"] = "loss became nan at iteration 3"  # diverged before its only evaluation: a run records that
    (tmp_path / "history.json").write_text(json.dumps(values))
    assert History.load(tmp_path / "history.json").iteration == []


SPREAD = [-0.3, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.3]


def test_the_weights_spread_is_kept_written_and_read_back_out_of_the_csv_and_older_histories_still_load(tmp_path):
    history = History(iters_per_epoch=10, loss=[1.0] * 20)
    history.record_evaluation(0, 0.1, 0.1, 0.0, weight_percentiles={"W1": SPREAD, "W2": [2 * v for v in SPREAD]})
    history.record_evaluation(20, 0.8, 0.7, 1.0, weight_percentiles={"W1": [3 * v for v in SPREAD], "W2": None})
    history.save(tmp_path / "h.json", tmp_path / "h.csv")
    loaded = History.load(tmp_path / "h.json")
    assert loaded == history
    assert loaded.weight_percentiles == [{"W1": SPREAD, "W2": [2 * v for v in SPREAD]},
                                         {"W1": [3 * v for v in SPREAD], "W2": None}]
    assert "weight_percentiles" not in (tmp_path / "h.csv").read_text()
    older = sample_history().to_dict()
    del older["weight_percentiles"]  # a history written before sgdlab recorded the weights' spread
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert History.load(tmp_path / "older.json").weight_percentiles == []


def test_a_run_continued_from_a_history_without_the_weights_spread_records_none_for_the_evaluations_before():
    history = sample_history()
    history.record_evaluation(4, 0.7, 0.6, 3.0, weight_percentiles={"W1": SPREAD})
    assert history.weight_percentiles == [None, None, None, {"W1": SPREAD}]
    assert History.from_dict(history.to_dict()) == history
    history.truncate(3)
    assert history.weight_percentiles == [None, None, None]


@pytest.mark.parametrize("spread", [[{"W1": SPREAD[:-1]}], [{"W1": SPREAD[::-1]}], [{"W1": [*SPREAD[:-1], "x"]}],
                                    [{"W1": [*SPREAD[:-1], float("nan")]}], [[SPREAD]], [{"W1": SPREAD}] * 2, "W1", 5,
                                    [{"<b>W1</b>": SPREAD}], [{"b1": SPREAD}], [{"W0": SPREAD}],
                                    [{f"W{k}": SPREAD for k in range(1, 102)}]])  # a chart each: at most 100
def test_a_weights_spread_no_run_records_is_refused(spread):
    history = History(iters_per_epoch=10, loss=[1.0])
    history.record_evaluation(0, 0.1, 0.1, 0.0, weight_percentiles={"W1": SPREAD})
    values = {**history.to_dict(), "weight_percentiles": spread}
    with pytest.raises(SgdlabError, match="'weight_percentiles'"):
        History.from_dict(values)


def test_weights_spread_naming_other_arrays_at_another_evaluation_is_refused():
    history = History(iters_per_epoch=10, loss=[1.0] * 20)
    history.record_evaluation(0, 0.1, 0.1, 0.0, weight_percentiles={"W1": SPREAD})
    history.record_evaluation(10, 0.2, 0.2, 1.0, weight_percentiles={"W1": None})  # not finite: still W1's
    assert History.from_dict(history.to_dict()).weight_percentiles == [{"W1": SPREAD}, {"W1": None}]
    values = {**history.to_dict(), "weight_percentiles": [{"W1": SPREAD}, {"W2": SPREAD}]}
    with pytest.raises(SgdlabError, match="'weight_percentiles'"):
        History.from_dict(values)
