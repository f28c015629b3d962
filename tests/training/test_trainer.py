import threading

import numpy as np
import pytest

from sgdlab.engine.backprop import BackpropStep
from sgdlab.data.batches import BatchSampler, BatchStream
from sgdlab.training.config import TrainConfig
from sgdlab.errors import ConfigError, TrainingDiverged
from sgdlab.nn.network import TwoLayerNet
from sgdlab.nn.optimizers import SGD
from sgdlab.training.trainer import Trainer, seeded_generators


def blobs(n, seed=0, n_in=6, n_classes=3):
    """Three well separated Gaussian clusters: a task any working trainer learns."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, n_classes, n)
    centres = np.eye(n_classes, n_in) * 3.0
    return centres[t] + rng.standard_normal((n, n_in)) * 0.5, t


@pytest.fixture
def data():
    (x_train, t_train), (x_test, t_test) = blobs(60, seed=0), blobs(30, seed=1)
    return x_train, t_train, x_test, t_test


def worker_threads():
    """The trainer's threads still alive (gathering batches, evaluating): none once `fit` has returned."""
    return [t.name for t in threading.enumerate() if t.name.startswith(("sgdlab-batches", "sgdlab-eval"))]


def make_trainer(background=None, **overrides):
    config = TrainConfig(**{"iters": 20, "batch_size": 7, "hidden_size": 5, "lr": 0.5, **overrides})
    return Trainer.from_config(config, input_size=6, output_size=3, background=background)


def test_evaluates_before_training_every_epoch_and_after_the_last_iteration(data):
    # 60 samples, batch 7: ceil(60 / 7) = 9 iterations per epoch
    history = make_trainer(iters=20).fit(*data)
    assert history.iters_per_epoch == 9
    assert history.iteration == [0, 9, 18, 20]
    assert history.epoch == pytest.approx([0, 1, 2, 20 / 9])
    assert len(history.loss) == 20
    assert len(history.train_acc) == len(history.test_acc) == len(history.seconds) == 4
    assert history.stopped is None


def test_epochs_and_train_size_set_the_runs_length_and_its_data(data):
    # The first 30 of 60 samples, batch 7: ceil(30 / 7) = 5 iterations per epoch, 3 epochs.
    trainer = make_trainer(iters=None, epochs=3, train_size=30)
    history = trainer.fit(*data)
    assert trainer.iterations == 15 and len(history.loss) == 15
    assert history.iteration == [0, 5, 10, 15] and history.epoch == [0, 1, 2, 3]
    x_train, t_train, _, _ = data
    first_half = make_trainer(iters=None, epochs=3).fit(x_train[:30], t_train[:30], *data[2:])
    assert history.loss == first_half.loss and history.train_acc == first_half.train_acc
    with pytest.raises(ConfigError, match="train size 61 is more than the 60 training images"):
        make_trainer(train_size=61).fit(*data)


def test_a_validation_set_is_held_out_of_training_and_measured_at_each_evaluation(data, monkeypatch):
    trained_on = []
    real_update = Trainer._update
    monkeypatch.setattr(Trainer, "_update", lambda self, g, x, labels: trained_on.append(x.copy()) or
                        real_update(self, g, x, labels))
    trainer = make_trainer(iters=None, epochs=2, validation=0.25)  # 15 of 60 held out: 45 trained on
    history = trainer.fit(*data)
    assert history.iters_per_epoch == 7 and history.iteration == [0, 7, 14]  # ceil(45 / 7)
    assert len(history.val_acc) == len(history.test_acc) == 3
    x_train = data[0]
    _, validation_rows = trainer.split(x_train, data[1], 15, seeded_generators(0)[2])[2]
    seen = {row.tobytes() for x in trained_on for row in x.astype(x_train.dtype)}
    assert not seen & {row.tobytes() for row in validation_rows}  # no batch ever drew a validation image
    plain = make_trainer(iters=None, epochs=2).fit(*data)
    assert plain.val_acc == [] and plain.iters_per_epoch == 9


def test_each_evaluation_records_the_loss_of_the_whole_sets_the_last_one_that_of_the_final_weights(data):
    trainer = make_trainer(iters=None, epochs=2, validation=0.25, test_eval="last", lr=0.1)
    history = trainer.fit(*data)
    assert len(history.train_loss) == len(history.val_loss) == len(history.test_loss) == len(history.iteration) == 3
    assert history.test_loss[:2] == [None, None]  # measured with the test accuracy: at the last evaluation only
    x_test, t_test = data[2:]
    assert history.test_loss[-1] == pytest.approx(trainer.network.loss(x_test, t_test), rel=1e-5)


