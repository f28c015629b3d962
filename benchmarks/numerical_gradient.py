"""Numerical gradient on a batch of 100: the textbook method vs sgdlab's, side by side, for three nets.

Run:  python benchmarks/numerical_gradient.py [--net book,deep,batchnorm,simpleconvnet,deepconvnet-reduced,deepconvnet]
                                              [--state initial,trained,noisy] [--data-dir DIR] [--repeats N]
                                              [--seeds N] [--sample N] [--train-iters N] [--train]

Nets (`--net`, repeatable or a comma list; default all six):
  book       the chapter's 784-50-10 sigmoid TwoLayerNet, as initialised (default 3 seeds, 20 repeats);
  deep       MultiLayerNet 784-100-100-10, ReLU, He init, weight decay 0.1 (1 seed, 5 repeats);
  batchnorm  the same with batch normalization (1 seed, 5 repeats);
  simpleconvnet  the book's chapter-7 SimpleConvNet (conv 30 5x5 - relu - pool 2x2 - affine 100 - relu -
             affine 10, 433,890 parameters, float64; 1 seed, 3 repeats), as initialised and after 50 backprop
             SGD steps. Its textbook gradient would take hours, so it is measured on a sample of --sample
             parameters (default 300, every parameter array represented): its time per parameter, times the
             parameter count, is the textbook's extrapolated time (labelled so), and the fast gradient is
             compared with it on that sample. Also measured: the Trainer's grad="numerical" iteration on it
             (Adam, batch 100), the median over --train-iters iterations.
  deepconvnet-reduced  chapter 8's DeepConvNet layout (six 3x3 convolutions padded by 1, the fourth by 2,
             three 2x2 poolings, affine - relu - dropout - affine - dropout, He's weights) at widths 4, 4, 8, 8, 8,
             8 and 10 hidden units (3,636 parameters), as initialised: the textbook on a sample, as simpleconvnet;
  deepconvnet  the same at the book's widths (16, 16, 32, 32, 64, 64, 50 hidden; 123,552 parameters): both
             methods EXTRAPOLATED, the textbook from its sample, sgdlab's from a sample of each parameter's
             chunks of nudges (3 each, one thread), as a whole gradient would take tens of minutes.
Each net is measured in up to three states, side by side (`--state`, default all that the net has):
  initial  as initialised (gammas 1, betas 0, running statistics 0);
  trained  after 50 backprop SGD steps (lr 0.01, batch 100): deep and batchnorm only;
  noisy    as initialised plus 0.05 standard-normal noise on every parameter (gammas and betas
           included), as after some training: deep and batchnorm only.
What the fast method's time depends on, with batch norm: each nudge of the first hidden layer moves every
sample's units of the next one, and a nudge that takes one of them across its relu kink needs a
correction for that unit. They are found from the (sample, unit) pairs sorted by their distance to the
kink, so that each nudge looks only at the few it can reach, and corrected exactly, so the time hardly
depends on the state. Before that, every nudge that one bound over the whole batch could not clear had
its later layers recomputed, and how many could not depended on the state: on seed 0's batch, about a
third of the first layer's nudges as initialised (every feature normalised around the kink, so some
sample always sits near it), none after the 50 steps, 1% with this noise (and 15% with another draw of
it, on weight decay 0.01): 14.7 s against 4.3 s trained, measured side by side on a loaded machine,
where the corrected form takes 3.4 s and 4.3 s.

For each net and seed (one batch and one initialisation), it computes the whole textbook gradient once
(`network.numerical_gradient(x, t)`, two loss evaluations per parameter) and sgdlab's
(`numerical_gradient_fast`, min and median of --repeats), both at one BLAS thread, as sgdlab's training
runs (the fast method adds its own two worker threads). On this shared 2-core machine a second BLAS
thread made the textbook's loss evaluations 2.5 to 25 times slower in every measurement. It prints a
table per net, the median ratio, the largest absolute and relative differences, whether the project's
target for that net is met, and one JSON line per net; with --train, also the measured time of `sgdlab
train --grad numerical` with the book configuration.
"""

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sgdlab import SGD, Adam, MultiLayerNet, SimpleConvNet, TrainConfig, Trainer, TwoLayerNet, load_mnist
from sgdlab.engine.conv_perturbation import ReferencePass
from sgdlab.engine.perturbation import numerical_gradient_fast
from sgdlab.nn.network import DeepConvNet
from sgdlab.engine.threads import one_blas_thread
from sgdlab.nn.layers import frozen_training

BOOK_ITERS = 10_000
BATCH = 100


