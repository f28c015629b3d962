"""The chapter-6 optimizer comparison in PyTorch on the CPU, written the way a PyTorch user would.

Run:  python benchmarks/torch_optimizer_compare.py [--iters N] [--data-dir DIR] [--child]

Four 784-100-100-100-100-10 ReLU nets from `nn.Sequential(Linear, ReLU, ...)`,
float32, He-normal weights (std sqrt(2 / fan_in)) and zero biases,
`CrossEntropyLoss` on the logits, trained by `torch.optim` SGD, SGD with
momentum, Adagrad and Adam with the book's hyperparameters. Every iteration
draws one batch of 128 (with replacement, as the book's `np.random.choice`)
and each net takes a step on it. The loss recorded is that of the step's own
forward pass, before the update (the book computes it again after the update).
MNIST comes from `sgdlab.load_mnist(normalize=True)`. Without `--child` it
prints the final losses (each the mean of the last 100 iterations); with it,
one JSON line for benchmarks/experiment_optimizers.py.
"""

import argparse
import json
import math
import time
from itertools import pairwise

import numpy as np
import torch
from torch import nn

BATCH_SIZE = 128
ITERS = 2000


def make_net():
    sizes = [784, 100, 100, 100, 100, 10]
    layers = []
    for fan_in, fan_out in pairwise(sizes):
        linear = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.normal_(0, math.sqrt(2.0 / fan_in))
            linear.bias.zero_()
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the output layer


def make_optimizers(nets):
    return {
        "SGD": torch.optim.SGD(nets["SGD"].parameters(), lr=0.01),
        # PyTorch keeps v = 0.9 v + g and steps p -= lr v; the book keeps v = 0.9 v - lr g and steps
        # p += v. Different in form, the same trajectory at a constant learning rate.
        "Momentum": torch.optim.SGD(nets["Momentum"].parameters(), lr=0.01, momentum=0.9),
        # The book's AdaGrad: h starts at 0, eps 1e-7 added to sqrt(h).
        "AdaGrad": torch.optim.Adagrad(nets["AdaGrad"].parameters(), lr=0.01, eps=1e-7,
                                       initial_accumulator_value=0),
        # PyTorch's defaults; its eps (1e-8) is added to the bias-corrected sqrt(v), the book's (1e-7)
        # to the uncorrected one.
        "Adam": torch.optim.Adam(nets["Adam"].parameters(), lr=0.001),
    }


def train(x_train, t_train, iters=ITERS, batch_size=BATCH_SIZE, seed=0):
    """x: float32 images in 0..1, t: integer labels (NumPy). Returns each optimizer's loss per iteration."""
    torch.manual_seed(seed)
    nets = {key: make_net() for key in ("SGD", "Momentum", "AdaGrad", "Adam")}
    optimizers = make_optimizers(nets)
    loss_fn = nn.CrossEntropyLoss()
    x_train_t = torch.from_numpy(x_train)
    t_train_t = torch.from_numpy(t_train.astype(np.int64))
    losses = {key: [] for key in nets}
    for _ in range(iters):
        batch = torch.randint(len(x_train_t), (batch_size,))
        x_batch, t_batch = x_train_t[batch], t_train_t[batch]
        for key, net in nets.items():
            loss = loss_fn(net(x_batch), t_batch)
            optimizers[key].zero_grad()
            loss.backward()
            optimizers[key].step()
            losses[key].append(loss.item())
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--iters", type=int, default=ITERS)
    parser.add_argument("--child", action="store_true", help="print one JSON line")
    args = parser.parse_args()

    from sgdlab import load_mnist

    (x_train, t_train), _ = load_mnist(normalize=True, data_dir=args.data_dir)
    started = time.perf_counter()
    losses = train(x_train, t_train, iters=args.iters)
    seconds = time.perf_counter() - started
    final_loss = {key: float(np.mean(values[-100:])) for key, values in losses.items()}  # as sgdlab's summary
    if args.child:
        print(json.dumps({"seconds": seconds, "final_loss": final_loss}))
    else:
        print(f"{args.iters} iterations in {seconds:.1f} s; final losses: "
              + ", ".join(f"{key} {loss:.4f}" for key, loss in final_loss.items()))


if __name__ == "__main__":
    main()
