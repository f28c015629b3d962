"""Evaluations after every iteration: the peak memory of `sgdlab train --eval-every 1`, and how soon SIGTERM ends it.

An evaluation (all 70000 images) takes as long as hundreds of iterations,
so evaluations after every iteration pile up unless they are bounded. For
each sgdlab source folder given (`--src`, default: the one imported here),
two whole processes: one trains to the end (its peak RSS measured by the
system, `wait4`), one gets SIGTERM `--sigterm-after` seconds in (the time
from the signal to its exit measured, and where it stopped). Prints a table
and one JSON line.

    python benchmarks/eval_every_stop.py [--iters 2000] [--sigterm-after 10] [--src OTHER/src ...]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sgdlab_train(src, out, iters):
    env = {**os.environ, "PYTHONPATH": str(src), "MPLBACKEND": "Agg"}
    return subprocess.Popen([sys.executable, "-m", "sgdlab", "train", "--eval-every", "1", "--iters", str(iters),
                             "--out", str(out), "--no-plot", "--quiet"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def whole_run(src, folder, iters):
    """(peak RSS in MB, seconds) of a run trained to the end."""
    started = time.perf_counter()
    process = sgdlab_train(src, folder / "whole", iters)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, f"sgdlab train exited with {process.returncode}"
    return usage.ru_maxrss / 1024, time.perf_counter() - started  # Linux gives kilobytes


def stopped_run(src, folder, iters, after):
    """(seconds from SIGTERM to exit, exit code, iterations trained) of a run sent SIGTERM `after` s in."""
    process = sgdlab_train(src, folder / "stopped", iters)
    try:
        process.wait(timeout=after)
        raise AssertionError("the run ended before the signal: give more --iters")
    except subprocess.TimeoutExpired:
        pass
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    code = process.wait()
    seconds = time.perf_counter() - sent
    history = json.loads((folder / "stopped" / "history.json").read_text())
    return seconds, code, len(history["loss"])


def main():
    import sgdlab

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--sigterm-after", type=float, default=10.0)
    parser.add_argument("--src", type=Path, action="append",
                        help="an sgdlab source folder (holding sgdlab/) to measure; repeat to compare")
    args = parser.parse_args()
    sources = args.src or [Path(sgdlab.__file__).parents[1]]
    results = []
    print(f"{'source':40} {'peak RSS':>9} {'whole run':>10} {'SIGTERM to exit':>16} {'stopped after':>14}")
    for src in sources:
        with tempfile.TemporaryDirectory() as folder:
            rss, seconds = whole_run(src, Path(folder), args.iters)
            stop_seconds, code, trained = stopped_run(src, Path(folder), args.iters * 100, args.sigterm_after)
        results.append({"src": str(src), "peak_rss_mb": round(rss, 1), "whole_run_s": round(seconds, 1),
                        "sigterm_to_exit_s": round(stop_seconds, 1), "exit_code": code, "iterations": trained})
        print(f"{str(src)[-40:]:40} {rss:7.0f} MB {seconds:8.1f} s {stop_seconds:14.1f} s "
              f"{trained:>8} iters")
    print(json.dumps({"benchmark": "eval_every_stop", "iters": args.iters, "sigterm_after": args.sigterm_after,
                      "results": results}))


if __name__ == "__main__":
    main()
