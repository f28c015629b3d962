"""Chapter 8's DeepConvNet: one training iteration's CPU time in sgdlab and in PyTorch, on one thread each.

Run:  python benchmarks/deep_convnet_cpu.py [--data-dir DIR] [--rounds 9] [--iters 5] [--warmup 3] [--no-layers]

On a machine shared with other work, wall time says more about the other
work than about the code; the CPU time a process spends on one thread is
what a quiet machine would also spend, give or take the caches the other
processes share. So both contenders run in this one process, one thread
each (NumPy's and SciPy's OpenBLAS limited to one by sgdlab's `one_blas_thread`,
`torch.set_num_threads(1)`),
alternating: each round times `--iters` iterations of sgdlab, then of
PyTorch, with `time.process_time`, on the same random MNIST batches of 100.
The figures are the best and the median round, in ms per iteration. sgdlab's
iteration is its training step (`BackpropStep`, float32, the book's net as
`TrainConfig(net="deep-convnet")` builds it) and Adam's update; PyTorch's is
`torch_convnet.Training.step` (the same net, Adam, cross-entropy).

sgdlab's step runs the leading layers on two halves of the batch, the second
on a worker thread where there is a second core: the process is held to one
core (`one_core`), so that the halves run one after the other, as PyTorch's
one thread does its work, and the CPU time of the two at once (which shared
caches make larger) is not what is compared. Then, unless `--no-layers`, where sgdlab's
iteration goes: each layer's `forward_into` and `backward_into` timed with
the CPU clock of the thread that runs it (`time.thread_time`), summed over
the halves, best of the rounds; and PyTorch's operators by its profiler.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from convnet import BOOK, SEED, TimedLayer, load, non_negative_int, positive_int

cpu = time.process_time


def one_core():
    """Hold this process, every thread it has and every thread it starts, to one core (Linux)."""
    core = min(os.sched_getaffinity(0))
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), {core})


def sgdlab_iteration(x_train, t_train):
    """A function that runs one of sgdlab's training iterations on a random batch, and the step it runs."""
    from deep_convnet import sgdlab_trainer
    from sgdlab.data.scaling import to_float
    from sgdlab.engine.backprop import BackpropStep

    trainer, _ = sgdlab_trainer(iters=1)
    network, optimizer = trainer.network, trainer.optimizer
    step = BackpropStep(network, BOOK["batch_size"])
    rng = np.random.default_rng(SEED)
    x = np.empty((BOOK["batch_size"], x_train[0].size), network.dtype)
    labels = t_train.astype(np.intp)

    def iteration():
        batch = rng.integers(0, len(x_train), BOOK["batch_size"])
        to_float(x_train[batch].reshape(len(batch), -1), x)
        _, grads = step(x, labels[batch])
        optimizer.update(network.params, grads)

    return iteration, step


def pytorch_iteration(data):
    import torch_convnet

    torch_convnet.setup(SEED)
    torch_convnet.torch.set_num_threads(1)
    (x_train, t_train), (x_test, t_test) = data
    training = torch_convnet.Training(x_train, t_train, x_test, t_test, SEED, BOOK["batch_size"], BOOK["lr"],
                                      model=torch_convnet.deep_convnet())
    return training.step, training


def timed_rounds(contenders, rounds, iters):
    """{name: [ms per iteration, one per round]}, the contenders alternating within each round."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, iteration in contenders.items():
            started = cpu()
            for _ in range(iters):
                iteration()
            times[name].append((cpu() - started) / iters * 1000)
    return times


def layer_profile(iteration, step, rounds, iters):
    """Each layer's forward and backward CPU ms per iteration (best round), and the rest of the iteration."""
    timed = [TimedLayer(layer, clock=time.thread_time) for layer in step.layers]
    step.layers = timed
    best, whole = None, None
    for _ in range(rounds):
        for layer in timed:
            layer.forward_s = layer.backward_s = 0.0
        started = cpu()
        for _ in range(iters):
            iteration()
        total = (cpu() - started) / iters * 1000
        rows = [(repr(layer.layer), layer.forward_s / iters * 1000, layer.backward_s / iters * 1000) for layer in timed]
        if whole is None or total < whole:
            best, whole = rows, total
    step.layers = [layer.layer for layer in timed]
    return best, whole


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the folder holding MNIST (default: $SGDLAB_DATA, else the download cache)")
    parser.add_argument("--rounds", type=positive_int, default=9, help="rounds, each contender timed once in each")
    parser.add_argument("--iters", type=positive_int, default=5, help="iterations per contender per round")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed iterations of each first")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer and per-operator profiles")
    args = parser.parse_args(argv)

    from sgdlab.engine.threads import one_blas_thread

    one_core()

    sgdlab_data = load(args.data_dir, normalize=False)  # uint8 rows, as sgdlab train loads them
    torch_data = load(args.data_dir, normalize=True, flatten=False)
    with one_blas_thread():  # NumPy's and SciPy's BLAS
        sgdlab_step, step = sgdlab_iteration(*sgdlab_data[0])
        torch_step, training = pytorch_iteration(torch_data)
        contenders = {"sgdlab": sgdlab_step, "pytorch": torch_step}
        for iteration in contenders.values():
            for _ in range(args.warmup):
                iteration()
        load_before = os.getloadavg()[0]
        times = timed_rounds(contenders, args.rounds, args.iters)
        load_after = os.getloadavg()[0]
        summary = {name: {"best_ms": min(ms), "median_ms": statistics.median(ms), "rounds_ms": [round(t, 1) for t in ms]}
                   for name, ms in times.items()}
        ratio = summary["pytorch"]["best_ms"] / summary["sgdlab"]["best_ms"]
        print(f"DeepConvNet, one training iteration (batch 100, float32, Adam), CPU time on one thread, "
              f"{args.rounds} rounds of {args.iters} iterations, alternating; load average {load_before:.1f} "
              f"before, {load_after:.1f} after")
        print("| contender | best ms | median ms |")
        print("| --- | --- | --- |")
        for name, figures in summary.items():
            print(f"| {name} | {figures['best_ms']:.1f} | {figures['median_ms']:.1f} |")
        print(f"sgdlab's speed / PyTorch's (best rounds): {ratio:.2f} (above 1: sgdlab faster)")
        if not args.no_layers:
            rows, whole = layer_profile(sgdlab_step, step, args.rounds, args.iters)
            print(f"\nsgdlab, where an iteration's CPU time goes (best of {args.rounds} rounds: {whole:.1f} ms):")
            print("| layer | forward ms | backward ms |")
            print("| --- | --- | --- |")
            for name, forward_ms, backward_ms in rows:
                print(f"| {name} | {forward_ms:.2f} | {backward_ms:.2f} |")
            layers_ms = sum(f + b for _, f, b in rows)
            print(f"layers {layers_ms:.1f} ms; the rest (the batch, the loss, the halves' gradients added, Adam) "
                  f"{whole - layers_ms:.1f} ms")
            from convnet import torch_profile

            print("\nPyTorch's operators, one thread:")
            print(torch_profile(training, args.iters * 2, 0))
        summary["load_1min"] = [load_before, load_after]
        summary["pytorch_over_sgdlab"] = ratio
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
