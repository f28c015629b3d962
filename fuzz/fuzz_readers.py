"""Coverage-guided fuzzing of the readers of every file a user hands to sgdlab, with atheris (libFuzzer).

    python fuzz/fuzz_readers.py --target model -max_total_time=300 [CORPUS_DIR] [libFuzzer options]

Each target writes the fuzzer's bytes to a file and reads it as sgdlab does;
the reader must return a valid object or raise `SgdlabError`. Any other
exception is a finding (atheris prints it and saves the input as
`crash-<hash>`), and so is memory beyond `-rss_limit_mb` (1024 MB unless
given: far above what these small valid files need, far below a bomb). The
fuzzer starts from valid files it builds itself in a temporary folder (see
fuzz/README.md).
"""

import argparse
import gzip
import json
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["sgdlab", "zipfile", "gzip", "json", "numpy.lib", "PIL"]):
    import numpy as np

    from sgdlab.data import idx, mnist
    from sgdlab.data.digit_images import load_digit_image
    from sgdlab.errors import SgdlabError
    from sgdlab.nn.network import MultiLayerNet
    from sgdlab.runs.checkpoint import load_checkpoint, save_checkpoint
    from sgdlab.runs.model_file import load_model, save_model
    from sgdlab.runs.run_folder import read_run_settings
    from sgdlab.training.config import TrainConfig
    from sgdlab.training.history import History
    from sgdlab.training.trainer import Trainer

CHECKPOINT_CONFIG = TrainConfig(hidden_size=3, iters=4, batch_size=5, optimizer="adam", eval_every=2, batch_norm=True)
SMALL_COUNT = 4  # images and labels in each file of the small MNIST the cache target reads


# --- valid files to start from -------------------------------------------------------------------

def model_seeds(folder):
    """Models as sgdlab saves them, and one recompressed (np.savez_compressed) to reach the deflate paths."""
    save_model(folder / "model.npz", MultiLayerNet(6, [5], 3, use_batchnorm=True, rng=0), TrainConfig(iters=3))
    with np.load(folder / "model.npz") as archive:
        np.savez_compressed(folder / "compressed.npz", **dict(archive))
    return [folder / "model.npz", folder / "compressed.npz"]


def checkpoint_seeds(folder):
    rng = np.random.default_rng(0)
    x, t = rng.integers(0, 256, (20, 784), dtype=np.uint8), rng.integers(0, 10, 20).astype(np.uint8)
    states = []
    Trainer.from_config(CHECKPOINT_CONFIG, background=False).fit(x, t, x[:10], t[:10], on_checkpoint=states.append)
    save_checkpoint(folder / "checkpoint.npz", states[-1], CHECKPOINT_CONFIG.resolved().to_dict())
    return [folder / "checkpoint.npz"]


def idx_seeds(folder):
    labels = idx.header_bytes((5,)) + bytes([3, 1, 4, 1, 5])
    images = idx.header_bytes((2, 28, 28)) + np.random.default_rng(0).integers(0, 256, 2 * 784, np.uint8).tobytes()
    seeds = {"labels": labels, "labels.gz": gzip.compress(labels), "images": images, "images.gz": gzip.compress(images)}
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in seeds]


def json_seeds(folder):
    """config.json (first byte 0) and history.json (first byte 1), as a run folder holds them."""
    history = History(3, loss=[2.3, 2.1, 1.9], iteration=[0, 3], epoch=[0.0, 1.0], train_acc=[0.1, 0.5],
                      test_acc=[0.1, 0.4], seconds=[0.0, 0.5])
    (folder / "config").write_bytes(b"\0" + json.dumps(TrainConfig(iters=3).resolved().to_dict(), indent=1).encode())
    (folder / "history").write_bytes(b"\1" + json.dumps(history.to_dict(), indent=1).encode())
    return [folder / "config", folder / "history"]


def image_seeds(folder):
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 9), np.uint8))
    paths = []
    for format_name in ("PNG", "JPEG", "BMP", "GIF", "TIFF"):
        paths.append(folder / f"digit.{format_name.lower()}")
        image.save(paths[-1], format_name)
    return paths


def cache_seeds(folder):
    """The decoded cache of a small MNIST, made canonical for the run (see `small_mnist`)."""
    data_dir = small_mnist(folder / "mnist")
    return [data_dir / mnist.CACHE_NAME]


