"""`sgdlab sweep --book` against the book's own ch06/hyperparameter_optimization.py, whole processes, side by side;
then where a trial's time goes.

The book's script runs unchanged, from a temporary copy of the book's repository assembled at run time (its
ch06/hyperparameter_optimization.py, common/ and dataset/, taken from a clone or mirror of
github.com/oreilly-japan/deep-learning-from-scratch: none of the book's code is part of sgdlab). MNIST's four
files are linked into the copy's dataset/ folder, so the book's dataset/mnist.py finds them where its download
would have put them; its own code converts them to its pickle once, before any timing. Headless (MPLBACKEND=Agg:
its plt.show() returns at once). The book's script and `sgdlab sweep --book` (every core, whole command) run
`--repeats` times each, alternated; the best wall time of each is kept. With `--one-core`, both run on the
first core alone (its affinity set before the process starts): the book's BLAS one thread
(OPENBLAS/OMP/MKL_NUM_THREADS=1), sgdlab one worker, which then evaluates in line. On a machine others
load, that is the fair comparison: a multithreaded BLAS that finds its second core busy spins, and the book's
script then takes many times its time.

Then, in this process on one core, one trial of the book's search as a sweep's worker trains it, and what each
thing a trial used to pay adds to it: the test set at every evaluation, a checkpoint at every evaluation, the
charts and report.

    python benchmarks/sweep_vs_book.py [--book-repo DIR] [--repeats 2] [--one-core] [--data-dir DIR]

Without the book's repository (`--book-repo`, default the mirror `fetch` brings) the comparison is skipped, saying so.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOOK_REPO = Path("/work/.mirror/oreilly-japan+deep-learning-from-scratch/repo")
BOOK_FILES = ("ch06/hyperparameter_optimization.py", "common", "dataset")
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")


def book_copy(repo, data_dir, scratch):
    """The book's files in `scratch/book`, with MNIST linked in and converted by the book's own code."""
    target = scratch / "book"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "HEAD", *BOOK_FILES], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for name in MNIST_FILES:
        (target / "dataset" / name).symlink_to(Path(data_dir).resolve() / name)
    subprocess.run([sys.executable, "mnist.py"], cwd=target / "dataset", check=True, capture_output=True)
    return target


def timed(command, cwd=None, env=None, one_core=False):
    """(wall seconds, stdout) of `command`, a whole process (on the first core alone, if `one_core`)."""
    pin = (lambda: os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])) if one_core else None
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, preexec_fn=pin)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed: {done.stderr[-2000:]}")
    return seconds, done.stdout


def book_best(stdout):
    match = re.search(r"Best-1\(val acc:([\d.]+)\) \| lr:([\d.e-]+), weight decay:([\d.e-]+)", stdout)
    return f"val acc {float(match[1]):.2f} at lr {float(match[2]):.2g}, weight decay {float(match[3]):.2g}"


def sgdlab_best(sweep_dir):
    rows = json.loads((sweep_dir / "results.json").read_text())["trials"]
    best = max((row for row in rows if row["status"] == "finished"), key=lambda row: (row["val_acc"], -row["trial"]))
    return (f"val acc {best['val_acc']:.2f} at lr {best['settings']['lr']:.2g}, weight decay "
            f"{best['settings']['weight_decay']:.2g} (trial {best['trial']})")


def side_by_side(repo, data_dir, repeats, scratch, one_core):
    book = book_copy(repo, data_dir, scratch)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    one_thread = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    book_env = {**env, **one_thread} if one_core else env
    workers = ["--workers", "1"] if one_core else []
    walls = {"book": [], "sgdlab": []}
    bests = {}
    for repeat in range(repeats):
        seconds, stdout = timed([sys.executable, "hyperparameter_optimization.py"], cwd=book / "ch06", env=book_env,
                                one_core=one_core)
        walls["book"].append(seconds)
        bests["book"] = book_best(stdout)
        print(f"  run {repeat + 1}: the book's script {seconds:.1f} s", flush=True)
        out = scratch / f"sweep-{repeat}"
        seconds, _ = timed([sys.executable, "-m", "sgdlab", "sweep", "--book", "--quiet", "--data-dir", data_dir,
                            "--out", out, *workers], env=env, one_core=one_core)
        walls["sgdlab"].append(seconds)
        bests["sgdlab"] = sgdlab_best(out)
        print(f"  run {repeat + 1}: sgdlab sweep --book {seconds:.1f} s", flush=True)
    cores = "one core each" if one_core else "every core"
    print(f"the book's search, 100 trials, whole processes on {cores}, best of {repeats} (alternated):")
    for name, label in (("book", "book's ch06/hyperparameter_optimization.py"), ("sgdlab", "sgdlab sweep --book")):
        print(f"  {label:42}: {min(walls[name]):6.1f} s ({', '.join(f'{s:.1f}' for s in walls[name])}); "
              f"best trial {bests[name]}")
    print(f"  sgdlab is {min(walls['book']) / min(walls['sgdlab']):.2f}x the book's speed (target 3x)")


def trial_costs(data_dir, repeats):
    """Seconds of one trial of the book's search on one core, as a worker trains it, and with what it used to pay."""
    from sgdlab.data import load_mnist
    from sgdlab.engine.threads import one_blas_thread
    from sgdlab.runs.run import train_run
    from sgdlab.runs.sweep import BOOK_SETTINGS, TRIAL_CHECKPOINT_EVERY, TRIAL_DEFAULTS
    from sgdlab.training.config import TrainConfig
    from sgdlab.training.trainer import Trainer

    (x_train, t_train), test = load_mnist(normalize=False, data_dir=data_dir)
    data = ((x_train[:500], t_train[:500]), test)  # what the worker holds
    trial = {**BOOK_SETTINGS, **TRIAL_DEFAULTS, "lr": 0.0082, "weight_decay": 2.3e-5, "seed": 1}
    scratch = Path(tempfile.mkdtemp(prefix="sgdlab-trial-"))
    cases = [
        ("training alone: 200 updates, no evaluation until the last", "fit", {"eval_every": 0}, {}),
        ("+ train and validation accuracy every epoch (Trainer.fit)", "fit", {}, {}),
        ("a trial as the sweep trains it (its run folder written)", "run",
         {}, {"checkpoint_every": TRIAL_CHECKPOINT_EVERY, "plot": False, "report": False}),
        ("  + the test set at every evaluation", "run",
         {"test_eval": "every"}, {"checkpoint_every": TRIAL_CHECKPOINT_EVERY, "plot": False, "report": False}),
        ("  + a checkpoint at every evaluation", "run", {"test_eval": "every"}, {"plot": False, "report": False}),
        ("  + charts and report: a trial as it was", "run", {"test_eval": "every"}, {}),
    ]
    print("one trial of the book's search on one core (best of "
          f"{repeats + 1}; the worker holds the data):")
    with one_blas_thread():
        for label, kind, settings, options in cases:
            config = TrainConfig(**{**trial, **settings})
            best = float("inf")
            for repeat in range(repeats + 1):
                started = time.perf_counter()
                if kind == "fit":
                    Trainer.from_config(config, background=False).fit(*data[0], *data[1])
                else:
                    out = scratch / f"{label[:12].strip()}-{settings}-{options}-{repeat}".replace(" ", "_")
                    train_run(config, out=out, data=data, background=False, **options)
                best = min(best, time.perf_counter() - started)
            print(f"  {label:60}: {best:.3f} s")
    shutil.rmtree(scratch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book-repo", type=Path, default=BOOK_REPO,
                        help="a clone or mirror of github.com/oreilly-japan/deep-learning-from-scratch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one-core", action="store_true", help="the book's BLAS on one thread, sgdlab on one worker")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("SGDLAB_DATA"))
    args = parser.parse_args()
    if args.data_dir is None:
        raise SystemExit("give --data-dir, the folder of MNIST's four .gz files (or set SGDLAB_DATA)")
    scratch = Path(tempfile.mkdtemp(prefix="sgdlab-vs-book-"))
    try:
        if (args.book_repo / "HEAD").exists() or (args.book_repo / ".git").exists():
            side_by_side(args.book_repo, args.data_dir, args.repeats, scratch, args.one_core)
        else:
            print(f"skipped the side-by-side comparison: no clone of the book's repository at {args.book_repo} "
                  "(give --book-repo)")
    finally:
        shutil.rmtree(scratch)
    trial_costs(args.data_dir, args.repeats)


if __name__ == "__main__":
    main()
