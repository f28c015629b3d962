"""The chapter-4 training loop as the book writes it, in plain NumPy: the baseline sgdlab is timed against.

Book style on purpose: float64 weights, a fresh array for every operation,
backpropagation through the layer formulas written out, one-hot targets,
the loss recomputed by a second forward pass after each update, and
accuracy on the whole training and test sets in one pass each.

`train(x_train, t_train, x_test, t_test, evaluate_at, seed)` takes float32
images in 0..1 and one-hot float32 targets, as the book's load_mnist gives.
"""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


class BookTwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, rng, weight_init_std=0.01):
        self.params = {
            "W1": weight_init_std * rng.standard_normal((input_size, hidden_size)),
            "b1": np.zeros(hidden_size),
            "W2": weight_init_std * rng.standard_normal((hidden_size, output_size)),
            "b2": np.zeros(output_size),
        }

    def predict(self, x):
        a1 = np.dot(x, self.params["W1"]) + self.params["b1"]
        z1 = sigmoid(a1)
        a2 = np.dot(z1, self.params["W2"]) + self.params["b2"]
        return softmax(a2)

    def loss(self, x, t):
        return cross_entropy_error(self.predict(x), t)

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        return np.sum(y == np.argmax(t, axis=1)) / float(x.shape[0])

    def gradient(self, x, t):
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]
        batch_num = x.shape[0]

        a1 = np.dot(x, W1) + b1
        z1 = sigmoid(a1)
        a2 = np.dot(z1, W2) + b2
        y = softmax(a2)

        dy = (y - t) / batch_num
        grads = {"W2": np.dot(z1.T, dy), "b2": np.sum(dy, axis=0)}
        dz1 = np.dot(dy, W2.T)
        da1 = (1.0 - sigmoid(a1)) * sigmoid(a1) * dz1
        grads["W1"] = np.dot(x.T, da1)
        grads["b1"] = np.sum(da1, axis=0)
        grads["dx"] = np.dot(da1, W1.T)  # the layer-by-layer backward pass computes it too
        return grads


def train(x_train, t_train, x_test, t_test, evaluate_at, seed=0, iters=10_000, batch_size=100, lr=0.1):
    """The loop; returns (train_loss_list, train_acc_list, test_acc_list)."""
    rng = np.random.default_rng(seed)
    network = BookTwoLayerNet(784, 50, 10, rng)
    train_size = x_train.shape[0]
    train_loss_list, train_acc_list, test_acc_list = [], [], []

    def evaluate():
        train_acc_list.append(network.accuracy(x_train, t_train))
        test_acc_list.append(network.accuracy(x_test, t_test))

    for i in range(iters):
        if i in evaluate_at:
            evaluate()
        batch_mask = rng.choice(train_size, batch_size)
        x_batch = x_train[batch_mask]
        t_batch = t_train[batch_mask]
        grad = network.gradient(x_batch, t_batch)
        for key in ("W1", "b1", "W2", "b2"):
            network.params[key] -= lr * grad[key]
        train_loss_list.append(network.loss(x_batch, t_batch))
    if iters in evaluate_at:
        evaluate()
    return train_loss_list, train_acc_list, test_acc_list
