"""What watching costs: the book's run trained by `sgdlab train`, by `sgdlab train --live` with no page open,
and by `sgdlab train --live` with the page open in headless Chromium, round-robin, in the same session.

The figure compared is the training time the run records (`seconds` at its last evaluation: training and
its 18 evaluations, without start-up and saving), so that the page's own start-up is not counted against
training. The histories must be identical, bit for bit.

    python benchmarks/live_overhead.py [--repeats 3] [--data-dir DIR]
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = os.environ.get("SGDLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def ctrl_c_at_its_default():
    """The child takes Ctrl-C even where this script runs with it ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train(out, data_dir, live, page):
    """One `sgdlab train` of the book's run into `out`; returns its history."""
    argv = [sys.executable, "-m", "sgdlab", "train", "--quiet", "--no-plot", "--out", str(out)]
    argv += ["--data-dir", str(data_dir)] if data_dir else []
    argv += ["--live", "--no-browser"] if live else []
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_at_its_default)
    try:
        if live:
            address = re.match(r"lab page: (\S+)", process.stdout.readline())[1]
            watcher = page(address) if page else None
            while not (out / "history.json").exists():  # the page stays up after training: end it then
                time.sleep(0.05)
            if watcher:
                watcher.close()
            process.send_signal(signal.SIGINT)  # once: pressed while the run still saves, it ends the page after
        _, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    if process.returncode != 0:
        raise SystemExit(f"sgdlab train failed: {err}")
    return json.loads((out / "history.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    contenders = {"sgdlab train": (False, None), "--live, no page": (True, None)}
    browser = driver = None
    if CHROMIUM:
        from playwright.sync_api import sync_playwright

        driver = sync_playwright().start()
        browser = driver.chromium.launch(executable_path=CHROMIUM)

        def open_page(address):
            page = browser.new_page()
            page.goto(address)
            return page

        contenders["--live, page open"] = (True, open_page)
    else:
        print("(no Chromium found: the page-open case is left out)")
    seconds = {name: [] for name in contenders}
    histories = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for number, (name, (live, page)) in enumerate(contenders.items()):
                history = train(Path(scratch) / f"{repeat}-{number}", args.data_dir, live, page)
                seconds[name].append(history["seconds"][-1])
                histories.setdefault(name, history)
                assert history["loss"] == histories["sgdlab train"]["loss"], f"{name} trained differently"
                assert history["test_acc"] == histories["sgdlab train"]["test_acc"], f"{name} trained differently"
    if browser:
        browser.close()
        driver.stop()
    base = statistics.median(seconds["sgdlab train"])
    print(f"{'contender':20} {'min s':>7} {'median s':>9} {'x sgdlab train':>15}")
    for name, values in seconds.items():
        print(f"{name:20} {min(values):7.2f} {statistics.median(values):9.2f} {statistics.median(values) / base:15.3f}")
    print("histories identical to sgdlab train's: yes")
    print(json.dumps({"benchmark": "live_overhead", "repeats": args.repeats,
                      "median_seconds": {name: statistics.median(values) for name, values in seconds.items()},
                      "ratio": {name: statistics.median(values) / base for name, values in seconds.items()}}))


if __name__ == "__main__":
    main()