@dataclass(frozen=True)
class Net:
    layers: str
    build: Callable[[int], MultiLayerNet]  # seed -> network
    train_steps: int
    seeds: int  # defaults, when --seeds / --repeats are not given
    repeats: int
    max_abs_diff: float = None  # the project's target, if it states one
    min_ratio: float = None
    states: tuple = ("initial", "trained", "noisy")


STATES = ("initial", "trained", "noisy")
NOISE = 0.05  # standard deviation of the noise added to every parameter in the "noisy" state


def chapter_6_net(seed, use_batchnorm):
    return MultiLayerNet(784, [100, 100], 10, activation="relu", weight_init_std="he", weight_decay_lambda=0.1,
                         use_batchnorm=use_batchnorm, rng=seed)


def deep_convnet(widths=(16, 16, 32, 32, 64, 64), hidden=50, rng=None):
    """Chapter 8's DeepConvNet (its six 3x3 convolutions padded by 1, the fourth by 2, three 2x2 poolings,
    affine - relu - dropout - affine - dropout, He's weights) at the given widths."""
    return DeepConvNet((1, 28, 28), *({"filter_num": width} for width in widths), hidden_size=hidden, rng=rng)


NETS = {
    "book": Net("784-50-10", lambda seed: TwoLayerNet(rng=seed), 0, 3, 20, states=("initial",)),
    "deep": Net("784-100-100-10", lambda seed: chapter_6_net(seed, False), 50, 1, 5, 1e-9, 1000),
    "batchnorm": Net("784-100-100-10 bn", lambda seed: chapter_6_net(seed, True), 50, 1, 5, 1e-8, 100),
    "simpleconvnet": Net("conv30x5x5-pool2-100-10", lambda seed: SimpleConvNet(rng=seed), 50, 1, 3, 1e-9, 1000,
                         states=("initial", "trained")),
    "deepconvnet-reduced": Net("conv 4,4,8,8,8,8 (3x3, pad 1, 1, 1, 2, 1, 1) - pool x3 - 10 - 10",
                               lambda seed: deep_convnet((4, 4, 8, 8, 8, 8), 10, rng=seed), 50, 1, 1, 1e-9,
                               None, states=("initial",)),
    "deepconvnet": Net("DeepConvNet: conv 16,16,32,32,64,64 - pool x3 - 50 - 10", lambda seed: deep_convnet(rng=seed),
                       50, 1, 1, 1e-9, None, states=("initial",)),
}
SAMPLED = {"simpleconvnet", "deepconvnet-reduced", "deepconvnet"}
FAST_SAMPLED = {"deepconvnet"}  # the fast gradient too: timed on a sample of each layer's chunks of nudges  # textbook measured on a sample of parameters and extrapolated