def test_a_run_ending_on_an_epoch_boundary_is_evaluated_once_there(data):
    assert make_trainer(iters=18).fit(*data).iteration == [0, 9, 18]


def test_book_schedule_has_eighteen_evaluations(monkeypatch):
    x = np.zeros((60000, 2))
    t = np.zeros(60000, dtype=int)
    trainer = Trainer(TwoLayerNet(2, 2, 2, rng=0), SGD(0.1), TrainConfig())
    zeros = {k: np.zeros_like(v) for k, v in trainer.network.params.items()}
    monkeypatch.setattr("sgdlab.training.trainer.BackpropStep.__call__", lambda step, xb, tb: (0.5, zeros))
    history = trainer.fit(x[:60000], t, x[:10], t[:10])
    assert history.iters_per_epoch == 600
    assert history.iteration == [0, *range(600, 10000, 600), 10000]
    assert len(history.iteration) == 18


def test_training_learns_the_task(data):
    history = make_trainer(iters=200).fit(*data)
    assert history.test_acc[0] < 0.7
    assert history.test_acc[-1] > 0.95
    assert np.mean(history.loss[-20:]) < np.mean(history.loss[:20]) / 3


def test_same_seed_same_run_bit_for_bit(data):
    first, second = make_trainer(seed=3), make_trainer(seed=3)
    h1, h2 = first.fit(*data), second.fit(*data)
    assert h1.loss == h2.loss and h1.train_acc == h2.train_acc
    for key in first.network.params:
        np.testing.assert_array_equal(first.network.params[key], second.network.params[key])
    other = make_trainer(seed=4)
    assert other.fit(*data).loss != h1.loss


def test_sampling_does_not_change_the_initial_weights():
    random_init = make_trainer(sampling="random").network.params["W1"]
    epoch_init = make_trainer(sampling="epoch").network.params["W1"]
    np.testing.assert_array_equal(random_init, epoch_init)


def test_callbacks_see_every_iteration_and_evaluation(data):
    iterations, evaluations = [], []
    make_trainer(iters=20).fit(*data, on_iteration=lambda i, loss: iterations.append((i, loss)),
                              on_evaluation=lambda h: evaluations.append(h.iteration[-1]))
    assert [i for i, _ in iterations] == list(range(1, 21))
    assert evaluations == [0, 9, 18, 20]


def test_loss_recorded_is_the_batch_loss_before_the_update(data):
    x_train, t_train, _, _ = data
    trainer = make_trainer(iters=1, batch_size=60, sampling="epoch", dtype="float64")  # one batch: the whole set
    initial_loss = trainer.network.loss(x_train, t_train)
    history = trainer.fit(*data)
    assert history.loss[0] == pytest.approx(initial_loss, rel=1e-12)
    assert trainer.network.loss(x_train, t_train) < initial_loss


def test_nan_loss_stops_with_the_iteration_and_keeps_the_history(data, monkeypatch):
    trainer = make_trainer(iters=20, background=True)
    real = BackpropStep.__call__
    calls = []

    def sometimes_nan(step, x, t):
        calls.append(1)
        loss, grads = real(step, x, t)
        return (float("nan") if len(calls) == 3 else loss), grads

    monkeypatch.setattr(BackpropStep, "__call__", sometimes_nan)
    with pytest.raises(TrainingDiverged, match=r"iteration 3.*smaller learning rate than 0.5") as raised:
        trainer.fit(*data)
    assert len(raised.value.history.loss) == 2
    assert "iteration 3" in raised.value.history.stopped
    assert not worker_threads()


def test_a_huge_learning_rate_saturates_a_sigmoid_net_without_a_nan(data):
    history = make_trainer(lr=1e12, iters=30).fit(*data)  # sigmoid units pinned at 0 or 1: huge, finite losses
    assert len(history.loss) == 30 and history.stopped is None
    assert np.all(np.isfinite(history.loss)) and max(history.loss) > 1e6


def test_a_huge_learning_rate_makes_a_relu_net_diverge_and_keeps_the_finite_losses(data):
    with pytest.raises(TrainingDiverged, match="the loss became nan") as raised:
        make_trainer(lr=1e12, iters=30, activation="relu", dtype="float64").fit(*data)
    history = raised.value.history
    assert 0 < len(history.loss) < 30 and np.all(np.isfinite(history.loss))
    assert f"iteration {len(history.loss) + 1}" in history.stopped


