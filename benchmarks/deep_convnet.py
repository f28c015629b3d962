"""Chapter 8's DeepConvNet trained by the book's code, by PyTorch and by sgdlab, side by side.

Run:  python benchmarks/deep_convnet.py [--data-dir DIR] [--repeats N] [--iters N] [--epochs 20 --full] [--profile]

The book's configuration (ch08/deep_convnet.py, train_deepnet.py): six 3x3
convolutions of 16, 16, 32, 32 (padded by 2), 64 and 64 filters in three
conv-ReLU-conv-ReLU-max-pool blocks, affine 50 - ReLU - dropout 0.5 - affine
10 - dropout 0.5 - softmax, He initial weights, batch 100, Adam at lr 0.001,
20 epochs of 600 iterations, the accuracy measured after every epoch. PyTorch
and sgdlab evaluate the whole training and test sets (70000 images); the
book's code, whose evaluation of 70000 images takes minutes, evaluates the
first 1000 of each (train_deepnet.py's own evaluate_sample_num_per_epoch),
and its evaluation time is scaled to 70000 images, saying so.

The machinery is benchmarks/convnet.py's (chapter 7's SimpleConvNet): each
contender in a fresh process, repeats round-robin, a short window timed and
the 20-epoch run extrapolated from it (`--full` trains it), `--profile` for
where one iteration goes. sgdlab's contender is `TrainConfig(net="deep-convnet")`
where sgdlab has it, else the same net built as a general `ConvNet`
(without the dropout after the output layer, which ConvNet cannot place),
trained by the same Trainer, saying so.
"""

import time

import numpy as np

import convnet
from convnet import BOOK, SEED, TEST_SIZE, TRAIN_SIZE, load, measure_window

BOOK_EVAL_IMAGES = 1000  # of each set, as train_deepnet.py evaluates


def book_child(mode, data_dir, iters, warmup, epochs):
    import book_deep_convnet as book

    (x_train, t_train), (x_test, t_test) = load(data_dir, normalize=True, flatten=False)  # as the book loads it
    np.random.seed(SEED)
    network = book.DeepConvNet()
    trainer = book.Trainer(network, x_train, t_train, x_test, t_test, epochs=epochs,
                           mini_batch_size=BOOK["batch_size"], optimizer_param={"lr": BOOK["lr"]},
                           evaluate_sample_num_per_epoch=BOOK_EVAL_IMAGES)
    dtype = str(network.params["W1"].dtype)
    if mode == "full":
        started = time.perf_counter()
        test_acc = trainer.train()
        return {"seconds": time.perf_counter() - started, "test_acc": float(test_acc),
                "evaluations": len(trainer.test_acc_list), "dtype": dtype}
    result = measure_window(trainer.update, lambda: convnet._book_evaluation(trainer), iters, warmup, dtype=dtype)
    result["eval_s"] *= (TRAIN_SIZE + TEST_SIZE) / (2 * BOOK_EVAL_IMAGES)  # scaled to the whole sets
    return result


def pytorch_child(mode, data_dir, iters, warmup, epochs):
    return convnet.pytorch_child(mode, data_dir, iters, warmup, epochs, model="deep_convnet")


# The book's DeepConvNet as a general ConvNet's layers (its output affine layer appended by ConvNet)
def _conv(filters, pad=1):
    return {"type": "convolution", "filter_num": filters, "filter_size": 3, "stride": 1, "pad": pad}


_POOL, _RELU = {"type": "pooling", "pool_size": 2, "stride": 2, "pad": 0}, {"type": "relu"}
DEEP_CONVNET_LAYERS = [_conv(16), _RELU, _conv(16), _RELU, _POOL, _conv(32), _RELU, _conv(32, pad=2), _RELU, _POOL,
                       _conv(64), _RELU, _conv(64), _RELU, _POOL, {"type": "affine", "output_size": 50}, _RELU,
                       {"type": "dropout", "ratio": 0.5}]


def sgdlab_trainer(iters=None, epochs=None):
    """sgdlab's trainer of the book's chapter-8 run, float32 as sgdlab trains by default: TrainConfig(net=
    "deep-convnet") where sgdlab has it, else the same net as a ConvNet with chapter 7's settings (Adam at
    0.001, batch 100), which are chapter 8's."""
    import sgdlab
    from sgdlab import TrainConfig, Trainer
    from sgdlab.training.config import NETS

    settings = {"iters": iters, "epochs": epochs, "eval_every": 0 if iters else None, "seed": SEED}
    if "deep-convnet" in NETS:
        return Trainer.from_config(TrainConfig(net="deep-convnet", **settings)), "TrainConfig(net='deep-convnet')"
    config = TrainConfig(net="simple-convnet", **settings)
    network = sgdlab.ConvNet((1, 28, 28), DEEP_CONVNET_LAYERS, 10, weight_init_std="he", dtype=np.float32,
                             rng=np.random.default_rng(SEED))
    return (Trainer(network, config.make_optimizer(), config),
            "ConvNet(DEEP_CONVNET_LAYERS, weight_init_std='he') with TrainConfig(net='simple-convnet')'s Adam 0.001 "
            "and batch 100 (no deep-convnet in this sgdlab; its dropout after the output layer left out)")


def sgdlab_child(mode, data_dir, iters, warmup, epochs):
    return convnet.sgdlab_child(mode, data_dir, iters, warmup, epochs, make_trainer=sgdlab_trainer)


CHILDREN = {"book": book_child, "pytorch": pytorch_child, "sgdlab": sgdlab_child}

if __name__ == "__main__":
    convnet.main("deep-convnet", __doc__, CHILDREN, __file__, "chapter 8 DeepConvNet", memory_mb=1024, notes_after=[
        f"book's eval s: its evaluation of the first {BOOK_EVAL_IMAGES} training and {BOOK_EVAL_IMAGES} test images "
        f"(train_deepnet.py's), measured and scaled to the 70000; its acc is on those {BOOK_EVAL_IMAGES} test images"])
