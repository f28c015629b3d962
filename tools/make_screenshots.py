"""Draw the pictures of the lab page in docs/: the book's run watched while it trains (paused, a drawn 3 read by
the network) at 1400x900 and 800 px wide (a rate of -1 refused), in English and in Korean, and two finished runs
compared. Needs Chromium (Debian's `chromium`), a Korean font (Debian's `fonts-nanum` or `fonts-noto-cjk`) and
MNIST as sgdlab finds it. Each picture is reduced to a palette of at most 256 colours, which keeps it small.

    python tools/make_screenshots.py [--data-dir DIR]
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

from PIL import Image
from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent.parent / "docs"
WAIT = 600_000  # ms the page may take to show what a picture needs, on a loaded machine
NARROW = (800, 1500)  # the narrow window, and how much of its one column is pictured


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
    box = canvas.bounding_box()
    points = [(0.3, 0.2), (0.5, 0.13), (0.68, 0.22), (0.6, 0.42), (0.45, 0.48), (0.65, 0.55), (0.7, 0.75),
              (0.5, 0.87), (0.3, 0.8)]
    page.mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=6)
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('probabilities-figure').hidden === false", timeout=WAIT)


def refuse_a_rate(page):
    """A learning rate of -1 set: the server refuses it, and the page says why, in its language."""
    page.fill("#lr", "-1")
    page.click("#set-lr")
    page.wait_for_function("() => document.getElementById('control-message').textContent !== ''", timeout=WAIT)


def in_language(page, language, axis_title):
    """The page switched to `language`, once its loss chart says `axis_title`, and plotly has settled."""
    page.click(f"[data-language={language}]")
    page.wait_for_function(f"() => document.querySelector('#loss-chart .ytitle')?.textContent === '{axis_title}'",
                           timeout=WAIT)
    page.wait_for_timeout(1000)


def narrowed(page, width, height):
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function(f"() => document.documentElement.scrollWidth <= {width}", timeout=WAIT)
    page.wait_for_timeout(1500)  # plotly follows the window a moment later


def save(page, name, **options):
    path = DOCS / name
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=path, **options)
    Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1, locale="en-US")

        book = ["train", "--live", "--out", f"{scratch}/book", "--iters", "10000", "--seed", "0", *data]
        with started(book) as address:
            page.goto(address)
            page.wait_for_function("() => document.querySelectorAll('#strip figure').length > 0 && Number("
                                   "(document.getElementById('progress').textContent.match(/\\d+/) || [0])[0]) >= 6000",
                                   timeout=WAIT)
            page.click("#pause")
            page.wait_for_function("() => document.getElementById('status').classList.contains('paused')", timeout=WAIT)
            draw_a_three(page)
            page.wait_for_timeout(1500)
            save(page, "lab-live.png")
            in_language(page, "ko", "손실")
            save(page, "lab-live-ko.png")
            refuse_a_rate(page)  # the narrow pictures show the server's answer, in Korean, then in English
            narrowed(page, *NARROW)
            top = {"x": 0, "y": 0, "width": NARROW[0], "height": NARROW[1]}
            save(page, "lab-narrow-ko.png", full_page=True, clip=top)
            in_language(page, "en", "loss")
            save(page, "lab-narrow.png", full_page=True, clip=top)
            page.set_viewport_size({"width": 1400, "height": 900})

        for name, lr in (("lr-0.1", "0.1"), ("lr-0.5", "0.5")):
            subprocess.run([sys.executable, "-m", "sgdlab", "train", "--quiet", "--iters", "3000", "--lr", lr,
                            "--out", f"{scratch}/compare/{name}", *data], check=True)
        with started(["view", f"{scratch}/compare", *data]) as address:
            page.goto(address)
            page.wait_for_function("() => document.getElementById('accuracy-chart').data?.length >= 4"
                                   " && !document.getElementById('confusion-figure').hidden", timeout=WAIT)
            page.wait_for_timeout(1500)
            save(page, "lab-compare.png", clip={"x": 0, "y": 0, "width": 1400, "height": 480})
        browser.close()


if __name__ == "__main__":
    main()
