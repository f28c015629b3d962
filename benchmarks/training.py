"""The book configuration trained by sgdlab, by the book's own loop and by PyTorch, side by side.

Run:  python benchmarks/training.py [--data-dir DIR] [--repeats N] [--iters N] [--baseline PYTHON]

Every contender trains the 784-50-10 sigmoid net with batch 100, lr 0.1 and
the same evaluation schedule (whole training and test sets before training,
after every epoch and after the last iteration), each run in a fresh process
so that its peak memory is its own. Repeats go round-robin across contenders
so that a busy spell of the machine hits all of them alike. Printed: a table
and one JSON line with, for each contender, the minimum and median training
time (training plus evaluations, data already loaded), the ratio to sgdlab,
the final test accuracy, the peak RSS and the whole-process time; the
floor implied by the matrix-multiply rate measured here for the same shapes;
and where sgdlab's own time goes. `--baseline PYTHON` adds another sgdlab
installation (the interpreter of the environment it is installed in, for
instance an earlier release) as two more contenders, "baseline" and
"baseline train", measured in the same rounds: before/after comparisons in
one run.
"""

import argparse
import importlib.util
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
BOOK = {"iters": 10_000, "batch_size": 100, "lr": 0.1, "hidden_size": 50}
INPUTS, HIDDEN, OUTPUTS = 784, 50, 10
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000


def evaluation_schedule(iters, batch_size):
    """sgdlab's: before training, after every full epoch, after the last iteration."""
    per_epoch = math.ceil(TRAIN_SIZE / batch_size)
    return sorted({0, iters} | set(range(per_epoch, iters, per_epoch)))


def iteration_flops(batch_size):
    """Multiply-adds x2 a training step cannot avoid: both layers forward, both weight
    gradients, and the hidden layer's delta; no gradient for the input images."""
    return 2 * batch_size * (INPUTS * HIDDEN * 2 + HIDDEN * OUTPUTS * 3)


def evaluation_flops():
    return 2 * (TRAIN_SIZE + TEST_SIZE) * (INPUTS * HIDDEN + HIDDEN * OUTPUTS)


# --- contenders, each run in its own process (--child NAME) ------------------------------------

def child(name, data_dir, iters):
    from sgdlab import load_mnist

    schedule = evaluation_schedule(iters, BOOK["batch_size"])
    if name.startswith("sgdlab"):
        from sgdlab import TrainConfig, Trainer

        (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, data_dir=data_dir)
        dtype = "float64" if name.endswith("float64") else "float32"
        trainer = Trainer.from_config(TrainConfig(iters=iters, dtype=dtype))
        started = time.perf_counter()
        history = trainer.fit(x_train, t_train, x_test, t_test)
        seconds = time.perf_counter() - started
        assert history.iteration == schedule
        return {"seconds": seconds, "test_acc": history.test_acc[-1], "test_accs": history.test_acc,
                "train_accs": history.train_acc}
    if name == "book":
        import book_baseline

        (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True, data_dir=data_dir)
        started = time.perf_counter()
        _, _, test_accs = book_baseline.train(x_train, t_train, x_test, t_test, set(schedule), iters=iters)
        return {"seconds": time.perf_counter() - started, "test_acc": float(test_accs[-1])}
    if name == "pytorch":
        import torch_loop

        (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, data_dir=data_dir)
        torch_loop.warm_up()
        started = time.perf_counter()
        _, _, test_accs = torch_loop.train(x_train, t_train, x_test, t_test, set(schedule), iters=iters)
        return {"seconds": time.perf_counter() - started, "test_acc": float(test_accs[-1])}
    if name == "breakdown":
        return breakdown(data_dir, iters)
    raise ValueError(f"unknown contender {name!r}")


