"""What watching costs: the book's two-layer net trained by `sgdlab train`, by `sgdlab train --live` with no page
open, and by `sgdlab train --live` with the page open in headless Chromium, alternated, in the same session, for
two run lengths: the book's 10000 iterations (about 3 s, where the page's start-up weighs most) and 60000.

The figure compared is the training time the run records (`seconds` at its last evaluation: training and its
evaluations, without start-up and saving). The histories must be identical, bit for bit. The machine's load
(the 1-minute average, which counts these runs too) is read before each run and reported: a ratio measured on
a loaded machine is what this reports, and the load says how loaded. Beside the times, the processor seconds
each run took (the sgdlab process's, and the browser's: Chromium's processes, read from /proc), which other
processes' load changes far less than it changes times.

    python benchmarks/live_overhead.py [--repeats 3] [--lengths 10000,60000] [--data-dir DIR] [--other-src DIR]

With --other-src, the page open is measured for a second sgdlab too (its `src` folder, such as a `git worktree`
of another commit's, on PYTHONPATH: its server and its page), alternated with the rest.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = os.environ.get("SGDLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
BASE = "sgdlab train"
TICKS = os.sysconf("SC_CLK_TCK")


def ctrl_c_at_its_default():
    """The child takes Ctrl-C even where this script runs with it ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def descendants_cpu_seconds():
    """The processor seconds of this script's descendants now alive (Chromium's, under Playwright's driver), with
    those of the children they have reaped (a closed tab's renderer); None where there is no /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents[int(stat.parent.name)] = (int(fields[1]), sum(int(field) for field in fields[11:15]))
    if not parents:
        return None
    found, frontier = 0, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, ticks) in parents.items():
            if ppid == parent:
                found += ticks
                frontier.append(pid)
    return found / TICKS


def cpu_seconds_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(out, iterations, data_dir, live, page, src=None):
    """One `sgdlab train` of the book's net for `iterations` into `out` (by the sgdlab in `src`, if given); returns
    its history and, with a page, what the page's loss chart held at the end (its points and its last iteration)."""
    argv = [sys.executable, "-m", "sgdlab", "train", "--quiet", "--no-plot", "--out", str(out), "--iters",
            str(iterations)]
    argv += ["--data-dir", str(data_dir)] if data_dir else []
    argv += ["--live", "--no-browser"] if live else []
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=ctrl_c_at_its_default)
    drawn = None
    try:
        if live:
            address = re.match(r"lab page: (\S+)", process.stdout.readline())[1]
            watcher = page(address) if page else None
            while not (out / "history.json").exists():  # the page stays up after training: end it then
                time.sleep(0.05)
            if watcher:
                drawn = loss_chart_points(watcher, iterations)
                watcher.close()
            process.send_signal(signal.SIGINT)  # once: pressed while the run still saves, it ends the page after
        _, err = process.communicate(timeout=1800)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    if process.returncode != 0:
        raise SystemExit(f"sgdlab train failed: {err}")
    return json.loads((out / "history.json").read_text()), drawn


