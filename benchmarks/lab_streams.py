"""What many pages cost the lab's server: floods of streams opened on a paused `sgdlab train --live` run and
closed again, the server's resident memory after each flood, and how long /api/runs takes to answer while a
flood's streams are open (a paused run's streams must hold no server thread).

    python benchmarks/lab_streams.py [--streams 300] [--floods 4] [--data-dir DIR]
"""

import argparse
import asyncio
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def status(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc: this benchmark needs Linux")


def resident_mb(pid):
    return status(pid, "VmRSS") / 1024


def request(origin, token, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-Sgdlab-Token": token, "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(origin + path, data, headers), timeout=60) as response:
        return json.loads(response.read())


async def flood(host, port, token, streams, origin, pid):
    """Open `streams` streams, each read to its first update and inspection; time /api/runs while they are
    open; close them."""
    async def one():
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /api/runs/live/stream HTTP/1.1\r\nHost: {host}:{port}\r\nX-Sgdlab-Token: {token}\r\n\r\n"
                     .encode())
        await writer.drain()
        while b"event: inspection" not in await reader.readline():  # after the first update, as a page gets them
            pass
        return writer

    writers = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(streams))), 300)
    await asyncio.sleep(1.0)  # every stream now waits for a change that does not come (the run is paused)
    threads = status(pid, "Threads")
    answers = []
    for _ in range(5):
        start = time.perf_counter()
        await asyncio.to_thread(request, origin, token, "/api/runs")
        answers.append(time.perf_counter() - start)
    for writer in writers:
        writer.close()
    await asyncio.sleep(2.0)  # the server notices the closed streams
    return statistics.median(answers), max(answers), threads


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--floods", type=int, default=4)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        argv = [sys.executable, "-m", "sgdlab", "train", "--live", "--no-browser", "--quiet", "--no-plot",
                "--out", f"{scratch}/run", "--iters", "1000000", "--hidden-size", "30", "--eval-every", "20"]
        argv += ["--data-dir", args.data_dir] if args.data_dir else []
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            address = re.match(r"lab page: (\S+)", process.stdout.readline())[1]
            origin, token = address.split("/?token=")
            host, port = origin.removeprefix("http://").split(":")
            while request(origin, token, "/api/runs")[0]["status"] != "training":
                time.sleep(0.2)
            time.sleep(3.0)  # an evaluation or two made: the streams have an inspection to send
            request(origin, token, "/api/runs/live/control", {"action": "pause"})
            time.sleep(2.0)
            print(f"server before any stream: {resident_mb(process.pid):.0f} MB resident", flush=True)
            for k in range(1, args.floods + 1):
                answer, slowest, threads = asyncio.run(flood(host, int(port), token, args.streams, origin,
                                                             process.pid))
                print(f"after flood {k} of {args.streams} streams on the paused run: "
                      f"{resident_mb(process.pid):.0f} MB resident; while they were open, {threads} threads and "
                      f"/api/runs answered in {answer * 1000:.0f} ms (median of 5, slowest {slowest * 1000:.0f} ms)",
                      flush=True)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
