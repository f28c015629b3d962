"""Chapter 7's SimpleConvNet trained by the book's code, by PyTorch and by sgdlab, side by side.

Run:  python benchmarks/convnet.py [--data-dir DIR] [--repeats N] [--iters N] [--epochs 20 --full] [--profile]

The book's configuration: conv 30 filters 5x5 stride 1 pad 0 - ReLU - max
pool 2x2 stride 2 - affine 100 - ReLU - affine 10 - softmax, weights ~
N(0, 0.01^2), batch 100, Adam at lr 0.001, 20 epochs of 600 iterations,
accuracy on the whole training and test sets (70000 images) after every epoch.

Each contender runs in a fresh process, so that its peak RSS is its own, and
repeats go round-robin over the contenders, so that a busy spell of the
machine hits all of them alike. By default each process measures a short
window (`--iters` iterations after `--warmup` untimed ones) and one whole
evaluation of the 70000 images, and the 20-epoch run's time is extrapolated
from those: epochs x 600 iterations plus one evaluation per epoch, summed
as if run one after the other. `--full` also trains each contender for the
whole `--epochs` in a process of its own and reports the measured time.
`--profile` prints where one sgdlab iteration's time goes, layer by layer,
and PyTorch's per-operator profile of the same step.

sgdlab's contender needs `sgdlab.SimpleConvNet` (and, for the book's settings
by name, `TrainConfig(net="simple-convnet")`); without it, it is skipped, saying
so, and the other two are measured.
"""

import argparse
import importlib.util
import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

from training import _decoded_cache_exists, _run_measured

CONTENDERS = ("book", "pytorch", "sgdlab")
BOOK = {"batch_size": 100, "lr": 0.001, "epochs": 20, "weight_init_std": 0.01}
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000
ITERS_PER_EPOCH = TRAIN_SIZE // BOOK["batch_size"]
SEED = 0


class Skipped(Exception):
    """A contender that cannot run here, and why (one line)."""


# --- contenders, each run in its own process (--child NAME --mode window|full|profile) -----------

def load(data_dir, **kwargs):
    from sgdlab import load_mnist

    return load_mnist(data_dir=data_dir, **kwargs)


def book_child(mode, data_dir, iters, warmup, epochs):
    import numpy as np

    import book_convnet

    (x_train, t_train), (x_test, t_test) = load(data_dir, normalize=True, flatten=False)  # as the book loads it
    np.random.seed(SEED)
    network = book_convnet.SimpleConvNet(weight_init_std=BOOK["weight_init_std"])
    trainer = book_convnet.Trainer(network, x_train, t_train, x_test, t_test, epochs=epochs,
                                   mini_batch_size=BOOK["batch_size"], optimizer_param={"lr": BOOK["lr"]})
    if mode == "full":
        started = time.perf_counter()
        test_acc = trainer.train()
        return {"seconds": time.perf_counter() - started, "test_acc": float(test_acc),
                "evaluations": len(trainer.test_acc_list), "dtype": str(network.params["W1"].dtype)}
    return measure_window(trainer.update, lambda: _book_evaluation(trainer), iters, warmup,
                          dtype=str(network.params["W1"].dtype))


def _book_evaluation(trainer):
    trainer.evaluate()
    return trainer.train_acc_list[-1], trainer.test_acc_list[-1]


def pytorch_child(mode, data_dir, iters, warmup, epochs, model="simple_convnet"):
    """PyTorch's contender; `model` names the builder in torch_convnet.py."""
    if importlib.util.find_spec("torch") is None:
        raise Skipped("PyTorch not installed: skipped (pip install torch==2.13.0 adds it)")
    import torch_convnet

    (x_train, t_train), (x_test, t_test) = load(data_dir, normalize=True, flatten=False)
    torch_convnet.setup(SEED)
    training = torch_convnet.Training(x_train, t_train, x_test, t_test, SEED, BOOK["batch_size"], BOOK["lr"],
                                      model=getattr(torch_convnet, model)())
    if mode == "profile":
        return {"table": torch_profile(training, iters, warmup)}
    if mode == "full":
        started = time.perf_counter()
        test_accs = training.train(epochs)
        return {"seconds": time.perf_counter() - started, "test_acc": test_accs[-1], "evaluations": len(test_accs),
                "dtype": "float32"}
    return measure_window(training.step, training.evaluate, iters, warmup, dtype="float32")


