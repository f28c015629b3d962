"""What Dask costs and what a second worker gains: sweeps timed as a user runs them, in one session.

1. Scaling: the same sweep (12 trials of about 3 s, the book's two-layer net) with `--workers 1` on one core
   and `--workers 2` on two; trials per minute of the whole command (start-up, cluster, the data's plugin and the
   figures included), and the results checked equal.
2. Overhead on a 10-second trial: `sgdlab train` of one configuration against `sgdlab sweep --trials 1
   --workers 1` whose only trial is that configuration (its range a single point, its seed the same), whole
   commands timed; also the training seconds each run records, and their histories checked bit-identical.
   And what each further trial costs: a sweep of 3 such trials on one worker less the sweep of 1, halved,
   against the whole `sgdlab train` command; the rest of the sweep of 1 is what a sweep pays once.

    python benchmarks/sweep_scaling.py [--repeats 2] [--data-dir DIR]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCALING = ["--train-size", "20000", "--validation", "0.1", "--epochs", "15", "--trials", "12",
           "--search", "lr=log:1e-2:1", "--search", "weight_decay=log:1e-8:1e-4"]
TRIAL = ["--iters", "25000", "--validation", "0.1", "--lr", "0.1"]  # the chapter-4 net, longer: about 10 s
# A sweep's trial made to do all that sgdlab train does: the test set at every evaluation, a checkpoint at each
# (an epoch: 540 iterations of the 54000 images trained on), the charts and report.
AS_TRAIN = ["--test-eval", "every", "--checkpoint-every", "540", "--trial-charts"]


def sgdlab(*argv, cores=None):
    """Run `sgdlab ARGV` (on the first `cores` cores only, if given); returns its wall seconds."""
    started = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])) if cores else None
    done = subprocess.run([sys.executable, "-m", "sgdlab", *map(str, argv)], capture_output=True, text=True,
                          preexec_fn=pin)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sgdlab {' '.join(map(str, argv))} failed: {done.stderr}")
    return seconds


def outcomes(sweep_dir):
    rows = json.loads((sweep_dir / "results.json").read_text())["trials"]
    return [(row["trial"], row["settings"], row["val_acc"], row["test_acc"]) for row in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    scratch = Path(tempfile.mkdtemp(prefix="sgdlab-sweep-bench-"))

    walls = {1: [], 2: []}
    for repeat in range(args.repeats):
        for workers in (1, 2):
            out = scratch / f"scaling-{workers}-{repeat}"
            walls[workers].append(sgdlab("sweep", *SCALING, *data, "--workers", workers, "--out", out, "--quiet",
                                         cores=workers))
        assert outcomes(scratch / f"scaling-1-{repeat}") == outcomes(scratch / f"scaling-2-{repeat}")
    per_minute = {workers: 12 * 60 / statistics.median(seconds) for workers, seconds in walls.items()}
    print("scaling: 12 trials, whole command")
    for workers, seconds in walls.items():
        print(f"  {workers} worker{'s' if workers > 1 else ' '}: {statistics.median(seconds):6.1f} s "
              f"({', '.join(f'{s:.1f}' for s in seconds)}), {per_minute[workers]:5.1f} trials/min")
    print(f"  ratio: {per_minute[2] / per_minute[1]:.2f}x (target >= 1.7x); results identical")

    # The sweep's one trial: its seed is drawn from the sweep's seed and 0; sgdlab train is given it.
    from sgdlab.runs.search_space import draw_trial, parse_search

    _, seed = draw_trial([parse_search("weight_decay=uniform:0:0")], 0, 0)
    timings = {"sgdlab train": [], "sgdlab sweep": []}
    recorded = {"sgdlab train": [], "sgdlab sweep": []}
    further = []
    for repeat in range(args.repeats):
        run_dir, sweep_dir = scratch / f"train-{repeat}", scratch / f"sweep-{repeat}"
        timings["sgdlab train"].append(sgdlab("train", *TRIAL, *data, "--seed", seed, "--out", run_dir, "--quiet"))
        timings["sgdlab sweep"].append(sgdlab("sweep", *TRIAL, *AS_TRAIN, *data, "--search", "weight_decay=uniform:0:0",
                                              "--trials", 1, "--workers", 1, "--out", sweep_dir, "--quiet"))
        trained = json.loads((run_dir / "history.json").read_text())
        swept = json.loads((sweep_dir / "trial-0" / "history.json").read_text())
        assert trained["loss"] == swept["loss"] and trained["val_acc"] == swept["val_acc"], "histories differ"
        recorded["sgdlab train"].append(trained["seconds"][-1])
        recorded["sgdlab sweep"].append(swept["seconds"][-1])
        three = sgdlab("sweep", *TRIAL, *AS_TRAIN, *data, "--search", "weight_decay=uniform:0:0", "--trials", 3,
                       "--workers", 1,
                       "--out", scratch / f"sweep3-{repeat}", "--quiet")
        further.append((three - timings["sgdlab sweep"][-1]) / 2)
    print("one 10-second trial: whole command | training seconds the run records")
    base = statistics.median(timings["sgdlab train"]), statistics.median(recorded["sgdlab train"])
    for name in timings:
        wall, trained = statistics.median(timings[name]), statistics.median(recorded[name])
        print(f"  {name:13}: {wall:6.2f} s ({wall / base[0]:.3f}x) | {trained:6.2f} s ({trained / base[1]:.3f}x)")
    print("  histories identical, bit for bit")
    print(f"  each further trial of a sweep: {statistics.median(further):6.2f} s "
          f"({statistics.median(further) / base[0]:.3f}x the sgdlab train command; "
          f"{', '.join(f'{s:.2f}' for s in further)}); target < 1.05x")
    print(f"  paid once per sweep: {statistics.median(timings['sgdlab sweep']) - statistics.median(further):.2f} s "
          "(cluster start, the data's plugin, the sweep's figures)")


if __name__ == "__main__":
    main()
