"""The chapter-6 random search of learning rate and weight decay as the book writes it (ch06/hyperparameter_optimization.py).

Run:  python benchmarks/book_hyperparameter_search.py [--trials N] [--seed S] [--data-dir DIR] [--child]

Book style on purpose, since this is what sgdlab is timed against: the first
500 training images, shuffled by the book's shuffle_dataset, the first 100 of
them held out for validation; every trial draws weight decay 10**U(-8, -4),
then lr 10**U(-6, -2), from NumPy's global RNG (seeded by --seed, which the
book leaves unseeded) and trains a fresh 784-[100]*6-10 ReLU MultiLayerNet,
He-initialised in float64, with SGD through the book's common/trainer.py
Trainer: batches of 100 drawn with `np.random.choice`, 50 epochs of 4
iterations, the loss computed again after each update and recorded, train and
validation accuracy on the whole sets every 4th iteration, counting from the
first (so the last 3 updates are never evaluated), and a last, unused
accuracy on the validation set, all as the book's Trainer does with verbose
off. The best 20 by final validation accuracy are printed.

Layers, the network and SGD come from book_optimizer_compare.py; the weight
decay's gradient and accuracy, which that script does not use, are added
here. Left out: the chart of the best 20 at the end. Without `--child` the
script prints what the book's prints, then the time of the trials (data
loading excluded); with it, one JSON line (seconds, seconds per trial, the
best trial's validation accuracy, lr and weight decay).
"""

import argparse
import json
import time

import book_optimizer_compare
import numpy as np
from book_optimizer_compare import SGD

TRIALS = 100
TRAIN_NUM = 500  # the book trims the training set to get results quickly
VALIDATION_RATE = 0.20
EPOCHS = 50
BATCH_SIZE = 100
BEST_NUM = 20


class MultiLayerNet(book_optimizer_compare.MultiLayerNet):
    """The book's MultiLayerNet, with the weight-decay gradient and the accuracy of common/multi_layer_net.py."""

    def accuracy(self, x, t):  # integer labels here, so the book's one-hot branch is left out
        y = self.predict(x)
        y = np.argmax(y, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def gradient(self, x, t):
        grads = super().gradient(x, t)
        for idx in range(1, self.hidden_layer_num + 2):
            affine = self.layers["Affine" + str(idx)]
            grads["W" + str(idx)] = affine.dW + self.weight_decay_lambda * affine.W
        return grads


class Trainer:
    """The book's common/trainer.py as this script runs it: SGD, whole-set evaluation, verbose off."""

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100, lr=0.01):
        self.network = network
        self.x_train = x_train
        self.t_train = t_train
        self.x_test = x_test
        self.t_test = t_test
        self.batch_size = mini_batch_size
        self.optimizer = SGD(lr=lr)

        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)  # a float, as in the book
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0

        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []

    def train_step(self):
        batch_mask = np.random.choice(self.train_size, self.batch_size)
        x_batch = self.x_train[batch_mask]
        t_batch = self.t_train[batch_mask]

        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)

        loss = self.network.loss(x_batch, t_batch)
        self.train_loss_list.append(loss)

        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1
            self.train_acc_list.append(self.network.accuracy(self.x_train, self.t_train))
            self.test_acc_list.append(self.network.accuracy(self.x_test, self.t_test))
        self.current_iter += 1

    def train(self):
        for _ in range(self.max_iter):
            self.train_step()
        self.network.accuracy(self.x_test, self.t_test)  # the final test accuracy, only printed when verbose


def shuffle_dataset(x, t):
    """The book's common/util.py function (its 4-D branch indexes the same way, so one form serves both)."""
    permutation = np.random.permutation(x.shape[0])
    return x[permutation], t[permutation]


def train_trial(lr, weight_decay, x_train, t_train, x_val, t_val, epochs=EPOCHS):
    """The book's __train: one fresh network; returns (val_acc_list, train_acc_list)."""
    network = MultiLayerNet(784, [100, 100, 100, 100, 100, 100], 10, weight_decay_lambda=weight_decay)
    trainer = Trainer(network, x_train, t_train, x_val, t_val, epochs=epochs, mini_batch_size=BATCH_SIZE, lr=lr)
    trainer.train()
    return trainer.test_acc_list, trainer.train_acc_list


def search(x_train, t_train, trials=TRIALS, seed=0, verbose=False):
    """The book's script from the trimming on; returns results_val and results_train, keyed by the book's string."""
    np.random.seed(seed)
    x_train = x_train[:TRAIN_NUM]
    t_train = t_train[:TRAIN_NUM]

    validation_num = int(x_train.shape[0] * VALIDATION_RATE)
    x_train, t_train = shuffle_dataset(x_train, t_train)
    x_val = x_train[:validation_num]
    t_val = t_train[:validation_num]
    x_train = x_train[validation_num:]
    t_train = t_train[validation_num:]

    results_val = {}
    results_train = {}
    for _ in range(trials):
        weight_decay = 10 ** np.random.uniform(-8, -4)
        lr = 10 ** np.random.uniform(-6, -2)
        val_acc_list, train_acc_list = train_trial(lr, weight_decay, x_train, t_train, x_val, t_val)
        if verbose:
            print("val acc:" + str(val_acc_list[-1]) + " | lr:" + str(lr) + ", weight decay:" + str(weight_decay))
        key = "lr:" + str(lr) + ", weight decay:" + str(weight_decay)
        results_val[key] = val_acc_list
        results_train[key] = train_acc_list
    return results_val, results_train


def ranked(results_val):
    """(key, val_acc_list) pairs, best final validation accuracy first; ties keep the trials' order, as the book's."""
    return sorted(results_val.items(), key=lambda x: x[1][-1], reverse=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help="print one JSON line instead of the book's output")
    args = parser.parse_args()

    from sgdlab import load_mnist

    (x_train, t_train), _ = load_mnist(normalize=True, data_dir=args.data_dir)
    started = time.perf_counter()
    results_val, _ = search(x_train, t_train, trials=args.trials, seed=args.seed, verbose=not args.child)
    seconds = time.perf_counter() - started
    best = ranked(results_val)
    if args.child:
        key, val_acc_list = best[0]
        lr, weight_decay = (float(part.split(":")[1]) for part in key.split(", "))
        print(json.dumps({"seconds": seconds, "seconds_per_trial": seconds / args.trials,
                          "best": {"val_acc": float(val_acc_list[-1]), "lr": lr, "weight_decay": weight_decay}}))
    else:
        print("=========== Hyper-Parameter Optimization Result ===========")
        for i, (key, val_acc_list) in enumerate(best[:BEST_NUM]):
            print("Best-" + str(i + 1) + "(val acc:" + str(val_acc_list[-1]) + ") | " + key)
        print(f"{args.trials} trials in {seconds:.1f} s ({seconds / args.trials:.3f} s per trial)")


if __name__ == "__main__":
    main()