def torch_profile(training, iters, warmup):
    """PyTorch's own profiler over `iters` steps: time per operator, forward and backward, per iteration."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        training.step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(iters):
            training.step()
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def sgdlab_trainer(iters=None, epochs=None):
    """sgdlab's trainer of the book's chapter-7 run: `TrainConfig(net="simple-convnet")`, whose defaults are the
    book's (SimpleConvNet, Adam at 0.001, batch 100), float32 as sgdlab trains by default."""
    from sgdlab import TrainConfig, Trainer

    settings = {"iters": iters, "epochs": epochs, "eval_every": 0 if iters else None, "seed": SEED}
    return Trainer.from_config(TrainConfig(net="simple-convnet", **settings)), "TrainConfig(net='simple-convnet')"


def sgdlab_child(mode, data_dir, iters, warmup, epochs, make_trainer=sgdlab_trainer):
    """sgdlab's contender, trained by `make_trainer(iters=..., epochs=...)`, which returns the trainer and how
    it was built."""
    if mode == "profile":
        trainer, built_by = make_trainer(iters=1)
    else:
        trainer, built_by = make_trainer(iters=warmup + iters) if mode == "window" else make_trainer(epochs=epochs)
    (x_train, t_train), (x_test, t_test) = load(data_dir, normalize=False)  # uint8 rows, as sgdlab train loads them
    if mode == "profile":
        return {**profile_step(trainer.network, trainer.optimizer, x_train, t_train, iters, warmup),
                "built_by": built_by}
    info = {"dtype": str(trainer.network.dtype), "built_by": built_by}
    if mode == "full":
        started = time.perf_counter()
        history = trainer.fit(x_train, t_train, x_test, t_test)
        return {"seconds": time.perf_counter() - started, "test_acc": history.test_acc[-1],
                "evaluations": len(history.iteration), **info}
    # The window through Trainer.fit itself: the clock read at the first and last timed iterations; with
    # eval_every 0 the one evaluation (train and test sets) runs after the last, until fit returns.
    clock = {}

    def on_iteration(iteration, loss):
        if iteration in (warmup, warmup + iters):
            clock[iteration] = time.perf_counter()
        if iteration == warmup:
            info["load_1min"] = os.getloadavg()[0]

    started = time.perf_counter()
    history = trainer.fit(x_train, t_train, x_test, t_test, on_iteration=on_iteration)
    ended = time.perf_counter()
    start = clock.get(warmup, started)  # (no warm-up: from the call)
    info.setdefault("load_1min", os.getloadavg()[0])
    return {"iter_ms": (clock[warmup + iters] - start) / iters * 1000, "eval_s": ended - clock[warmup + iters],
            "train_acc": history.train_acc[-1], "test_acc": history.test_acc[-1], **info}


def measure_window(step, evaluate, iters, warmup, dtype):
    """`warmup` untimed steps, `iters` timed ones, then one whole evaluation, timed."""
    for _ in range(warmup):
        step()
    load_1min = os.getloadavg()[0]
    started = time.perf_counter()
    for _ in range(iters):
        step()
    window = time.perf_counter() - started
    started = time.perf_counter()
    train_acc, test_acc = evaluate()
    return {"iter_ms": window / iters * 1000, "eval_s": time.perf_counter() - started,
            "train_acc": float(train_acc), "test_acc": float(test_acc), "dtype": dtype, "load_1min": load_1min}


