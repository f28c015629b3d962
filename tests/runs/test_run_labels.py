"""Runs named beside each other by how their settings differ."""

from sgdlab.runs.run_labels import difference_labels, short_value


def test_labels_name_only_the_settings_that_differ():
    settings = [{"lr": 0.1, "optimizer": "sgd", "seed": 0, "data_dir": "/a"},
                {"lr": 0.001, "optimizer": "adam", "seed": 0, "data_dir": "/b"}]
    assert difference_labels(["a", "b"], settings) == ["lr=0.1, optimizer=sgd", "lr=0.001, optimizer=adam"]


def test_runs_with_the_same_settings_are_labelled_by_their_folder():
    same = {"lr": 0.1, "data_dir": "/a"}
    assert difference_labels(["first", "second"], [same, {**same, "data_dir": "/b"}]) == ["first", "second"]


def test_a_setting_one_run_lacks_counts_as_a_difference():
    labels = difference_labels(["old", "new"], [{"lr": 0.1}, {"lr": 0.1, "optimizer": "adam"}])
    assert labels == ["optimizer=None", "optimizer=adam"]


def test_numbers_are_kept_short_unless_that_would_make_two_labels_alike():
    settings = [{"lr": 0.008176689730814, "weight_decay": 2.299486813215838e-05, "seed": 287107076},
                {"lr": 0.009332368238746, "weight_decay": 8.850085106219956e-05, "seed": 1743470445}]
    assert difference_labels(["a", "b"], settings) == ["lr=0.008177, seed=287107076, weight_decay=2.3e-05",
                                                       "lr=0.009332, seed=1743470445, weight_decay=8.85e-05"]
    close = [{"lr": 0.1000001}, {"lr": 0.1000002}]
    assert difference_labels(["a", "b"], close) == ["lr=0.1000001", "lr=0.1000002"]
    assert [short_value(v) for v in (0.1, 1e-06, 12345.0, 0.0, 3, "he", True, None)] == [
        "0.1", "1e-06", "1.23e+04", "0", "3", "he", "True", "None"]


def test_augmentations_ranges_are_compared_only_among_runs_that_augment():
    off = {"lr": 0.1, "augment": False, "augment_shift": None, "augment_rotate": None, "augment_scale": None}
    on = {**off, "augment": True, "augment_shift": 2.0, "augment_rotate": 10.0, "augment_scale": 0.1}
    assert difference_labels(["a", "b"], [off, on]) == ["augment=False", "augment=True"]
    wider = {**on, "augment_rotate": 20.0, "lr_schedule": "cosine"}
    assert difference_labels(["a", "b", "c"], [{**off, "lr_schedule": "constant"}, {**on, "lr_schedule": "constant"},
                                               wider]) == [
        "augment=False, lr_schedule=constant", "augment=True, augment_rotate=10, lr_schedule=constant",
        "augment=True, augment_rotate=20, lr_schedule=cosine"]


def test_a_setting_the_runs_optimizer_does_not_take_is_no_difference():
    settings = [{"lr": 0.01, "optimizer": "momentum", "momentum": 0.9}, {"lr": 0.01, "optimizer": "adagrad",
                                                                         "momentum": None}]
    assert difference_labels(["a", "b"], settings) == ["optimizer=momentum", "optimizer=adagrad"]
    alike = [{"lr": 0.1, "optimizer": "sgd", "momentum": None}, {"lr": 0.01, "optimizer": "adagrad", "momentum": None}]
    assert difference_labels(["a", "b"], alike) == ["lr=0.1, optimizer=sgd", "lr=0.01, optimizer=adagrad"]
