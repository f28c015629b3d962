"""Chapter 7's SimpleConvNet in PyTorch on the CPU, written the way a PyTorch user would.

conv 30 filters 5x5 - ReLU - max pool 2x2 stride 2 - affine 100 - ReLU -
affine 10, float32, the book's initialisation (weights ~ N(0, 0.01^2), zero
biases), cross-entropy on the logits, `torch.optim.Adam(lr=0.001)` (which
adds its eps to the bias-corrected root, where the book's Adam adds 1e-7 to
the raw one), random batches of 100, two threads, and accuracy on whole sets
under `torch.inference_mode()` in chunks of 1000 images.
"""

import numpy as np
import torch
from torch import nn

THREADS = 2
EVAL_CHUNK = 1000  # a whole set at once would hold 60000 x 30 x 24 x 24 floats (4 GB) of feature maps


def setup(seed=0):
    """Two threads; PyTorch's one-time costs (the optimizer's first construction imports more of torch) paid
    untimed."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=0.001)


def simple_convnet(filter_num=30, filter_size=5, hidden_size=100, output_size=10, weight_init_std=0.01):
    pooled = filter_num * ((28 - filter_size + 1) // 2) ** 2
    model = nn.Sequential(nn.Conv2d(1, filter_num, filter_size), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                          nn.Linear(pooled, hidden_size), nn.ReLU(), nn.Linear(hidden_size, output_size))
    with torch.no_grad():
        for layer in (model[0], model[4], model[6]):
            layer.weight.normal_(0, weight_init_std)
            layer.bias.zero_()
    return model


class Training:
    """The model, Adam and the data as tensors; `step()` trains on one random batch, `evaluate()` measures
    accuracy on the whole training and test sets."""

    def __init__(self, x_train, t_train, x_test, t_test, seed=0, batch_size=100, lr=0.001):
        """x: float32 images (N, 1, 28, 28) in 0..1, t: integer labels (NumPy)."""
        self.model = simple_convnet()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()
        self.rng = np.random.default_rng(seed)
        self.batch_size = batch_size
        self.x_train, self.t_train = torch.from_numpy(x_train), torch.from_numpy(t_train.astype(np.int64))
        self.x_test, self.t_test = torch.from_numpy(x_test), torch.from_numpy(t_test.astype(np.int64))
        self.losses = []

    def step(self):
        batch = torch.from_numpy(self.rng.integers(0, len(self.x_train), self.batch_size))
        loss = self.loss_fn(self.model(self.x_train[batch]), self.t_train[batch])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.losses.append(loss.item())

    def accuracy(self, x, t):
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(x), EVAL_CHUNK):
                predicted = self.model(x[start:start + EVAL_CHUNK]).argmax(1)
                correct += (predicted == t[start:start + EVAL_CHUNK]).sum().item()
        return correct / len(x)

    def evaluate(self):
        """(train accuracy, test accuracy)."""
        return self.accuracy(self.x_train, self.t_train), self.accuracy(self.x_test, self.t_test)

    def train(self, epochs):
        """`epochs` passes of random batches, the accuracies measured after each; returns the test accuracies."""
        per_epoch = len(self.x_train) // self.batch_size
        test_accs = []
        for _ in range(epochs):
            for _ in range(per_epoch):
                self.step()
            test_accs.append(self.evaluate()[1])
        return test_accs