def profile_step(network, optimizer, x_train, t_train, iters, warmup):
    """Where one training step of sgdlab's fast path goes, in ms per iteration (one BLAS thread, as training
    runs): the wall time of gathering the batch, the forward pass (the loss included), the backward pass and
    the update; and each layer's `forward_into` and `backward_into`, summed over the threads that ran it (the
    step may run its leading layers on two halves of the batch at once, so those add up to more than the
    wall time)."""
    import numpy as np

    from sgdlab.data.scaling import to_float
    from sgdlab.engine.backprop import BackpropStep
    from sgdlab.engine.threads import one_blas_thread

    batch_size = BOOK["batch_size"]
    step = BackpropStep(network, batch_size)
    timed = [TimedLayer(layer) for layer in step.layers]
    step.layers = timed  # the step's own list: the network keeps its layers
    rng = np.random.default_rng(SEED)
    x = np.empty((batch_size, x_train[0].size), network.dtype)
    labels = t_train.astype(np.intp)
    wall = dict.fromkeys(WALL_PARTS, 0.0)
    clock = time.perf_counter
    with one_blas_thread():
        for i in range(warmup + iters):
            if i == warmup:  # the timed iterations start
                wall = dict.fromkeys(wall, 0.0)
                for layer in timed:
                    layer.forward_s = layer.backward_s = 0.0
            t0 = clock()
            batch = rng.integers(0, len(x_train), batch_size)
            to_float(x_train[batch].reshape(batch_size, -1), x)
            t1 = clock()
            step.forward(x, labels[batch])
            t2 = clock()
            grads = step.backward(x)
            t3 = clock()
            optimizer.update(network.params, grads)
            t4 = clock()
            for part, seconds in zip(WALL_PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                wall[part] += seconds
    layers = [{"part": f"{i}: {layer.layer!r}", "forward_ms": layer.forward_s / iters * 1000,
               "backward_ms": layer.backward_s / iters * 1000} for i, layer in enumerate(timed)]
    return {"layers": layers, "wall_ms": {part: seconds / iters * 1000 for part, seconds in wall.items()}}


WALL_PARTS = ("batch", "forward (loss included)", "backward", "update")


class TimedLayer:
    """A layer whose in-place forward and backward passes add their time by `clock` (the wall clock, or
    `time.thread_time` for the CPU time of the thread that runs them) to `forward_s` and `backward_s`, from
    whichever thread runs them."""

    def __init__(self, layer, clock=time.perf_counter):
        self.layer = layer
        self.clock = clock
        self.forward_s = self.backward_s = 0.0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.layer, name)

    def forward_into(self, *args):
        return self._timed("forward_s", self.layer.forward_into, args)

    def backward_into(self, *args):
        return self._timed("backward_s", self.layer.backward_into, args)

    def _timed(self, total, run, args):
        started = self.clock()
        result = run(*args)
        with self.lock:
            setattr(self, total, getattr(self, total) + self.clock() - started)
        return result


CHILDREN = {"book": book_child, "pytorch": pytorch_child, "sgdlab": sgdlab_child}


def child(name, mode, data_dir, iters, warmup, epochs, children=None):
    try:
        return (children or CHILDREN)[name](mode, data_dir, iters, warmup, epochs)
    except Skipped as skipped:
        return {"skipped": str(skipped)}


def run_child(name, mode, args, script=__file__):
    """Contender `name` of the benchmark `script` in a process of its own; its result."""
    command = [sys.executable, str(Path(script).resolve()), "--child", name, "--mode", mode, "--iters",
               str(args.iters), "--warmup", str(args.warmup), "--epochs", str(args.epochs)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    return _run_measured(command, lambda out: json.loads(out.strip().splitlines()[-1]))


# --- the report ---------------------------------------------------------------------------------

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def non_negative_int(text):
    return 0 if text.strip() == "0" else positive_int(text)


def contender_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONTENDERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown contender {', '.join(unknown) or text!r}: choose among "
                                         f"{', '.join(CONTENDERS)}")
    return names


def parse_args(argv=None, description=__doc__):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the folder holding MNIST (default: $SGDLAB_DATA, else the download cache)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="runs of each contender, round-robin")
    parser.add_argument("--iters", type=positive_int, default=300,
                        help="iterations timed per run (with --profile: iterations profiled)")
    parser.add_argument("--warmup", type=non_negative_int, default=5, help="untimed iterations before them")
    parser.add_argument("--epochs", type=positive_int, default=BOOK["epochs"],
                        help="the length of the run extrapolated to (or, with --full, trained)")
    parser.add_argument("--full", action="store_true", help="also train each contender for the whole --epochs")
    parser.add_argument("--profile", action="store_true",
                        help="where one iteration's time goes: sgdlab by layer, PyTorch by operator")
    parser.add_argument("--contenders", type=contender_list, default=list(CONTENDERS),
                        help=f"a comma list among {','.join(CONTENDERS)} (default: all)")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("window", "full", "profile"), default="window", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).resolve())
    return args