def small_mnist(data_dir):
    """Four small IDX files in `data_dir`, made the canonical ones, and their decoded cache; returns the folder."""
    import dataclasses
    import hashlib

    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    table = []
    for spec in mnist.FILES:
        shape = (SMALL_COUNT, 28, 28) if spec.kind == "images" else (SMALL_COUNT,)
        values = rng.integers(0, 10 if spec.kind == "labels" else 256, shape, np.uint8)
        raw = idx.header_bytes(shape) + values.tobytes()
        (data_dir / spec.gz_name).write_bytes(gzip.compress(raw))
        table.append(dataclasses.replace(spec, count=SMALL_COUNT, sha256=hashlib.sha256(raw).hexdigest()))
    mnist.FILES = tuple(table)
    mnist.load_mnist(normalize=False, data_dir=data_dir, download=False)  # writes the cache
    return data_dir


# --- the readers under test ------------------------------------------------------------------------

class Reader:
    """Writes each input to `path` and reads it with `read(path)`; an SgdlabError is a valid answer."""

    def __init__(self, path, read, refusal=SgdlabError):
        self.path, self.read, self.refusal = path, read, refusal

    def __call__(self, data):
        self.path.write_bytes(data)
        try:
            self.read(self.path)
        except self.refusal:
            pass


def read_model(path):
    network, _ = load_model(path)
    network.predict(np.zeros((2, network.sizes[0])))


def read_run_json(path):
    """Byte 0 says which file the rest is: config.json (0) or history.json (1), read as `sgdlab` reads them."""
    data = path.read_bytes()
    if not data:
        return
    path.write_bytes(data[1:])
    if data[0] % 2 == 0:
        read_run_settings(path.parent)  # the input is written as config.json
    else:
        history = History.load(path)
        history.evaluation_rows()
        history.to_csv()


def read_idx_bytes(path):
    data = path.read_bytes()
    idx.parse_idx(idx.decompress_if_gzip(data, "fuzz", 1 << 16), "fuzz")


def read_image(path):
    pixels = load_digit_image(path)
    assert pixels.shape == (784,) and np.all(np.isfinite(pixels)), pixels


class CacheReader:
    """The cache target: whatever the cache holds, load_mnist gives the canonical arrays, silently."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.expected = mnist.load_mnist(normalize=False, data_dir=data_dir, download=False)

    def __call__(self, data):
        (self.data_dir / mnist.CACHE_NAME).write_bytes(data)
        loaded = mnist.load_mnist(normalize=False, data_dir=self.data_dir, download=False)
        for split, expected in zip(loaded, self.expected):
            for array, canonical in zip(split, expected):
                assert np.array_equal(array, canonical), "the cache gave other data than the canonical files"


TARGETS = {"model": model_seeds, "checkpoint": checkpoint_seeds, "idx": idx_seeds, "json": json_seeds,
           "image": image_seeds, "cache": cache_seeds}


def make_reader(target, folder):
    if target == "model":
        return Reader(folder / "input.npz", read_model)
    if target == "checkpoint":
        return Reader(folder / "checkpoint.npz", lambda path: load_checkpoint(path, CHECKPOINT_CONFIG.resolved().to_dict()))
    if target == "idx":
        return Reader(folder / "input", read_idx_bytes)
    if target == "json":
        return Reader(folder / "config.json", read_run_json)
    if target == "image":
        return Reader(folder / "input.img", read_image)
    return CacheReader(folder / "mnist")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, choices=sorted(TARGETS))
    args, libfuzzer_args = parser.parse_known_args()
    folder = Path(tempfile.mkdtemp(prefix=f"sgdlab-fuzz-{args.target}-"))
    seeds = folder / "seeds"
    seeds.mkdir()
    for path in TARGETS[args.target](folder):
        (seeds / path.name).write_bytes(path.read_bytes())
    reader = make_reader(args.target, folder)
    options = [arg for arg in libfuzzer_args if arg.startswith("-")]
    inputs = [arg for arg in libfuzzer_args if not arg.startswith("-")]
    if inputs and all(Path(arg).is_file() for arg in inputs):  # findings to reproduce: run just those
        corpora = inputs
    else:
        corpora = [*(inputs or [str(folder / "corpus")]), str(seeds)]
        Path(corpora[0]).mkdir(parents=True, exist_ok=True)
    for option, default in (("-rss_limit_mb=", "1024"), ("-artifact_prefix=", f"{folder}/")):
        if not any(given.startswith(option) for given in options):
            options.append(option + default)
    print(f"fuzzing the {args.target} reader; seeds and inputs in {folder}", file=sys.stderr)
    atheris.Setup([sys.argv[0], *options, *corpora], reader)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