def test_ctrl_c_stops_gracefully_with_a_final_evaluation(data, monkeypatch):
    trainer = make_trainer(iters=20, background=True)
    real = BackpropStep.__call__
    calls = []

    def interrupt_on_fifth(step, x, t):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(step, x, t)

    monkeypatch.setattr(BackpropStep, "__call__", interrupt_on_fifth)
    history = trainer.fit(*data)
    assert history.stopped == "interrupted after iteration 4"
    assert len(history.loss) == 4
    assert history.iteration == [0, 4]
    assert not worker_threads()


def test_batch_larger_than_the_training_set_is_refused(data):
    with pytest.raises(ConfigError, match=r"batch size 61 is larger than the training set \(60 samples\)"):
        make_trainer(batch_size=61).fit(*data)


def test_images_of_the_wrong_shape_are_refused(data):
    x_train, t_train, x_test, t_test = data
    with pytest.raises(ConfigError, match=r"shape \(60, 5\).*\(N, 6\)"):
        make_trainer().fit(x_train[:, :5], t_train, x_test, t_test)
    with pytest.raises(ConfigError, match="60 images but 59 targets"):
        make_trainer().fit(x_train, t_train[:59], x_test, t_test)


def test_a_convolutional_net_trains_on_images_as_on_their_rows():
    """load_mnist(flatten=False) gives (N, 1, 28, 28), as the book hands chapter 7's net its images: the same run
    as on the rows of pixels, bit for bit; images of another shape are refused naming both shapes it takes."""
    rng = np.random.default_rng(0)
    images = rng.random((40, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 40)
    config = TrainConfig(net="simple-convnet", filter_num=2, filter_size=3, hidden_size=5, iters=6, batch_size=10)
    runs = []
    for x in (images, images.reshape(40, -1)):
        trainer = Trainer.from_config(config, input_size=(1, 8, 8), output_size=3)
        history = trainer.fit(x, labels, x[:10], labels[:10])
        runs.append((history.loss, history.test_acc, trainer.network.params["W1"].copy()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    with pytest.raises(ConfigError, match=r"shape \(40, 1, 7, 9\).*\(N, 64\) or \(N, 1, 8, 8\)"):
        Trainer.from_config(config, input_size=(1, 8, 8), output_size=3).fit(
            rng.random((40, 1, 7, 9)).astype(np.float32), labels, images, labels)


def test_numerical_training_follows_backprop_training(data):
    backprop, numerical = make_trainer(iters=5, dtype="float64"), make_trainer(iters=5, grad="numerical")
    h_backprop, h_numerical = backprop.fit(*data), numerical.fit(*data)
    np.testing.assert_allclose(h_numerical.loss, h_backprop.loss, rtol=1e-9)
    for key in backprop.network.params:
        np.testing.assert_allclose(numerical.network.params[key], backprop.network.params[key], atol=1e-9)


def test_backprop_trains_in_float32_by_default_and_numerical_in_float64():
    assert make_trainer().network.dtype == np.float32
    assert make_trainer(dtype="float64").network.dtype == np.float64
    assert make_trainer(grad="numerical").network.dtype == np.float64


@pytest.mark.parametrize("sampling", ["random", "epoch"])
def test_background_gives_the_same_run(data, sampling, monkeypatch):
    monkeypatch.setattr(BatchStream, "GATHER_ROWS", 20)  # 2 batches of 7 per block: batches cross many blocks
    config = make_trainer(sampling=sampling).config
    inline = Trainer.from_config(config, 6, 3, background=False)
    background = Trainer.from_config(config, 6, 3, background=True)
    h_inline, h_background = inline.fit(*data), background.fit(*data)
    assert h_inline.loss == h_background.loss
    np.testing.assert_array_equal(inline.network.params["W1"], background.network.params["W1"])
    assert h_inline.iteration == h_background.iteration == [0, 9, 18, 20]
    assert h_inline.train_acc == h_background.train_acc and h_inline.test_acc == h_background.test_acc


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uint8_images_train_exactly_as_their_normalized_floats(dtype):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (60, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, 60)
    floats = np.divide(pixels, np.float32(255), dtype=np.float32)  # load_mnist(normalize=True)
    from_uint8, from_floats = make_trainer(dtype=dtype), make_trainer(dtype=dtype)
    h_uint8 = from_uint8.fit(pixels, labels, pixels[:30], labels[:30])
    h_floats = from_floats.fit(floats, labels, floats[:30], labels[:30])
    assert h_uint8.loss == h_floats.loss and h_uint8.test_acc == h_floats.test_acc
    np.testing.assert_array_equal(from_uint8.network.params["W1"], from_floats.network.params["W1"])


def test_one_hot_targets_train_exactly_as_labels(data):
    x_train, t_train, x_test, t_test = data
    one_hot = np.eye(3, dtype=np.float32)
    h_labels = make_trainer().fit(*data)
    h_one_hot = make_trainer().fit(x_train, one_hot[t_train], x_test, one_hot[t_test])
    assert h_labels.loss == h_one_hot.loss and h_labels.train_acc == h_one_hot.train_acc


def test_epoch_sampling_with_a_short_last_batch_records_its_loss(data):
    x_train, t_train, _, _ = data
    trainer = make_trainer(sampling="epoch", iters=9, dtype="float64")  # 60 = 8 * 7 + 4
    sampler = BatchSampler(60, 7, "epoch", seeded_generators(trainer.config.seed)[1])
    last_batch = [sampler.next() for _ in range(9)][-1]
    assert len(last_batch) == 4
    before_last = []
    history = trainer.fit(*data, on_iteration=lambda i, _: i == 8 and before_last.append(trainer.network.copy()))
    expected = before_last[0].loss(x_train[last_batch], t_train[last_batch])
    assert history.loss[8] == pytest.approx(expected, rel=1e-12)


def test_interrupt_while_showing_an_evaluation_loses_none(data):
    iterations = []

    def interrupt_at_epoch_one(history):
        iterations.append(history.iteration[-1])
        if history.iteration[-1] == 9:
            raise KeyboardInterrupt

    trainer = make_trainer(iters=20, background=False)
    history = trainer.fit(*data, on_evaluation=interrupt_at_epoch_one)
    assert history.iteration == [0, 9] and len(history.loss) == 9
    assert history.stopped == "interrupted after iteration 9"


def test_each_evaluation_is_reported_before_training_goes_on(data):
    events = []
    make_trainer(iters=20, background=False).fit(
        *data, on_iteration=lambda i, _: events.append(i), on_evaluation=lambda h: events.append(f"eval {h.iteration[-1]}"))
    assert events[:11] == ["eval 0", *range(1, 10), "eval 9"]


@pytest.mark.parametrize("targets, message", [
    (lambda t: t + 3, r"labels range over 3\.\.5; the network has 3 outputs, so labels must be in 0\.\.2"),
    (lambda t: t - 1, r"labels range over -1\.\.1"),
    (lambda t: t.astype(float), r"must be integer labels \(N,\) or one-hot rows \(N, 3\), got float64"),
    (lambda t: np.eye(4)[t], r"one-hot rows of width 4, but the network has 3 outputs"),
])
def test_unusable_targets_are_refused_with_the_fix(data, targets, message):
    x_train, t_train, x_test, t_test = data
    with pytest.raises(ConfigError, match=message):
        make_trainer().fit(x_train, targets(t_train), x_test, t_test)


def test_an_empty_test_set_is_refused(data):
    x_train, t_train, x_test, t_test = data
    with pytest.raises(ConfigError, match="the test set is empty"):
        make_trainer().fit(x_train, t_train, x_test[:0], t_test[:0])


def test_integer_images_other_than_uint8_are_refused(data):
    x_train, t_train, x_test, t_test = data
    with pytest.raises(ConfigError, match=r"training images are int64.*uint8 pixels"):
        make_trainer().fit(x_train.astype(np.int64), t_train, x_test, t_test)


def test_eval_every_spaces_the_evaluations_and_zero_leaves_only_the_last(data):
    assert make_trainer(iters=20, eval_every=6).fit(*data).iteration == [0, 6, 12, 18, 20]
    only_last = make_trainer(iters=20, eval_every=0).fit(*data)
    assert only_last.iteration == [20] and len(only_last.loss) == 20
    every_epoch = make_trainer(iters=20).fit(*data)
    assert only_last.loss == every_epoch.loss and only_last.test_acc == every_epoch.test_acc[-1:]


def without_seconds(history):
    """The history's record but the measured times, which differ from run to run."""
    return {key: value for key, value in history.to_dict().items() if key != "seconds"}


@pytest.mark.parametrize("background", [False, True])
def test_a_progress_bar_changes_nothing_of_the_run(data, capsys, background):
    quiet, shown = make_trainer(background, iters=30), make_trainer(background, iters=30)
    seen = []
    unwatched, watched = quiet.fit(*data), shown.fit(*data, progress=True, on_iteration=lambda i, loss: seen.append(i))
    assert without_seconds(watched) == without_seconds(unwatched)
    for key in quiet.network.params:
        np.testing.assert_array_equal(shown.network.params[key], quiet.network.params[key])
    assert seen == list(range(1, 31))  # the caller's callback still sees every iteration
    bar = capsys.readouterr().err
    assert "30/30" in bar and f"test acc {watched.test_acc[-1]:.4f}" in bar


def test_training_is_quiet_without_progress(data, capsys):
    make_trainer().fit(*data)
    assert capsys.readouterr() == ("", "")


def test_the_progress_bar_is_closed_where_training_stopped(data, capsys):
    def ctrl_c(iteration, loss):
        if iteration == 12:
            raise KeyboardInterrupt

    history = make_trainer(iters=30).fit(*data, progress=True, on_iteration=ctrl_c)
    assert history.interrupted and "12/30" in capsys.readouterr().err


def forget_tqdm_auto(monkeypatch):
    """As if tqdm.auto had not been imported yet (it chooses its bar when first imported)."""
    import sys

    import tqdm

    for name in ("tqdm.auto", "tqdm.autonotebook"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        monkeypatch.delattr(tqdm, name.partition(".")[2], raising=False)


def test_the_bar_falls_back_to_text_without_warning_where_ipywidgets_is_missing(data, monkeypatch, recwarn, capsys):
    import sys

    from tqdm import TqdmWarning

    # A Jupyter kernel without ipywidgets: tqdm.auto warns there, then falls back to the text bar.
    forget_tqdm_auto(monkeypatch)
    notebook, ipython = type(sys)("tqdm.notebook"), type(sys)("IPython")
    notebook.IProgress, notebook.WARN_NOIPYW = None, "IProgress not found"  # how tqdm.notebook lacks ipywidgets
    ipython.get_ipython = object
    for name, module in (("tqdm.notebook", notebook), ("IPython", ipython), ("ipykernel.zmqshell", type(sys)("shell"))):
        monkeypatch.setitem(sys.modules, name, module)
    make_trainer().fit(*data, progress=True)
    assert not [w for w in recwarn if issubclass(w.category, TqdmWarning)]
    assert "20/20" in capsys.readouterr().err  # the text bar
    forget_tqdm_auto(monkeypatch)
    with pytest.warns(TqdmWarning, match="IProgress not found"):  # what the trainer keeps from the notebook
        import tqdm.auto  # noqa: F401


def slow_to_evaluate(rows=40_000):
    """Blobs whose test set takes hundreds of iterations' time to evaluate: evaluations lag behind training."""
    (x_train, t_train), (x_test, t_test) = blobs(60, seed=0), blobs(rows, seed=1)
    return x_train, t_train, x_test, t_test


def test_evaluations_after_every_iteration_queue_at_most_one_and_change_nothing(monkeypatch):
    from sgdlab.training.evaluation import MAX_WAITING, Evaluator

    waiting = []
    submit = Evaluator.submit

    def submit_and_count(evaluator, network, iteration, **options):
        submit(evaluator, network, iteration, **options)
        waiting.append(evaluator.waiting())

    monkeypatch.setattr(Evaluator, "submit", submit_and_count)
    data = slow_to_evaluate()
    config = make_trainer(iters=60, eval_every=1, hidden_size=100).config
    background = Trainer.from_config(config, 6, 3, background=True)
    h_background = background.fit(*data)
    assert len(waiting) == 61 and max(waiting) == MAX_WAITING  # the queue filled, and went no further
    inline = Trainer.from_config(config, 6, 3, background=False)
    h_inline = inline.fit(*data)
    assert h_inline.loss == h_background.loss and h_inline.iteration == h_background.iteration == list(range(61))
    assert h_inline.test_acc == h_background.test_acc
    np.testing.assert_array_equal(inline.network.params["W2"], background.network.params["W2"])
    assert not worker_threads()


@pytest.fixture
def sigterm_default():
    """SIGTERM's default disposition, whatever the test was started with (nohup, a background job)."""
    import signal

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_stop_with_evaluations_after_every_iteration_waits_for_no_backlog(sigterm_default):
    import signal

    from sgdlab.training.evaluation import MAX_WAITING

    def stop_at_the_first_evaluation(history):
        if len(history.iteration) == 1:
            signal.raise_signal(signal.SIGTERM)  # held by the trainer, and acted on before the next iteration

    trainer = make_trainer(iters=100_000, eval_every=1, hidden_size=100, background=True)
    history = trainer.fit(*slow_to_evaluate(), on_evaluation=stop_at_the_first_evaluation)
    # The first evaluation ends at most MAX_WAITING + 1 iterations after it was asked for: training went no further.
    assert len(history.loss) <= MAX_WAITING + 1
    assert history.stopped == f"interrupted by SIGTERM after iteration {len(history.loss)}"
    assert history.iteration == list(range(len(history.loss) + 1))
    assert not worker_threads()