def summarize(runs, args):
    """Per contender: min and median ms per iteration, evaluation seconds, the run's time, accuracy, peak RSS."""
    summary = {}
    for name, results in runs.items():
        windows = [r for r in results if "iter_ms" in r]
        if not windows:
            continue
        iter_ms = [r["iter_ms"] for r in windows]
        eval_s = [r["eval_s"] for r in windows]
        row = {"iter_ms_min": min(iter_ms), "iter_ms_median": statistics.median(iter_ms),
               "eval_s_min": min(eval_s), "eval_s_median": statistics.median(eval_s),
               "run_s_extrapolated": (args.epochs * ITERS_PER_EPOCH * statistics.median(iter_ms) / 1000
                                      + args.epochs * statistics.median(eval_s)),
               "window_train_acc": windows[-1]["train_acc"], "window_test_acc": windows[-1]["test_acc"],
               "peak_rss_mb": max(r["peak_rss_mb"] for r in windows), "dtype": windows[-1]["dtype"],
               "runs": [{key: r[key] for key in ("iter_ms", "eval_s", "load_1min", "peak_rss_mb")} for r in windows]}
        if "built_by" in windows[-1]:
            row["built_by"] = windows[-1]["built_by"]
        fulls = [r for r in results if "seconds" in r]
        if fulls:
            row.update({"run_s_measured_min": min(r["seconds"] for r in fulls),
                        "run_s_measured_median": statistics.median(r["seconds"] for r in fulls),
                        "run_test_acc": fulls[-1]["test_acc"], "run_evaluations": fulls[-1]["evaluations"],
                        "run_peak_rss_mb": max(r["peak_rss_mb"] for r in fulls)})
        summary[name] = row
    for name, row in summary.items():
        for other in ("book", "pytorch"):
            if other in summary and other != name:  # how many times faster than `other`, by medians
                row[f"speedup_vs_{other}"] = summary[other]["iter_ms_median"] / row["iter_ms_median"]
                if "run_s_measured_median" in row and "run_s_measured_median" in summary[other]:
                    row[f"run_speedup_vs_{other}"] = (summary[other]["run_s_measured_median"]
                                                      / row["run_s_measured_median"])
    return summary


def print_report(summary, args, notes, title="chapter 7 SimpleConvNet", memory_mb=600):
    iterations = args.epochs * ITERS_PER_EPOCH
    print(f"{title}, batch 100, Adam lr 0.001: {args.iters} timed iterations after {args.warmup} "
          f"untimed, then one evaluation of all 70000 images, per run; {args.repeats} runs each, round-robin; "
          f"{os.cpu_count()} cores")
    print(f"{'contender':10} {'dtype':8} {'ms/iter min':>11} {'median':>7} {'x book':>7} {'x torch':>8} "
          f"{'eval s':>7} {'run s (extrap.)':>15} {'acc':>7} {'peak RSS':>9}")
    for name, row in summary.items():
        print(f"{name:10} {row['dtype']:8} {row['iter_ms_min']:11.1f} {row['iter_ms_median']:7.1f} "
              f"{row.get('speedup_vs_book', 1.0 if name == 'book' else float('nan')):7.2f} "
              f"{row.get('speedup_vs_pytorch', 1.0 if name == 'pytorch' else float('nan')):8.2f} "
              f"{row['eval_s_median']:7.2f} {row['run_s_extrapolated']:15.0f} {row['window_test_acc']:7.4f} "
              f"{row['peak_rss_mb']:6.0f} MB")
    print(f"(ms/iter: the window's mean per iteration, min and median over the runs; 'x book', 'x torch': how many "
          f"times faster than that contender per iteration, medians; eval s: one evaluation of the 60000 training and "
          f"10000 test images; run s (extrap.): {args.epochs} epochs = {iterations} iterations x the median ms/iter "
          f"+ {args.epochs} evaluations x the median eval s, extrapolated, not measured, summed as if one after the "
          f"other; acc: test accuracy after the {args.warmup + args.iters} iterations)")
    for name, row in summary.items():
        print(f"{name} runs in order (ms/iter, eval s, 1-min load average at the window's start): "
              + ", ".join(f"{r['iter_ms']:.1f} / {r['eval_s']:.1f} / {r['load_1min']:.1f}" for r in row["runs"]))
    if "sgdlab" in summary:
        print(f"(sgdlab built by {summary['sgdlab']['built_by']})")
        print("(sgdlab evaluates on the second core while training goes on, which the sum does not model: its "
              "extrapolation is an estimate, --full measures; its eval s is the time from its last update to the end "
              "of Trainer.fit)")
    for name, row in summary.items():
        if "run_s_measured_median" in row:
            print(f"{name}: the whole {args.epochs}-epoch run measured: {row['run_s_measured_min']:.0f} s min, "
                  f"{row['run_s_measured_median']:.0f} s median, test acc {row['run_test_acc']:.4f} after "
                  f"{row['run_evaluations']} evaluations, peak RSS {row['run_peak_rss_mb']:.0f} MB")
    if "sgdlab" in summary:
        row = summary["sgdlab"]
        if "speedup_vs_book" in row:
            print(f"sgdlab per iteration: {row['speedup_vs_book']:.1f}x the book's speed (target 10x: "
                  f"{'met' if row['speedup_vs_book'] >= 10 else 'not met'})")
        if "speedup_vs_pytorch" in row:
            print(f"sgdlab per iteration: {row['speedup_vs_pytorch']:.2f}x PyTorch's speed (target 1x: "
                  f"{'met' if row['speedup_vs_pytorch'] >= 1 else 'not met'})")
        print(f"sgdlab peak RSS {row['peak_rss_mb']:.0f} MB (target {memory_mb} MB: "
              f"{'met' if row['peak_rss_mb'] <= memory_mb else 'not met'})")
    for note in notes:
        print(note)


