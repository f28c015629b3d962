"""The lab server's guards and answers, through Starlette's test client: the token, the Host header, other
sites' requests, uploads, and what it serves of a run folder."""

import io
import json
import struct
import threading
import time
import zlib

import pytest
from PIL import Image, ImageDraw
from starlette.testclient import TestClient

from sgdlab.lab.catalog import Lab, folder_runs
from sgdlab.lab.server import MAX_UPLOAD_BYTES, create_app
from sgdlab.runs.run import train_run
from sgdlab.training.config import TrainConfig

TOKEN = "secret-token"


@pytest.fixture(scope="module")
def run_dirs(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, lr in (("a", 0.1), ("b", 0.5)):
        train_run(TrainConfig(iters=200, hidden_size=20, lr=lr, eval_every=100), out=root / name, data_dir=data_dir,
                  plot=False)
    return root


@pytest.fixture
def client(run_dirs, data_dir):
    app = create_app(Lab(folder_runs([run_dirs], data_dir)), TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def authorised(client):
    client.headers["X-Sgdlab-Token"] = TOKEN  # as the page sends it
    return client


def seven_png(size=200):
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).line([(50, 40), (150, 40), (90, 170)], fill=0, width=20)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_nothing_is_served_without_the_token(client):
    for path in ("/", "/api/runs", "/static/lab.js", "/static/plotly.min.js", "/api/runs/0-a/stream"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "open the address sgdlab printed, with its token" in response.text
    assert client.get("/?token=wrong").status_code == 403
    assert client.get("/api/runs", headers={"X-Sgdlab-Token": "wrong"}).status_code == 403
    assert client.get("/api/runs", headers={"X-Sgdlab-Token": TOKEN}).status_code == 200


def test_the_page_passes_the_token_on_to_its_own_requests_and_keeps_none_in_the_browser(client):
    response = client.get(f"/?token={TOKEN}")
    assert response.status_code == 200 and "<canvas" in response.text
    assert "set-cookie" not in response.headers
    assert f'<meta name="sgdlab-token" content="{TOKEN}">' in response.text
    assert f'src="/static/lab.js?token={TOKEN}"' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'self' http://127.0.0.1:*" in policy
    assert client.get("/static/lab.js").status_code == 403  # no cookie opens the rest
    assert client.get(f"/static/lab.js?token={TOKEN}").status_code == 200
    assert client.get(f"/static/plotly.min.js?token={TOKEN}").headers["content-type"].startswith("text/javascript")


def test_requests_naming_another_host_are_refused_as_dns_rebinding_would_send_them(client):
    authorised(client)
    assert client.get("/api/runs", headers={"Host": "attacker.example:8123"}).status_code == 400
    assert client.get("/api/runs", headers={"Host": "localhost:8123"}).status_code == 200


def test_a_post_from_a_page_of_another_site_is_refused(client):
    authorised(client)
    response = client.post("/api/runs/0-a/control", json={"action": "pause"},
                           headers={"Origin": "http://attacker.example"})
    assert response.status_code == 403


def test_only_the_pages_own_files_are_served(client):
    authorised(client)
    for path in ("/static/../server.py", "/static/index.html.bak", "/static/%2e%2e%2fserver.py",
                 "/api/runs/../../etc/passwd", "/api/runs/9-nothing/stream"):
        assert client.get(path).status_code == 404, path


def test_the_runs_are_listed_labelled_by_how_their_settings_differ(client):
    runs = authorised(client).get("/api/runs").json()
    assert [run["id"] for run in runs] == ["0-a", "1-b"]
    assert [run["label"] for run in runs] == ["lr=0.1", "lr=0.5"]
    assert {run["status"] for run in runs} == {"finished"} and not any(run["live"] for run in runs)


def test_a_finished_runs_stream_sends_its_record_and_its_inspection(client):
    authorised(client)
    with client.stream("GET", "/api/runs/0-a/stream") as stream:
        events = _read_events(stream, 2)
    update, inspection = events
    assert update[0] == "update" and len(update[1]["loss"]["values"]) == 200
    assert [row["iteration"] for row in update[1]["evaluations"]["rows"]] == [0, 100, 200]
    assert inspection[0] == "inspection"
    found = inspection[1]
    assert sum(map(sum, found["confusion"])) == 10_000 and len(found["per_digit"]) == 10
    assert found["weights"].startswith("data:image/png;base64,") and len(found["gallery"]) == 32
    assert found["filters"] is None and found["gradient_images"] == 5
    assert [check["name"] for check in found["gradients"]] == ["W1", "b1", "W2", "b2"]
    assert all(check["passed"] and check["kinks"] == 0 for check in found["gradients"])


def test_a_convolutional_runs_inspection_has_its_filters_and_a_digit_read_its_feature_maps(conv_run, data_dir):
    app = create_app(Lab(folder_runs([conv_run], data_dir)), TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Sgdlab-Token": TOKEN}) as client:
        with client.stream("GET", "/api/runs/0-conv-run/stream") as stream:
            (_, update), (kind, found) = _read_events(stream, 2)
        read = client.post("/api/runs/0-conv-run/predict", content=seven_png()).json()
    assert [row["iteration"] for row in update["evaluations"]["rows"]] == [0, 100, 200] and kind == "inspection"
    assert found["weights"] is None and found["filters"].startswith("data:image/png;base64,")
    assert sum(map(sum, found["confusion"])) == 10_000 and len(found["gallery"]) == 32
    assert found["gradient_images"] == 2
    assert [check["name"] for check in found["gradients"]] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(check["passed"] for check in found["gradients"])
    assert len(read["probabilities"]) == 10 and [len(layer["values"]) for layer in read["hidden_layers"]] == [20]  # the
    # hidden affine layer's units
    assert len(found["strip"]) == 24 and [h["after"] for h in found["histograms"]] == ["convolution", "affine"]
    stages = read["feature_maps"]
    assert [stage["layers"] for stage in stages] == [["convolution", "relu"], ["pooling"]]
    assert [(stage["width"], stage["height"]) for stage in stages] == [(8 * 25 - 1, 24), (8 * 13 - 1, 12)]
    assert all(stage["image"].startswith("data:image/png;base64,") for stage in stages)


def test_the_streams_end_once_the_server_is_ending(run_dirs, data_dir):
    """So that one Ctrl-C ends the page at once, without cutting off a tab's stream (and uvicorn's traceback)."""
    ending = threading.Event()
    app = create_app(Lab(folder_runs([run_dirs], data_dir)), TOKEN, ending=ending)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Sgdlab-Token": TOKEN}) as client, \
            client.stream("GET", "/api/runs/0-a/stream") as stream:
        events = []
        for line in stream.iter_lines():  # ends only when the stream does
            events += [line[len("event: "):]] if line.startswith("event: ") else []
            if events == ["update", "inspection"]:
                ending.set()
    assert events == ["update", "inspection"]


def test_a_drawn_digit_is_read_and_bad_uploads_are_refused_clearly(client):
    authorised(client)
    read = client.post("/api/runs/0-a/predict", content=seven_png()).json()
    assert len(read["probabilities"]) == 10 and abs(sum(read["probabilities"]) - 1) < 1e-5
    assert read["image"].startswith("data:image/png") and read["feature_maps"] is None
    assert [len(layer["values"]) for layer in read["hidden_layers"]] == [20]
    refused = client.post("/api/runs/0-a/predict", content=b"not an image",
                          headers={"X-Sgdlab-File-Name": "notes%20%E2%91%A0.txt"})  # as the page sends a name
    assert refused.status_code == 400 and refused.json() == {  # by its code too, for the page's language
        "error": "notes ①.txt: cannot read it as an image (not a picture format Pillow knows); use a PNG, JPEG, BMP "
                 "or similar", "code": "image.not-an-image", "params": {"name": "notes ①.txt"}}
    huge = client.post("/api/runs/0-a/predict", content=b"\0" * (MAX_UPLOAD_BYTES + 1))
    assert huge.status_code == 413 and huge.json() == {"error": "the image is larger than 8 MB: scale it down first",
                                                       "code": "upload.too-large", "params": {"megabytes": 8}}


def test_a_decompression_bomb_is_refused_without_being_decoded(client):
    authorised(client)
    bomb = blank_png(40_000)  # 1.6 gigapixels in a few hundred kB
    assert len(bomb) < MAX_UPLOAD_BYTES
    response = client.post("/api/runs/0-a/predict", content=bomb)
    assert response.status_code == 400 and "too large to read as an image" in response.json()["error"]
    assert response.json()["code"] == "image.too-large" and response.json()["params"]["name"] == "the image"


def blank_png(side):
    """A black 1-bit PNG of side x side pixels, written directly (four times sooner than Pillow writes it)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (side + 7) // 8)  # each row: its filter (none) and its pixels, 8 a byte
    packer = zlib.compressobj(9)
    rows = b"".join(packer.compress(row * min(1000, side - start)) for start in range(0, side, 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit per pixel, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_a_blank_png_written_directly_is_the_image_pillow_reads():
    with Image.open(io.BytesIO(blank_png(1001))) as image:
        assert (image.mode, image.size, image.getextrema()) == ("1", (1001, 1001), (0, 0))


def test_runs_in_folders_cannot_be_driven(client):
    authorised(client)
    response = client.post("/api/runs/0-a/control", json={"action": "pause"})
    assert response.status_code == 400 and "only a run started with 'sgdlab train --live'" in response.json()["error"]
    assert response.json()["code"] == "control.not-live" and response.json()["params"] == {"run": "a"}
    malformed = client.post("/api/runs/0-a/control", content=b"{")
    assert malformed.status_code == 400 and malformed.json()["code"] == "control.not-a-request"
    for missing in (client.post("/api/runs/0-nothing/control", json={"action": "pause"}),
                    client.post("/api/runs/0-nothing/predict", content=b"not read"),
                    client.get("/api/runs/0-nothing/stream")):  # each request on a run: none by that name
        assert missing.status_code == 404 and missing.json() == {"error": "no such run: 0-nothing", "code": "run.none",
                                                                 "params": {"run": "0-nothing"}}


def _read_events(stream, count):
    events, name = [], None
    for line in stream.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: "):])))
            if len(events) == count:
                return events
    return events


def test_a_diverged_runs_nan_and_infinity_reach_the_page_as_null_and_the_stream_goes_on():
    from sgdlab.lab.server import _event

    assert _event("inspection", {"gradients": [{"max_rel_error": float("nan")}], "x": [1.0, float("inf")]}) == (
        'event: inspection\ndata: {"gradients": [{"max_rel_error": null}], "x": [1.0, null]}\n\n')


def test_streams_past_the_bound_are_refused_with_a_reason_and_a_closed_one_frees_its_place(run_dirs, data_dir,
                                                                                           monkeypatch):
    import socket

    from sgdlab.lab import server
    from sgdlab.lab.serving import LabServer

    monkeypatch.setattr(server, "MAX_STREAMS", 1)

    def opened(lab_server, run_id):
        """A stream asked for on a socket of its own: (the socket, the status line, what followed it so far)."""
        connection = socket.create_connection(("127.0.0.1", lab_server.port), timeout=30)
        connection.sendall(f"GET /api/runs/{run_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"X-Sgdlab-Token: {lab_server.token}\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received or (b" 200 " in received and b"event: update" not in received
                                               or b" 503 " in received and not received.endswith(b"}")):
            received += connection.recv(65536)
        return connection, received.split(b"\r\n")[0].decode(), received.decode(errors="replace")

    with LabServer(Lab(folder_runs([run_dirs], data_dir))) as lab_server:
        first, status, _ = opened(lab_server, "0-a")
        assert status == "HTTP/1.1 200 OK"
        second, status, said = opened(lab_server, "1-b")
        second.close()
        assert status == "HTTP/1.1 503 Service Unavailable"
        assert said.endswith('{"error":"too many pages open (1 streams follow these runs already): close some and '
                             'reload","code":"streams.too-many","params":{"streams":1}}')
        first.close()
        deadline = time.monotonic() + 30
        while True:  # its place is freed once the server has seen it closed
            third, status, _ = opened(lab_server, "1-b")
            third.close()
            if status == "HTTP/1.1 200 OK":
                break
            assert time.monotonic() < deadline, "the closed stream's place was never freed"


def test_an_inspections_time_counts_what_its_worker_threads_do():
    """The page's share of a core is measured on what an inspection costs, its gradient check's workers included."""
    from concurrent.futures import ThreadPoolExecutor

    from sgdlab.lab.server import _timed

    def busy_worker():
        start = time.thread_time()
        while time.thread_time() - start < 0.2:
            pass
        return time.thread_time() - start

    def inspection():
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(busy_worker).result()

    worker_seconds, seconds = _timed(inspection)
    assert seconds >= worker_seconds >= 0.2


def test_a_slow_inspection_holds_back_none_of_the_runs_updates():
    """A large net's inspection takes seconds: meanwhile the stream goes on sending what training records."""
    import asyncio

    from sgdlab.lab.server import _events

    inspection_may_end = threading.Event()

    class Feed:
        version, snapshot, status = 0, object(), "training"

        def view(self, **cursor):
            return {"version": self.version, "generation": 0, "loss": {"width": 1, "start": 0, "values": []},
                    "evaluations": {"start": 0, "rows": []}}

        def call_on_change(self, seen_version, callback):
            return lambda: None

    class Run:
        id, feed = "slow", Feed()

        def refresh(self):
            pass

        def inspection(self):
            assert inspection_may_end.wait(60), "the inspection was never let end"
            return {"confusion": []}

    class Request:
        async def is_disconnected(self):
            return False

    async def follow():
        run = Run()
        events = _events(Request(), run, threading.Event(), {})
        seen = [(await anext(events)).split("\n")[0]]
        run.feed.version = 1  # training records more while the inspection is being made
        seen.append((await anext(events)).split("\n")[0])
        inspection_may_end.set()
        seen.append((await anext(events)).split("\n")[0])
        await events.aclose()
        return seen

    try:
        seen = asyncio.run(asyncio.wait_for(follow(), 60))
    finally:
        inspection_may_end.set()
    assert seen == ["event: update", "event: update", "event: inspection"]


@pytest.mark.parametrize("status, interval", [("training", 150.0), ("paused", 2.0), ("finished", 2.0)])
def test_a_slow_inspection_spaces_the_next_while_training_and_not_once_training_is_held(status, interval):
    """Looking into a run costs training its share of a core only while it trains: a paused run's latest
    evaluation is shown at once, however long the last inspection took."""
    from types import SimpleNamespace

    from sgdlab.lab.server import INSPECTION_INTERVAL, INSPECTION_SHARE, _inspection_interval

    run = SimpleNamespace(id="r", feed=SimpleNamespace(status=status))
    took = 3.0
    assert _inspection_interval(run, {}) == INSPECTION_INTERVAL
    assert _inspection_interval(run, {"r": (None, "event", took)}) == pytest.approx(
        took / INSPECTION_SHARE if status == "training" else INSPECTION_INTERVAL) == interval
