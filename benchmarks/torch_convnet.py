"""Chapter 7's SimpleConvNet and chapter 8's DeepConvNet in PyTorch on the CPU, written the way a PyTorch user would.

SimpleConvNet: conv 30 filters 5x5 - ReLU - max pool 2x2 stride 2 - affine
100 - ReLU - affine 10, the book's initialisation (weights ~ N(0, 0.01^2),
zero biases). DeepConvNet: the book's six 3x3 convolutions (16, 16, 32, 32
padded by 2, 64, 64 filters) in three conv-ReLU-conv-ReLU-pool blocks, affine
50 - ReLU - dropout 0.5 - affine 10 - dropout 0.5, He weights (std
sqrt(2 / fan-in)) and zero biases, as the book's. Both float32,
cross-entropy on the logits, `torch.optim.Adam(lr=0.001)` (which
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


def deep_convnet(hidden_size=50, output_size=10):
    """The book's DeepConvNet (ch08/deep_convnet.py), both its dropouts included (PyTorch's scale the kept units
    in training rather than the outputs at test time: the same expected values)."""
    def block(channels, first, second, second_pad=1):
        return [nn.Conv2d(channels, first, 3, padding=1), nn.ReLU(), nn.Conv2d(first, second, 3, padding=second_pad),
                nn.ReLU(), nn.MaxPool2d(2, 2)]

    model = nn.Sequential(*block(1, 16, 16), *block(16, 32, 32, second_pad=2), *block(32, 64, 64), nn.Flatten(),
                          nn.Linear(64 * 4 * 4, hidden_size), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(hidden_size, output_size), nn.Dropout(0.5))
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                fan_in = layer.weight[0].numel()
                layer.weight.normal_(0, (2.0 / fan_in) ** 0.5)
                layer.bias.zero_()
    return model


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

    def __init__(self, x_train, t_train, x_test, t_test, seed=0, batch_size=100, lr=0.001, model=None):
        """x: float32 images (N, 1, 28, 28) in 0..1, t: integer labels (NumPy); `model` SimpleConvNet's by default."""
        self.model = model if model is not None else simple_convnet()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()
        self.rng = np.random.default_rng(seed)
        self.batch_size = batch_size
        self.x_train, self.t_train = torch.from_numpy(x_train), torch.from_numpy(t_train.astype(np.int64))
        self.x_test, self.t_test = torch.from_numpy(x_test), torch.from_numpy(t_test.astype(np.int64))
        self.losses = []

    def step(self):
        self.model.train()
        batch = torch.from_numpy(self.rng.integers(0, len(self.x_train), self.batch_size))
        loss = self.loss_fn(self.model(self.x_train[batch]), self.t_train[batch])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.losses.append(loss.item())

    def accuracy(self, x, t):
        correct = 0
        self.model.eval()
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