def print_profile(profiles):
    if "sgdlab" in profiles:
        wall = profiles["sgdlab"]["wall_ms"]
        print(f"sgdlab, one iteration: {sum(wall.values()):.2f} ms wall on one BLAS thread ("
              + ", ".join(f"{part} {ms:.2f}" for part, ms in wall.items()) + "); by layer, the time summed over "
              "the threads that ran it (leading layers may run on two halves of the batch at once):")
        print(f"{'layer':50} {'forward ms':>10} {'backward ms':>11}")
        for row in profiles["sgdlab"]["layers"]:
            print(f"{row['part']:50} {row['forward_ms']:10.3f} {row['backward_ms']:11.3f}")
    if "pytorch" in profiles:
        print("PyTorch, by operator (its profiler, over the profiled iterations):")
        print(profiles["pytorch"]["table"])


def main(benchmark="convnet", description=__doc__, children=None, script=__file__, title="chapter 7 SimpleConvNet",
         memory_mb=600, notes_after=()):
    """The benchmark called `benchmark` (its `children`' contenders, run by `script`; `notes_after` printed
    under its report), or, with --child, one contender."""
    args = parse_args(description=description)
    if args.child:
        print(json.dumps(child(args.child, args.mode, args.data_dir, args.iters, args.warmup, args.epochs, children)))
        return

    notes = [f"load average at the start: {' '.join(f'{load:.2f}' for load in os.getloadavg())} (1, 5, 15 min)"]
    if not _decoded_cache_exists(args.data_dir):
        notes.append("no decoded MNIST cache in the data folder (read-only?): every process decodes the gzipped "
                     "files, which raises its peak RSS")
    contenders = list(args.contenders)
    if args.profile:
        profiles = {}
        for name in [name for name in ("sgdlab", "pytorch") if name in contenders]:
            result = run_child(name, "profile", args, script)
            if "skipped" in result:
                notes.append(f"{name}: {result['skipped']}")
            else:
                profiles[name] = result
        print_profile(profiles)
        for note in notes:
            print(note)
        print(json.dumps({"benchmark": f"{benchmark}-profile", "iters": args.iters, "profiles": profiles, "notes": notes}))
        return

    runs = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name in list(contenders):
            for mode in ("window", "full") if args.full else ("window",):
                result = run_child(name, mode, args, script)
                if "skipped" in result:
                    notes.append(f"{name}: {result['skipped']}")
                    contenders.remove(name)
                    break
                runs[name].append(result)
    own_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured = [r["peak_rss_mb"] for results in runs.values() for r in results]
    if measured and own_rss_mb >= min(measured):
        notes.append(f"this process reached {own_rss_mb:.0f} MB, so the peak RSS figures may be its own")
    notes.append(f"load average at the end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    notes.extend(notes_after)
    summary = summarize(runs, args)
    print_report(summary, args, notes, title, memory_mb)
    print(json.dumps({"benchmark": benchmark, "iters": args.iters, "warmup": args.warmup, "epochs": args.epochs,
                      "repeats": args.repeats, "full": args.full, "contenders": summary, "notes": notes}))


if __name__ == "__main__":
    main()
