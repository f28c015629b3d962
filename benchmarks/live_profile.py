"""Where watching's processor time goes: one `sgdlab train --live` run of the book's two-layer net with the page open
in headless Chromium (1400x900), profiled from inside the browser through the DevTools protocol.

Prints the processor seconds of each of Chromium's processes (renderer, GPU, browser...);
the page's JavaScript by function (self time, from V8's sampling profiler, split at the page's start-up: the
first inspection drawn; the profiler's own sampling, every 0.5 ms, adds to the renderer's time: the benchmark's
figures are measured without it); how many times each Plotly call ran on which chart, with its points and its time; and
the stream's events (how many of each kind, their bytes).

    python benchmarks/live_profile.py [--iters 60000] [--data-dir DIR] [--top 25]
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = os.environ.get("SGDLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
TICKS = os.sysconf("SC_CLK_TCK")

# Wraps each Plotly call the page makes (set before plotly.js runs): counts, points drawn and milliseconds per chart.
COUNT_PLOTLY_CALLS = """
(() => {
  const calls = {};
  window.__plotlyCalls = calls;
  let plotly;
  Object.defineProperty(window, "Plotly", { configurable: true, get: () => plotly, set: (value) => {
    plotly = value;
    for (const name of ["react", "newPlot", "extendTraces", "restyle", "relayout", "purge"]) {
      const original = value[name];
      if (!original) continue;
      value[name] = function (chart, data, ...rest) {
        const id = typeof chart === "string" ? chart : chart.id || (chart.parentElement && chart.parentElement.id) || "?";
        const key = `${name} ${id}`;
        const entry = calls[key] || (calls[key] = { count: 0, ms: 0, points: 0 });
        entry.count += 1;
        if (Array.isArray(data)) for (const trace of data) entry.points += (trace.x || trace.y || trace.z || []).length || 0;
        else if (data && data.x) for (const x of data.x) entry.points += x.length;
        const start = performance.now();
        const result = original.call(this, chart, data, ...rest);
        entry.ms += performance.now() - start;
        return result;
      };
    }
  } });
})();
"""


def process_cpu(root):
    """{pid: (kind, processor seconds)} of `root`'s descendants now alive."""
    parents, found = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        kind = next((part.decode()[7:] for part in command if part.startswith(b"--type=")), Path(command[0].decode()
                                                                                                  or "?").name)
        parents[int(stat.parent.name)] = (int(fields[1]), sum(int(f) for f in fields[11:13]) / TICKS, kind)
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, seconds, kind) in parents.items():
            if ppid == parent:
                found[pid] = (kind, seconds)
                frontier.append(pid)
    return found