def time_call(function, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return result, times


def choices(values, known, option):
    """The names of every `option` given (each a name or a comma list), in the order given, each once;
    all of `known` when none is given."""
    names = [name.strip() for value in values or [",".join(known)] for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"unknown {option} {', '.join(unknown)}: choose among {', '.join(known)}")
    return list(dict.fromkeys(names))


def train(network, x_train, t_train, rng, steps):
    """Backprop SGD steps, so the gradient is measured on weights (and gamma, beta, running statistics) that
    training has moved, not on the initialisation's (gamma 1, beta 0, statistics 0)."""
    optimizer = SGD(0.01)
    for _ in range(steps):
        batch = rng.integers(0, len(x_train), BATCH)
        optimizer.update(network.params, network.gradient(x_train[batch].astype(np.float64), t_train[batch]))


def max_relative_difference(fast, textbook):
    """The largest |fast - textbook| over the largest |textbook| of each parameter array. An array whose
    textbook gradient is all zero has no scale and counts in the absolute difference only: batch norm
    makes the biases of the affine layers before it exactly 0 (it subtracts their shift again)."""
    return max(float(np.max(np.abs(fast[k] - textbook[k])) / scale)
               for k in fast if (scale := np.max(np.abs(textbook[k]))) > 0)


def add_noise(network, rng):
    """NOISE standard-normal noise on every parameter, in place."""
    for param in network.params.values():
        param += NOISE * rng.standard_normal(param.shape)


def measure_seed(net, seed, repeats, states, x_train, t_train):
    """Per state: textbook seconds, sgdlab's min and median, and how far apart the gradients are, for one
    batch and one initialisation."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, len(x_train), BATCH)
    x, t = x_train[batch].astype(np.float64), t_train[batch]
    rows = []
    for state in states:
        network = net.build(seed)
        if state == "trained":
            train(network, x_train, t_train, np.random.default_rng([seed, 1]), net.train_steps)
        elif state == "noisy":
            add_noise(network, np.random.default_rng([seed, 2]))
        textbook, textbook_times = time_call(lambda: network.numerical_gradient(x, t), 1)
        (_, fast), fast_times = time_call(lambda: numerical_gradient_fast(network, x, t), repeats)
        rows.append({"seed": seed, "state": state, "params": network.num_params, "textbook_s": textbook_times[0],
                     "fast_min_s": min(fast_times), "fast_median_s": statistics.median(fast_times),
                     "max_abs_diff": max(float(np.max(np.abs(fast[k] - textbook[k]))) for k in fast),
                     "max_rel_diff": max_relative_difference(fast, textbook)})
    return rows


def sample_of_parameters(network, size, rng):
    """About `size` (key, flat index) pairs, each parameter array's share by its size but at least 8 entries (all
    of a smaller one)."""
    chosen = []
    for key, param in network.params.items():
        count = min(param.size, max(8, size * param.size // network.num_params))
        chosen += [(key, int(i)) for i in rng.choice(param.size, count, replace=False)]
    return chosen


def textbook_on_a_sample(network, x, t, entries, h=1e-4):
    """The textbook's central difference (`network.numerical_gradient`'s: two training-mode losses per
    parameter) for `entries` only, and the seconds it took."""
    values = []
    started = time.perf_counter()
    with frozen_training(network.layers):
        for key, index in entries:
            flat = network.params[key].reshape(-1)
            original = flat[index]
            flat[index] = original + h
            plus = network.loss(x, t, train_flg=True)
            flat[index] = original - h
            minus = network.loss(x, t, train_flg=True)
            flat[index] = original
            values.append((plus - minus) / (2 * h))
    return np.array(values), time.perf_counter() - started


def generator_states(network):
    """A function that puts every dropout generator of `network` back in its state of now."""
    states = [(layer.rng, layer.rng.bit_generator.state) for layer in network.dropout_layers]

    def restore():
        for generator, state in states:
            generator.bit_generator.state = state
    return restore


def fast_on_a_sample(network, x, t, rng, chunks=3):
    """The fast gradient's seconds EXTRAPOLATED: each parameter's chunks of nudges (`ReferencePass`'s jobs,
    one channel's nudges each) timed on `chunks` of them drawn at random, times their number; the head's (the
    dense machinery's or recomputed) and the reference pass timed whole. One thread."""
    started = time.perf_counter()
    reference = ReferencePass(network, network.as_input(x), t, False)
    total = time.perf_counter() - started
    for i, layer in enumerate(network.layers):
        if not layer.parameter_names:
            continue
        prepared = layer.nudge_state(reference.inputs[i], reference.outputs[i], reference.states[i])
        for name in layer.parameter_names:
            shape = getattr(layer, name).shape
            jobs = [(channel, entries[start:start + reference._chunk(i, channel)])
                    for channel, entries in reference._nudge_groups(i, shape)
                    for start in range(0, len(entries), reference._chunk(i, channel))]
            chosen = rng.choice(len(jobs), min(chunks, len(jobs)), replace=False)
            started = time.perf_counter()
            for job in chosen:
                reference._differences(i, name, prepared, *jobs[job], 1e-4)
            spent = time.perf_counter() - started
            total += spent / len(chosen) * len(jobs)
            print(f"  fast, {layer!r} {name}: {len(jobs)} chunks, {spent / len(chosen) * 1e3:.0f} ms a chunk, "
                  f"{spent / len(chosen) * len(jobs):.1f} s EXTRAPOLATED", flush=True)
    return total


def measure_sampled_seed(name, net, seed, repeats, states, x_train, t_train, sample):
    """As `measure_seed`, the textbook timed on a sample of the parameters and extrapolated to all of them."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, len(x_train), BATCH)
    x, t = x_train[batch].astype(np.float64), t_train[batch]
    rows = []
    for state in states:
        network = net.build(seed)
        if state == "trained":
            train(network, x_train, t_train, np.random.default_rng([seed, 1]), net.train_steps)
        entries = sample_of_parameters(network, sample, np.random.default_rng([seed, 3]))
        same_masks = generator_states(network)
        textbook, textbook_sample_s = textbook_on_a_sample(network, x, t, entries)
        same_masks()  # the fast gradient draws the dropout masks the textbook drew
        if name in FAST_SAMPLED:
            extrapolated = fast_on_a_sample(network, x, t, np.random.default_rng([seed, 4]))
            rows.append({"seed": seed, "state": state, "params": network.num_params,
                         "textbook_s": textbook_sample_s / len(entries) * network.num_params,
                         "textbook_sample": len(entries), "textbook_sample_s": textbook_sample_s,
                         "fast_min_s": extrapolated, "fast_median_s": extrapolated, "fast": "extrapolated",
                         "max_abs_diff": float("nan"), "max_rel_diff": float("nan")})
            continue
        (_, fast), fast_times = time_call(lambda: numerical_gradient_fast(network, x, t), repeats)
        found = np.array([fast[key].reshape(-1)[index] for key, index in entries])
        scale = float(np.max(np.abs(textbook)))
        rows.append({"seed": seed, "state": state, "params": network.num_params,
                     "textbook_s": textbook_sample_s / len(entries) * network.num_params,
                     "textbook_sample": len(entries), "textbook_sample_s": textbook_sample_s,
                     "fast_min_s": min(fast_times), "fast_median_s": statistics.median(fast_times),
                     "max_abs_diff": float(np.max(np.abs(found - textbook))),
                     "max_rel_diff": float(np.max(np.abs(found - textbook))) / scale})
    return rows


def measure(name, net, seeds, repeats, states, x_train, t_train, sample):
    """One row per seed and state, printed as a table, and the summary of the net in each state."""
    if name in SAMPLED:
        rows = [row for seed in range(seeds)
                for row in measure_sampled_seed(name, net, seed, repeats, states, x_train, t_train, sample)]
        textbook = (f"EXTRAPOLATED from {rows[0]['textbook_sample']} parameters measured per seed and state "
                    "(their time per parameter times the parameter count; differences on that sample)")
        if name in FAST_SAMPLED:
            textbook += "; sgdlab's EXTRAPOLATED too, from a sample of each parameter's chunks of nudges"
    else:
        rows = [row for seed in range(seeds) for row in measure_seed(net, seed, repeats, states, x_train, t_train)]
        textbook = f"measured in full once per seed and state ({2 * rows[0]['params']} loss evaluations)"
    params = rows[0]["params"]
    print(f"\n{name} ({net.layers}, {params} parameters): textbook {textbook}, sgdlab {repeats} repeats")
    print(f"{'seed':>4} {'state':>6} {'textbook s':>11} {'fast min ms':>12} {'fast med ms':>12} {'ratio':>8} "
          f"{'max abs diff':>13} {'max rel diff':>13}")
    for r in rows:
        print(f"{r['seed']:>4} {r['state']:>6} {r['textbook_s']:11.2f} {r['fast_min_s'] * 1e3:12.2f} "
              f"{r['fast_median_s'] * 1e3:12.2f} {r['textbook_s'] / r['fast_median_s']:8.0f} "
              f"{r['max_abs_diff']:13.2e} {r['max_rel_diff']:13.2e}")
    return [summarise(name, net, seeds, repeats, state, [r for r in rows if r["state"] == state])
            for state in STATES if state in states]


def summarise(name, net, seeds, repeats, state, rows):
    """The medians over the seeds of one net in one state, printed and returned as a JSON-ready dict."""
    params = rows[0]["params"]
    textbook_s = statistics.median(r["textbook_s"] for r in rows)
    fast_median = statistics.median(r["fast_median_s"] for r in rows)
    summary = {
        "benchmark": "numerical_gradient", "net": name, "state": state, "noise": NOISE if state == "noisy" else 0.0,
        "layers": net.layers, "params": params,
        "train_steps": net.train_steps if state == "trained" else 0, "batch": BATCH, "seeds": seeds, "repeats": repeats,
        "textbook": (f"extrapolated from {rows[0]['textbook_sample']} sampled parameters"
                     if "textbook_sample" in rows[0] else "measured, full gradient"),
        "textbook_s": textbook_s, "blas_threads": 1,
        "fast_min_s": min(r["fast_min_s"] for r in rows), "fast_median_s": fast_median,
        "ratio_median": textbook_s / fast_median,
        "max_abs_diff": max(r["max_abs_diff"] for r in rows), "max_rel_diff": max(r["max_rel_diff"] for r in rows),
        "projected_textbook_training_h": textbook_s * BOOK_ITERS / 3600,
        "projected_fast_training_min": fast_median * BOOK_ITERS / 60,
    }
    print(f"{state}: ratio (median) {summary['ratio_median']:.0f}x; projected {BOOK_ITERS} iterations: textbook "
          f"{summary['projected_textbook_training_h']:.1f} h, fast {summary['projected_fast_training_min']:.1f} min "
          "(gradients only)")
    if net.min_ratio is not None:
        summary["target_met"] = bool(summary["max_abs_diff"] <= net.max_abs_diff and
                                     summary["ratio_median"] >= net.min_ratio)
        print(f"target (max abs diff <= {net.max_abs_diff:.0e}, at least {net.min_ratio}x faster): "
              f"{'met' if summary['target_met'] else 'NOT met'} (max abs diff {summary['max_abs_diff']:.2e}, "
              f"{summary['ratio_median']:.0f}x)")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", action="append", help=f"among {', '.join(NETS)} (repeatable or a comma list)")
    parser.add_argument("--data-dir")
    parser.add_argument("--repeats", type=int, help="sgdlab's runs per seed (default: 20 for book, 5 otherwise)")
    parser.add_argument("--seeds", type=int, help="batches (and initial weights) compared (default: 3 for book, "
                                                  "1 otherwise)")
    parser.add_argument("--state", action="append", help=f"among {', '.join(STATES)} (repeatable or a comma list; "
                                                          "default both, where the net has them)")
    parser.add_argument("--sample", type=int, default=300, help="parameters the textbook is timed and compared on, "
                                                                   "for simpleconvnet (default 300)")
    parser.add_argument("--train-iters", type=int, default=5, help="numerical training iterations timed on "
                                                                    "simpleconvnet (default 5; 0 to skip)")
    parser.add_argument("--train", action="store_true", help="also run the book's numerical training and time it")
    args = parser.parse_args()
    names = choices(args.net, list(NETS), "--net")

    (x_train, t_train), (x_test, t_test) = load_mnist(data_dir=args.data_dir)
    summaries = []
    with one_blas_thread():
        for name in names:
            net = NETS[name]
            states = [state for state in choices(args.state, STATES, "--state") if state in net.states]
            if not states:
                continue
            for summary in measure(name, net, args.seeds or net.seeds, args.repeats or net.repeats, states,
                                   x_train, t_train, args.sample):
                summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                summaries.append(summary)
            if name == "simpleconvnet" and args.train_iters:
                summaries.append(measure_convnet_iteration(x_train, t_train, x_test, t_test, args.train_iters))
                print(f"measured: Trainer grad=\"numerical\" on SimpleConvNet, Adam, batch {BATCH}: "
                      f"{summaries[-1]['iteration_s']:.2f} s an iteration (median of {args.train_iters})")
    print(f"peak RSS {summaries[-1]['peak_rss_mb']:.0f} MB")
    if args.train:
        summaries.append(measure_training(x_train, t_train, x_test, t_test))
        print(f"measured: sgdlab numerical training (book configuration), {BOOK_ITERS} iterations, "
              f"{summaries[-1]['training_min']:.1f} min, test accuracy {summaries[-1]['training_test_acc']:.4f}, "
              f"peak RSS {summaries[-1]['peak_rss_mb']:.0f} MB")
    for summary in summaries:
        print(json.dumps(summary))


def measure_convnet_iteration(x_train, t_train, x_test, t_test, iters):
    """The seconds of one iteration of the Trainer's numerical training of SimpleConvNet (the fast gradient,
    the running statistics followed, Adam's update), the median over `iters` (evaluations, on 1000 images, not
    counted)."""
    stamps = []
    config = TrainConfig(grad="numerical", iters=iters, batch_size=BATCH, optimizer="adam", lr=0.001,
                         train_size=1000, dtype="float64")
    trainer = Trainer(SimpleConvNet(rng=0), Adam(0.001), config)
    trainer.fit(x_train, t_train, x_test[:1000], t_test[:1000],
                on_iteration=lambda number, loss: stamps.append(time.perf_counter()))
    return {"benchmark": "numerical_gradient_training_iteration", "net": "simpleconvnet", "batch": BATCH,
            "optimizer": "adam", "iters": iters,
            "iteration_s": statistics.median(later - earlier for earlier, later in zip(stamps[:-1], stamps[1:])),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_training(x_train, t_train, x_test, t_test):
    trainer = Trainer.from_config(TrainConfig(grad="numerical"))
    started = time.perf_counter()
    history = trainer.fit(x_train, t_train, x_test, t_test)
    return {"benchmark": "numerical_gradient_training", "net": "book", "iters": BOOK_ITERS,
            "training_min": (time.perf_counter() - started) / 60, "training_test_acc": history.test_acc[-1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    sys.exit(main())
