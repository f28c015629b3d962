"""What `--augment` costs an iteration: one batch of 100 MNIST images shifted, rotated and scaled, beside one
training step of chapter 4's 784-50-10 net and of chapter 7's SimpleConvNet, round-robin in the same process
on one BLAS thread (as training runs), each the median of many.

    python benchmarks/augmentation.py [--repeats 200]
"""

import argparse
import statistics
import time

import numpy as np

from sgdlab.data.augment import Augmenter
from sgdlab.engine.backprop import BackpropStep
from sgdlab.engine.threads import one_blas_thread
from sgdlab.training.config import AUGMENT_DEFAULTS, TrainConfig

BATCH = 100


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = rng.random((BATCH, 784)).astype(np.float32)
    labels = rng.integers(0, 10, BATCH)
    augment = Augmenter((1, 28, 28), *AUGMENT_DEFAULTS.values(), np.random.default_rng(1))
    steps = {}
    for net in ("mlp", "simple-convnet"):
        network = TrainConfig(net=net).make_network((1, 28, 28), 10, rng=0)
        steps[net] = (lambda step: lambda: step(rows, labels))(BackpropStep(network, BATCH))
    work = {"augment a batch": lambda: augment(rows), **{f"{net} step": step for net, step in steps.items()}}
    seconds = {name: [] for name in work}
    with one_blas_thread():
        for name, function in work.items():  # warm up
            function()
        for _ in range(args.repeats):
            for name, function in work.items():
                seconds[name].append(timed(function))
    median = {name: statistics.median(values) * 1e3 for name, values in seconds.items()}
    for name, ms in median.items():
        print(f"{name:>20}: {ms:7.2f} ms")
    for net in steps:
        print(f"augmentation / {net} step: {median['augment a batch'] / median[f'{net} step']:.2f}")


if __name__ == "__main__":
    main()