def self_times(profile, split_at=None):
    """{(function, url, line): [self ms before `split_at`, after]} from a V8 CPU profile (microsecond timestamps)."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    times = collections.defaultdict(lambda: [0.0, 0.0])
    at = profile["startTime"]
    for sample, delta in zip(profile["samples"], profile["timeDeltas"]):
        at += delta
        frame = nodes[sample]["callFrame"]
        key = (frame["functionName"] or "(anonymous)", Path(frame["url"]).name.split("?")[0], frame["lineNumber"] + 1)
        times[key][0 if split_at is not None and at < split_at else 1] += delta / 1000
    return times


def lab_inclusive(profile):
    """{lab.js function: inclusive ms}: each sample counted once for every lab.js function on its stack."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    parent = {}
    for node in profile["nodes"]:
        for child in node.get("children", []):
            parent[child] = node["id"]
    totals = collections.Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"]):
        seen, node = set(), sample
        while node is not None:
            frame = nodes[node]["callFrame"]
            if frame["url"].split("?")[0].endswith("lab.js"):
                seen.add(f"{frame['functionName'] or '(anonymous)'}:{frame['lineNumber'] + 1}")
            node = parent.get(node)
        for name in seen:
            totals[name] += delta / 1000
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=60000)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        out = Path(scratch) / "run"
        argv = [sys.executable, "-m", "sgdlab", "train", "--quiet", "--no-plot", "--out", str(out), "--iters",
                str(args.iters), "--live", "--no-browser"]
        argv += ["--data-dir", str(args.data_dir)] if args.data_dir else []
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            address = re.match(r"lab page: (\S+)", process.stdout.readline())[1]
            before = process_cpu(os.getpid())
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(COUNT_PLOTLY_CALLS)
            cdp = page.context.new_cdp_session(page)
            events = collections.defaultdict(lambda: [0, 0])
            cdp.on("Network.eventSourceMessageReceived",
                   lambda event: events[event["eventName"]].__setitem__(slice(None), [
                       events[event["eventName"]][0] + 1, events[event["eventName"]][1] + len(event["data"])]))
            cdp.send("Network.enable")
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 500})
            cdp.send("Profiler.start")
            opened = time.monotonic()
            page.goto(address)
            page.wait_for_function("() => document.querySelector('#inspected-at').textContent.match(/\\d/)",
                                   timeout=120000)
            start_up = time.monotonic() - opened
            at_start_up = process_cpu(os.getpid())
            while not (out / "history.json").exists():
                time.sleep(0.1)
            page.wait_for_function("n => { const c = document.getElementById('loss-chart');"
                                   " return c.data && c.data[0].x[c.data[0].x.length - 1] === n; }", arg=args.iters,
                                   timeout=60000)
            profile = cdp.send("Profiler.stop")["profile"]
            calls = page.evaluate("() => window.__plotlyCalls")
            places = page.evaluate("() => [...document.querySelectorAll('figure[id]')].filter((e) => e.offsetParent)"
                                   ".map((e) => `${e.id} ${Math.round(e.getBoundingClientRect().top)}`)")
            after = process_cpu(os.getpid())
            page.close()
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=600)
            history = json.loads((out / "history.json").read_text())
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        browser.close()
    by_kind, early = collections.Counter(), collections.Counter()
    for pid, (kind, seconds) in after.items():
        kind = kind if kind.startswith(("node", "chromium", "python")) else "renderer" if "renderer-client" in kind \
            else "gpu" if "gpu-preferences" in kind else "utility"
        by_kind[kind] += seconds - before.get(pid, (kind, 0.0))[1]
        early[kind] += at_start_up.get(pid, (kind, seconds))[1] - before.get(pid, (kind, 0.0))[1]
    print(f"watched run: {args.iters} iterations, training {history['seconds'][-1]:.2f} s; page start-up "
          f"(to the first inspection drawn) {start_up:.2f} s; load {os.getloadavg()[0]:.1f}")
    print("processor seconds by process: " + ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in by_kind.most_common()
                                                       if kind != "python" and seconds > 0.005))
    print("of which until the first inspection drawn: " + ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in
                                                                   early.most_common() if kind != "python"))
    print("the figures shown, with their tops (px; the window is 900 tall):", ", ".join(places))
    # the profile's clock is microseconds since an arbitrary origin; its start is the page's opening, near enough
    split = profile["startTime"] + (start_up * 1e6)
    times = self_times(profile, split)
    total = [sum(value[k] for value in times.values()) for k in (0, 1)]
    print(f"\nrenderer's main thread, sampled: start-up {total[0] / 1000:.2f} s, after it {total[1] / 1000:.2f} s "
          f"(idle included)")
    print(f"{'self ms start-up':>16} {'self ms after':>14}  function")
    for key, (before_ms, after_ms) in sorted(times.items(), key=lambda item: -sum(item[1]))[:args.top]:
        print(f"{before_ms:16.0f} {after_ms:14.0f}  {key[0]} {key[1]}:{key[2]}")
    print("\nlab.js functions, inclusive ms (whole run):")
    for name, ms in lab_inclusive(profile).most_common(args.top):
        print(f"{ms:10.0f}  {name}")
    print("\nPlotly calls: count, points given, ms (script only)")
    for key, entry in sorted(calls.items(), key=lambda item: -item[1]["ms"]):
        print(f"{entry['count']:6} {entry['points']:9} {entry['ms']:9.0f}  {key}")
    print("\nstream events: count, bytes")
    for name, (count, size) in events.items():
        print(f"{count:6} {size:10}  {name} (mean {size / max(count, 1):.0f})")


if __name__ == "__main__":
    main()
