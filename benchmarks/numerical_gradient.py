"""Numerical gradient of the 784-50-10 net on a batch of 100: textbook method vs sgdlab's, side by side.

Run:  python benchmarks/numerical_gradient.py [--data-dir DIR] [--repeats N] [--seeds N] [--train]

Prints a table and one JSON line: the time of each method (textbook: one
run, it takes seconds; fast: min and median of --repeats), their ratio, the
largest absolute and relative difference between the two gradients over
--seeds batches, and the projected and (with --train) measured time of
`sgdlab train --grad numerical` with the book configuration.
"""

import argparse
import json
import resource
import statistics
import sys
import time

import numpy as np

from sgdlab import TwoLayerNet, load_mnist
from sgdlab.engine.perturbation import numerical_gradient_fast

BOOK_ITERS = 10_000


def time_call(function, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return result, times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="batches (and initial weights) compared")
    parser.add_argument("--train", action="store_true", help="also run the full numerical training and time it")
    args = parser.parse_args()

    (x_train, t_train), (x_test, t_test) = load_mnist(data_dir=args.data_dir)
    rows = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        batch = rng.integers(0, len(x_train), 100)
        x, t = x_train[batch].astype(np.float64), t_train[batch]
        network = TwoLayerNet(rng=seed)
        textbook, textbook_times = time_call(lambda: network.numerical_gradient(x, t), 1)
        (_, fast), fast_times = time_call(lambda: numerical_gradient_fast(network, x, t), args.repeats)
        max_abs = max(float(np.max(np.abs(fast[k] - textbook[k]))) for k in fast)
        max_rel = max(float(np.max(np.abs(fast[k] - textbook[k])) / np.max(np.abs(textbook[k]))) for k in fast)
        rows.append({"seed": seed, "textbook_s": textbook_times[0], "fast_min_s": min(fast_times),
                     "fast_median_s": statistics.median(fast_times), "max_abs_diff": max_abs, "max_rel_diff": max_rel})

    textbook_s = statistics.median(r["textbook_s"] for r in rows)
    fast_min = min(r["fast_min_s"] for r in rows)
    fast_median = statistics.median(r["fast_median_s"] for r in rows)
    print(f"{'seed':>4} {'textbook s':>11} {'fast min ms':>12} {'fast med ms':>12} {'ratio':>8} {'max abs diff':>13} {'max rel diff':>13}")
    for r in rows:
        print(f"{r['seed']:>4} {r['textbook_s']:11.2f} {r['fast_min_s'] * 1e3:12.2f} {r['fast_median_s'] * 1e3:12.2f} "
              f"{r['textbook_s'] / r['fast_median_s']:8.0f} {r['max_abs_diff']:13.2e} {r['max_rel_diff']:13.2e}")
    summary = {
        "benchmark": "numerical_gradient", "net": "784-50-10", "batch": 100,
        "textbook_s": textbook_s, "fast_min_s": fast_min, "fast_median_s": fast_median,
        "ratio_median": textbook_s / fast_median,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows), "max_rel_diff": max(r["max_rel_diff"] for r in rows),
        "projected_textbook_training_h": textbook_s * BOOK_ITERS / 3600,
        "projected_fast_training_min": fast_median * BOOK_ITERS / 60,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(f"ratio (median) {summary['ratio_median']:.0f}x; projected {BOOK_ITERS} iterations: textbook "
          f"{summary['projected_textbook_training_h']:.1f} h, fast {summary['projected_fast_training_min']:.1f} min "
          f"(gradients only); peak RSS {summary['peak_rss_mb']:.0f} MB")
    if args.train:
        summary.update(measure_training(x_train, t_train, x_test, t_test))
        summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"measured: sgdlab numerical training, {BOOK_ITERS} iterations, {summary['training_min']:.1f} min, "
              f"test accuracy {summary['training_test_acc']:.4f}, peak RSS {summary['peak_rss_mb']:.0f} MB")
    print(json.dumps(summary))


def measure_training(x_train, t_train, x_test, t_test):
    from sgdlab import TrainConfig, Trainer

    trainer = Trainer.from_config(TrainConfig(grad="numerical"))
    started = time.perf_counter()
    history = trainer.fit(x_train, t_train, x_test, t_test)
    return {"training_min": (time.perf_counter() - started) / 60, "training_test_acc": history.test_acc[-1]}


if __name__ == "__main__":
    sys.exit(main())
