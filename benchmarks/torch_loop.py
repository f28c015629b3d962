"""The same loop in PyTorch on the CPU, written the way a PyTorch user would.

784-50-10 sigmoid net from `nn.Linear`, cross-entropy on the logits,
`torch.optim.SGD`, random batches of 100, and accuracy on the whole training
and test sets in one pass each under `torch.no_grad()`.
"""

import numpy as np
import torch
from torch import nn


def warm_up():
    """Pay PyTorch's one-time costs (the optimizer's first construction imports more of torch) untimed."""
    torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)


def train(x_train, t_train, x_test, t_test, evaluate_at, seed=0, iters=10_000, batch_size=100, lr=0.1):
    """x: float32 images in 0..1, t: integer labels (NumPy). Returns (losses, train_accs, test_accs)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(784, 50), nn.Sigmoid(), nn.Linear(50, 10))
    with torch.no_grad():  # the book's initialisation: N(0, 0.01^2) weights, zero biases
        for layer in (model[0], model[2]):
            layer.weight.normal_(0, 0.01)
            layer.bias.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    x_train_t, t_train_t = torch.from_numpy(x_train), torch.from_numpy(t_train.astype(np.int64))
    x_test_t, t_test_t = torch.from_numpy(x_test), torch.from_numpy(t_test.astype(np.int64))
    losses, train_accs, test_accs = [], [], []

    def evaluate():
        with torch.no_grad():
            train_accs.append((model(x_train_t).argmax(1) == t_train_t).float().mean().item())
            test_accs.append((model(x_test_t).argmax(1) == t_test_t).float().mean().item())

    for i in range(iters):
        if i in evaluate_at:
            evaluate()
        batch = torch.from_numpy(rng.integers(0, len(x_train), batch_size))
        loss = loss_fn(model(x_train_t[batch]), t_train_t[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if iters in evaluate_at:
        evaluate()
    return losses, train_accs, test_accs
