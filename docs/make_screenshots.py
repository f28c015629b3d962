"""Draw the README's pictures of the lab page: a run watched while it trains (with a digit drawn on the canvas),
and two finished runs compared. Needs Chromium (Debian's `chromium`) and MNIST as sgdlab finds it.

    python docs/make_screenshots.py [--data-dir DIR]
"""

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).parent


@contextlib.contextmanager
def started(argv):
    """`sgdlab ARGV --no-browser` in a child process that takes Ctrl-C (even if this script runs where it is
    ignored, in a background job), and the page's address it prints; one Ctrl-C ends it (the run, then the page),
    and it is killed if this script fails first."""
    def ctrl_c_at_its_default():
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen([sys.executable, "-m", "sgdlab", *argv, "--no-browser"], stdout=subprocess.PIPE,
                               text=True, preexec_fn=ctrl_c_at_its_default)
    try:
        while not (match := re.match(r"lab page: (\S+)", process.stdout.readline())):
            if process.poll() is not None:
                raise SystemExit(f"sgdlab {argv[0]} ended before serving the page")
        yield match[1]
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def draw_a_three(page):
    canvas = page.locator("#canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    points = [(0.3, 0.2), (0.5, 0.13), (0.68, 0.22), (0.6, 0.42), (0.45, 0.48), (0.65, 0.55), (0.7, 0.75),
              (0.5, 0.87), (0.3, 0.8)]
    page.mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=6)
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('prediction').textContent.startsWith('Read as')")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)

        with started(["train", "--live", "--out", f"{scratch}/book", "--iters", "10000", *data]) as address:
            page.goto(address)
            page.wait_for_function("() => document.querySelectorAll('#gallery figure').length > 0")
            page.wait_for_timeout(4000)
            draw_a_three(page)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=DOCS / "lab-live.png", full_page=True)

        for name, lr in (("lr-0.1", "0.1"), ("lr-0.5", "0.5")):
            subprocess.run([sys.executable, "-m", "sgdlab", "train", "--quiet", "--iters", "3000", "--lr", lr,
                            "--out", f"{scratch}/compare/{name}", *data], check=True)
        with started(["view", f"{scratch}/compare", *data]) as address:
            page.goto(address)
            page.wait_for_function("() => document.getElementById('accuracy-chart').data?.length >= 4")
            page.wait_for_timeout(1500)
            page.screenshot(path=DOCS / "lab-compare.png", clip={"x": 0, "y": 0, "width": 1400, "height": 560})
        browser.close()


if __name__ == "__main__":
    main()