def breakdown(data_dir, iters):
    """sgdlab's loop with a clock around each phase, evaluations run in line (not overlapped)."""
    from threadpoolctl import threadpool_limits

    from sgdlab import SGD, TrainConfig, Trainer, load_mnist
    from sgdlab.data.batches import BatchSampler, BatchStream
    from sgdlab.engine.backprop import BackpropStep
    from sgdlab.training.evaluation import count_correct
    from sgdlab.training.trainer import seeded_generators

    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=False, data_dir=data_dir)
    config = TrainConfig(iters=iters)
    network = Trainer.from_config(config).network
    sampler = BatchSampler(len(x_train), config.batch_size, "random", seeded_generators(config.seed)[1])
    batches = iter(BatchStream(x_train, sampler, network.dtype, iters, background=False))
    step = BackpropStep(network, config.batch_size)
    optimizer = SGD(config.learning_rate)
    labels = t_train.astype(np.intp)
    phases = dict.fromkeys(["batches", "forward", "backward", "update", "evaluation"], 0.0)
    clock = time.perf_counter
    schedule = set(evaluation_schedule(iters, config.batch_size))
    with threadpool_limits(limits=1, user_api="blas"):  # as the training thread runs
        for i in range(iters + 1):
            if i in schedule:
                t0 = clock()
                count_correct(network, x_train, t_train)
                count_correct(network, x_test, t_test)
                phases["evaluation"] += clock() - t0
            if i == iters:
                break
            t1 = clock()
            batch, x = next(batches)  # drawn and gathered ten batches at a time; in line here, not on core 2
            t2 = clock()
            step.forward(x, labels[batch])
            t3 = clock()
            grads = step.backward(x)
            t4 = clock()
            optimizer.update(network.params, grads)
            t5 = clock()
            for phase, seconds in zip(("batches", "forward", "backward", "update"),
                                      (t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                phases[phase] += seconds
    return {"phases": phases}


def run_child(name, data_dir, iters, python=sys.executable):
    """Run one contender in a fresh process of `python`: its result, peak RSS (MB) and whole-process seconds."""
    command = [python, str(Path(__file__).resolve()), "--child", name, "--iters", str(iters)]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    return _run_measured(command, lambda out: json.loads(out.strip().splitlines()[-1]))


def run_cli(data_dir, iters, python=None):
    """`sgdlab train` as a user runs it: start-up, data, training, plots and model file (`python -m sgdlab`
    with another interpreter's sgdlab)."""
    executable = shutil.which("sgdlab") if python is None else None
    base = [executable] if executable else [python or sys.executable, "-m", "sgdlab"]
    with tempfile.TemporaryDirectory() as out:
        command = base + ["train", "--quiet", "--iters", str(iters), "--out", out]
        if data_dir:
            command += ["--data-dir", str(data_dir)]
        result = _run_measured(command, lambda _: {})
        history = json.loads((Path(out) / "history.json").read_text())
        if python is None:
            job = json.dumps({"history": history, "run_dir": out})
            result["chart_rss_mb"] = _run_measured([sys.executable, "-m", "sgdlab.plots.chart_process"],
                                                   lambda _: {}, stdin=job)["peak_rss_mb"]
    result["test_acc"] = history["test_acc"][-1]
    result["seconds"] = result["process_s"]
    return result


def _run_measured(command, parse, stdin=""):
    """Run `command` with `stdin` as its input, reaping it ourselves to read its peak RSS.

    A child's peak RSS starts from this process's size at the fork, so this
    process must stay smaller than every child (it imports only NumPy and
    measures the matrix-multiply floor, which allocates, after all children).
    """
    with tempfile.TemporaryFile("w+") as feed, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        feed.write(stdin)
        feed.seek(0)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=feed, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{err.read()}")
        result = parse(out.read())
    result["process_s"] = elapsed
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


# --- the floor ----------------------------------------------------------------------------------

def matmul_seconds(shape_a, shape_b, transpose_a=False, repeats=200, threads=None):
    """Fastest time of one float32 matrix product of these shapes, as the loop calls it."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random(shape_a, dtype=np.float32)
    b = rng.random(shape_b, dtype=np.float32)
    a = a.T if transpose_a else a
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(repeats):
            started = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - started)
    return best


def matmul_floor(iters, batch_size, evaluations):
    """Seconds the loop's matrix products alone take at the best thread count measured here."""
    def best(*args, **kwargs):
        return min(matmul_seconds(*args, threads=threads, **kwargs) for threads in (1, None))

    step = (best((batch_size, INPUTS), (INPUTS, HIDDEN))  # forward, hidden layer
            + best((batch_size, INPUTS), (batch_size, HIDDEN), transpose_a=True)  # its weight gradient
            + best((batch_size, HIDDEN), (HIDDEN, OUTPUTS))  # forward, output layer
            + best((batch_size, HIDDEN), (batch_size, OUTPUTS), transpose_a=True)  # its weight gradient
            + best((batch_size, OUTPUTS), (OUTPUTS, HIDDEN)))  # delta back to the hidden layer
    evaluation = (best((TRAIN_SIZE + TEST_SIZE, INPUTS), (INPUTS, HIDDEN), repeats=10)
                  + best((TRAIN_SIZE + TEST_SIZE, HIDDEN), (HIDDEN, OUTPUTS), repeats=10))
    gflops = evaluation_flops() / evaluation / 1e9
    return iters * step + evaluations * evaluation, iteration_flops(batch_size) / step / 1e9, gflops


# --- the report ---------------------------------------------------------------------------------

def _decoded_cache_exists(data_dir):
    from sgdlab.data.mnist import CACHE_NAME, default_data_dir

    return (Path(data_dir) if data_dir else default_data_dir()).joinpath(CACHE_NAME).exists()


def torch_available():
    """Whether PyTorch is installed; found without importing it, which would swell this process
    and with it the peak RSS its children inherit at fork."""
    return importlib.util.find_spec("torch") is not None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=BOOK["iters"])
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="the Python of another environment whose sgdlab to measure alongside")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).resolve())
    if args.child:
        print(json.dumps(child(args.child, args.data_dir, args.iters)))
        return

    contenders = ["sgdlab", "sgdlab train", "sgdlab float64", "book"]
    notes = []
    if not _decoded_cache_exists(args.data_dir):
        notes.append("no decoded MNIST cache in the data folder (read-only?): every process decodes the "
                     "gzipped files, which raises its peak RSS and whole-process time")
    if torch_available():
        contenders.append("pytorch")
    else:
        notes.append("PyTorch not installed: skipped (pip install torch==2.13.0 adds it)")
    if args.baseline:
        contenders += ["baseline", "baseline train"]
    runs = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name in contenders:
            if name == "sgdlab train":
                runs[name].append(run_cli(args.data_dir, args.iters))
            elif name == "baseline train":
                runs[name].append(run_cli(args.data_dir, args.iters, python=args.baseline))
            elif name == "baseline":
                runs[name].append(run_child("sgdlab", args.data_dir, args.iters, python=args.baseline))
            else:
                runs[name].append(run_child(name.replace(" ", "-"), args.data_dir, args.iters))
    phases = run_child("breakdown", args.data_dir, args.iters)["phases"]
    own_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if own_rss_mb >= min(r["peak_rss_mb"] for results in runs.values() for r in results):
        notes.append(f"this process reached {own_rss_mb:.0f} MB, so the peak RSS figures may be its own")

    evaluations = len(evaluation_schedule(args.iters, BOOK["batch_size"]))
    floor_s, step_gflops, eval_gflops = matmul_floor(args.iters, BOOK["batch_size"], evaluations)
    work_gflop = (args.iters * iteration_flops(BOOK["batch_size"]) + evaluations * evaluation_flops()) / 1e9
    reference = statistics.median(r["seconds"] for r in runs["sgdlab"])
    summary = {}
    for name, results in runs.items():
        seconds = [r["seconds"] for r in results]
        summary[name] = {
            "min_s": min(seconds), "median_s": statistics.median(seconds),
            "ratio_to_sgdlab": statistics.median(seconds) / reference,
            "test_acc": results[-1]["test_acc"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "process_min_s": min(r["process_s"] for r in results),
            "gflops": work_gflop / min(seconds),
        }

    print(f"book configuration: {args.iters} iterations, batch 100, {evaluations} evaluations of all 70000 "
          f"images; {args.repeats} runs each, {os.cpu_count()} cores")
    print(f"{'contender':16} {'min s':>7} {'median s':>9} {'x sgdlab':>9} {'test acc':>9} {'peak RSS':>9} "
          f"{'process s':>10} {'GFLOP/s':>8}")
    for name, row in summary.items():
        print(f"{name:16} {row['min_s']:7.2f} {row['median_s']:9.2f} {row['ratio_to_sgdlab']:9.2f} "
              f"{row['test_acc']:9.4f} {row['peak_rss_mb']:7.0f} MB {row['process_min_s']:10.2f} {row['gflops']:8.1f}")
    print("(seconds: training and evaluations with the data loaded; 'sgdlab train' is the whole command)")
    cli = summary["sgdlab train"]
    cli["chart_process_rss_mb"] = max(r["chart_rss_mb"] for r in runs["sgdlab train"])
    print(f"sgdlab train's chart process, which lives beside it, peaks at {cli['chart_process_rss_mb']:.0f} MB: "
          f"{cli['peak_rss_mb'] + cli['chart_process_rss_mb']:.0f} MB together at most")
    float32, float64 = runs["sgdlab"][-1], runs["sgdlab float64"][-1]
    accuracy_gap = max(abs(a - b) for a, b in zip(float32["test_accs"] + float32["train_accs"],
                                                  float64["test_accs"] + float64["train_accs"]))
    print(f"float32 vs float64: largest difference in train or test accuracy over all {evaluations} evaluations "
          f"{accuracy_gap:.4f}")
    print(f"the loop's matrix products back to back, each at the better of 1 and 2 BLAS threads "
          f"({step_gflops:.0f} GFLOP/s for batch-100 shapes, {eval_gflops:.0f} for evaluation): {floor_s:.2f} s; "
          f"sgdlab takes {summary['sgdlab']['min_s'] / floor_s:.2f}x that")
    total = sum(phases.values())
    print("sgdlab's time by phase (batches and evaluations in line, one BLAS thread): "
          + ", ".join(f"{phase} {seconds:.2f} s ({seconds / total:.0%})" for phase, seconds in phases.items()))
    for note in notes:
        print(note)
    print(json.dumps({"benchmark": "training", "iters": args.iters, "repeats": args.repeats, "evaluations": evaluations,
                      "contenders": summary, "matmul_floor_s": floor_s, "floor_ratio": summary["sgdlab"]["min_s"] / floor_s,
                      "matmul_gflops_step": step_gflops, "matmul_gflops_eval": eval_gflops, "phases_s": phases,
                      "float32_vs_float64_max_accuracy_gap": accuracy_gap,
                      "notes": notes}))


if __name__ == "__main__":
    main()