def loss_chart_points(page, iterations):
    """The points of the page's raw loss curve and its last iteration, once the page has drawn the whole run."""
    page.wait_for_function("n => { const c = document.getElementById('loss-chart');"
                           " return c.data && c.data[0].x[c.data[0].x.length - 1] === n; }", arg=iterations,
                           timeout=60000)
    return page.evaluate("() => { const x = document.getElementById('loss-chart').data[0].x;"
                         " return [x.length, x[x.length - 1]]; }")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lengths", default="10000,60000", help="iterations of each run length, comma-separated")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--other-src", type=Path, help="another sgdlab's src folder, whose page is measured too")
    args = parser.parse_args()
    lengths = [int(text) for text in args.lengths.split(",")]
    contenders = {BASE: (False, None, None), "--live, no page": (True, None, None)}
    browser = driver = None
    if CHROMIUM:
        from playwright.sync_api import sync_playwright

        driver = sync_playwright().start()
        browser = driver.chromium.launch(executable_path=CHROMIUM)

        def open_page(address):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(address)
            return page

        contenders["--live, page open"] = (True, open_page, None)
        if args.other_src:
            contenders[f"page open, {args.other_src}"] = (True, open_page, args.other_src.resolve())
    else:
        print("(no Chromium found: the page-open case is left out)")
    seconds = {(length, name): [] for length in lengths for name in contenders}
    cpu = {(length, name): [] for length in lengths for name in contenders}  # (sgdlab's, the browser's) seconds
    loads = {length: [] for length in lengths}
    drawn = {}
    histories = {}
    order = list(contenders.items())
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for length in lengths:
                # alternated, and in reverse every other round: a drift of the machine's load favours no contender
                for number, (name, (live, page, src)) in enumerate(order if repeat % 2 == 0 else order[::-1]):
                    loads[length].append(os.getloadavg()[0])
                    sgdlab_before, browser_before = cpu_seconds_of_children(), descendants_cpu_seconds()
                    history, points = train(Path(scratch) / f"{repeat}-{length}-{number}", length, args.data_dir,
                                            live, page, src)
                    browser_after = descendants_cpu_seconds()
                    seconds[length, name].append(history["seconds"][-1])
                    cpu[length, name].append((cpu_seconds_of_children() - sgdlab_before,
                                              browser_after - browser_before if browser_after is not None else None))
                    if points and src is None:  # this sgdlab's page
                        drawn[length] = points
                    reference = histories.setdefault(length, history)
                    assert history["loss"] == reference["loss"], f"{name} trained differently"
                    assert history["test_acc"] == reference["test_acc"], f"{name} trained differently"
                    print(f"  round {repeat + 1}, {length} iterations, {name}: {history['seconds'][-1]:.2f} s, "
                          f"load {loads[length][-1]:.1f}, processor s: sgdlab {cpu[length, name][-1][0]:.2f}, "
                          f"browser {cpu[length, name][-1][1] or 0:.2f}", flush=True)
    if browser:
        browser.close()
        driver.stop()
    results = {}
    width = max(20, *(len(name) for name in contenders))
    for length in lengths:
        base = statistics.median(seconds[length, BASE])
        print(f"\n{length} iterations, {args.repeats} runs each, load {min(loads[length]):.1f} to "
              f"{max(loads[length]):.1f} (1-minute average before each run)")
        print(f"{'contender':{width}} {'min s':>7} {'median s':>9} {'max s':>7} {'x ' + BASE:>15} "
              f"{'sgdlab cpu s':>13} {'browser cpu s':>14}")
        for name in contenders:
            values = seconds[length, name]
            sgdlab_cpu = statistics.median(used[0] for used in cpu[length, name])
            browser_cpu = statistics.median(used[1] or 0 for used in cpu[length, name])
            print(f"{name:{width}} {min(values):7.2f} {statistics.median(values):9.2f} {max(values):7.2f} "
                  f"{statistics.median(values) / base:15.3f} {sgdlab_cpu:13.2f} {browser_cpu:14.2f}")
        if length in drawn:
            print(f"the page's loss chart at the end: {drawn[length][0]} points, the last at iteration "
                  f"{drawn[length][1]}")
        results[length] = {"median_seconds": {name: statistics.median(seconds[length, name]) for name in contenders},
                           "ratio": {name: statistics.median(seconds[length, name]) / base for name in contenders},
                           "median_cpu_seconds": {name: [statistics.median(used[k] or 0 for used in cpu[length, name])
                                                         for k in (0, 1)] for name in contenders},
                           "load": [min(loads[length]), max(loads[length])]}
    print("histories identical to sgdlab train's: yes")
    print(json.dumps({"benchmark": "live_overhead", "repeats": args.repeats, "results": results}))


if __name__ == "__main__":
    main()
