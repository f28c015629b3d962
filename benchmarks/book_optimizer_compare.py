"""The chapter-6 optimizer comparison as the book writes it (ch06/optimizer_compare_mnist.py), in plain NumPy.

Run:  python benchmarks/book_optimizer_compare.py [--iters N] [--data-dir DIR] [--child]

Book style on purpose, since this is what sgdlab is timed against: the
784-100-100-100-100-10 ReLU MultiLayerNet built from Affine/Relu layer objects
in an OrderedDict, float64 He-initialised weights drawn from NumPy's global
RNG, the book's SoftmaxWithLoss (softmax, then cross-entropy with its 1e-7),
the weight-decay term computed with lambda 0, and the four optimizers of
common/optimizer.py. Every iteration draws one batch of 128 with
`np.random.choice`; each network takes its gradient and update on it, then
its loss is computed again on the same batch and recorded, as the book does.

MNIST comes from `sgdlab.load_mnist(normalize=True)`, which gives what the
book's loader gives: float32 pixels in 0..1 and integer labels. Left out:
the loss chart at the end. Without `--child` the script prints the losses
every 100 iterations like the book's; with it, one JSON line (training
seconds and each optimizer's final loss, the mean of its last 100 iterations)
for benchmarks/experiment_optimizers.py.
"""

import argparse
import json
import time
from collections import OrderedDict

import numpy as np
from book_baseline import (  # the chapter's functions, as the book writes them
    cross_entropy_error,
    softmax,
)

BATCH_SIZE = 128
ITERS = 2000


class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class Affine:
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:  # one-hot targets
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class MultiLayerNet:
    """The book's fully connected net with ReLU and He initialisation ('relu'), the parts this script uses."""

    def __init__(self, input_size, hidden_size_list, output_size, weight_decay_lambda=0):
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.params = {}
        sizes = [input_size] + hidden_size_list + [output_size]
        for idx in range(1, len(sizes)):
            scale = np.sqrt(2.0 / sizes[idx - 1])
            self.params["W" + str(idx)] = scale * np.random.randn(sizes[idx - 1], sizes[idx])
            self.params["b" + str(idx)] = np.zeros(sizes[idx])

        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers["Affine" + str(idx)] = Affine(self.params["W" + str(idx)], self.params["b" + str(idx)])
            self.layers["Activation_function" + str(idx)] = Relu()
        idx = self.hidden_layer_num + 1
        self.layers["Affine" + str(idx)] = Affine(self.params["W" + str(idx)], self.params["b" + str(idx)])
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x)
        weight_decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params["W" + str(idx)]
            weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)
        return self.last_layer.forward(y, t) + weight_decay

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            grads["W" + str(idx)] = self.layers["Affine" + str(idx)].dW
            grads["b" + str(idx)] = self.layers["Affine" + str(idx)].db
        return grads


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class AdaGrad:
    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


def train(x_train, t_train, iters=ITERS, batch_size=BATCH_SIZE, seed=0, verbose=False):
    """The book's loop; returns each optimizer's loss after every iteration's update."""
    np.random.seed(seed)
    optimizers = {"SGD": SGD(), "Momentum": Momentum(), "AdaGrad": AdaGrad(), "Adam": Adam()}
    networks = {key: MultiLayerNet(784, [100, 100, 100, 100], 10) for key in optimizers}
    train_loss = {key: [] for key in optimizers}
    train_size = x_train.shape[0]

    for i in range(iters):
        batch_mask = np.random.choice(train_size, batch_size)
        x_batch = x_train[batch_mask]
        t_batch = t_train[batch_mask]
        for key, optimizer in optimizers.items():
            grads = networks[key].gradient(x_batch, t_batch)
            optimizer.update(networks[key].params, grads)
            train_loss[key].append(networks[key].loss(x_batch, t_batch))
        if verbose and i % 100 == 0:
            print("===========" + "iteration:" + str(i) + "===========")
            for key in optimizers:
                print(key + ":" + str(networks[key].loss(x_batch, t_batch)))
    return train_loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--iters", type=int, default=ITERS)
    parser.add_argument("--child", action="store_true", help="print one JSON line instead of the book's output")
    args = parser.parse_args()

    from sgdlab import load_mnist

    (x_train, t_train), _ = load_mnist(normalize=True, data_dir=args.data_dir)
    started = time.perf_counter()
    train_loss = train(x_train, t_train, iters=args.iters, verbose=not args.child)
    seconds = time.perf_counter() - started
    final_loss = {key: float(np.mean(losses[-100:])) for key, losses in train_loss.items()}  # as sgdlab's summary
    if args.child:
        print(json.dumps({"seconds": seconds, "final_loss": final_loss}))
    else:
        print(f"{args.iters} iterations in {seconds:.1f} s; final losses: "
              + ", ".join(f"{key} {loss:.4f}" for key, loss in final_loss.items()))


if __name__ == "__main__":
    main()
