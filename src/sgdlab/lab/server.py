"""The lab page's web server: a Starlette app serving the page, its scripts and the runs' data.

Every request must carry the server's token (the printed address has it, and
the page passes it on in each of its own requests, as a query parameter or
the X-Sgdlab-Token header; no cookie, so nothing in the browser opens the page
without it) and a Host header naming the local machine, so neither another
local user nor a web page open in the same browser can read or drive a run.
Pages of this machine may frame it (a notebook shows it inline): without the
token they cannot load it. Updates stream as server-sent events: a run's, and a sweep's results as its
trials end.
The page's files come from this package and from plotly's: nothing is
fetched from elsewhere. Uploaded images are bounded in size and decoded by
`sgdlab.data.digit_images`, which refuses decompression bombs.
"""

import asyncio
import contextlib
import functools
import hmac
import io
import json
import math
import threading
import time
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route

from ..errors import SgdlabError
from .messages import message, message_of

MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # an image to read: a phone photo fits, a disk-filler does not
MAX_NAME_CHARACTERS = 120  # of an upload's file name, as its errors repeat it
STREAM_INTERVAL = 0.5  # seconds between two updates of a stream at most (a page redraws twice a second)
INSPECTION_INTERVAL = 2.0  # seconds between two inspections of the latest evaluation a stream sends, at least
INSPECTION_SHARE = 0.02  # of a core, at most, that looking into a run's evaluations takes beside its training
SWEEP_INTERVAL = 1.0  # seconds between two looks at a sweep's results.json
STREAM_HEARTBEAT = 15.0  # seconds of silence after which a stream says it is still there
MAX_STREAMS = 500  # open at once, a sweep's included: each holds its tab's buffers; more are refused, not queued
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
STATIC = resources.files("sgdlab.lab") / "static"
PAGE_FILES = {"lab.js": "text/javascript", "lab.css": "text/css", "i18n.json": "application/json"}
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                           "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'self' http://127.0.0.1:* http://localhost:*")


def plotly_script():
    """The path of plotly.js as plotly's Python package ships it (served from here, never from a CDN)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def create_app(lab, token, extra_hosts=(), ending=None):
    """The app for `lab` (a `Lab`: the runs it serves and what each can do), guarded by `token`. Once `ending` (a
    `threading.Event`) is set, its streams end, so that the server stops without cutting them off."""
    ending = ending if ending is not None else threading.Event()
    inspections = {}  # run id -> (its latest inspection, as sent, and what it cost): see `_inspection_event`
    open_streams = [0]  # how many streams are open (counted on the server's event loop)

    async def page(request):  # the token, checked by the guard, goes into the page for its own requests
        return _secured(HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8").replace("{{TOKEN}}", token)))

    async def static_file(request):
        name = request.path_params["name"]
        if name == "plotly.min.js":
            return _secured(FileResponse(plotly_script(), media_type="text/javascript"))
        if name not in PAGE_FILES:
            return PlainTextResponse("not found", status_code=404)
        return _secured(Response((STATIC / name).read_bytes(), media_type=PAGE_FILES[name]))

    async def runs(request):
        return JSONResponse(await run_in_threadpool(lab.summary))

    async def sweep(request):  # what the sweep searches; None when the runs are not a sweep's trials
        return JSONResponse({"sweep": lab.sweep and lab.sweep.definition()})

    async def sweep_stream(request):
        if lab.sweep is None:
            return _refusal(message("sweep.none"), 404)
        return _event_stream(_sweep_events(request, lab.sweep, ending))

    def of_a_run(handler):
        """`handler(request, run)` for the run the request's path names; a 404 naming it where there is none."""
        @functools.wraps(handler)
        async def handle(request):
            run = lab.run(request.path_params["run"])
            if run is None:
                return _no_such_run(request)
            return await handler(request, run)

        return handle

    @of_a_run
    async def stream(request, run):
        return _event_stream(_events(request, run, ending, inspections))

    def _event_stream(events):
        """A stream of `events`, counted among the open ones; past MAX_STREAMS, a 503 that says why."""
        if open_streams[0] >= MAX_STREAMS:
            return _refusal(message("streams.too-many", streams=MAX_STREAMS), 503)

        async def counted():
            open_streams[0] += 1
            try:
                async for event in events:
                    yield event
            finally:
                open_streams[0] -= 1
                await events.aclose()

        return StreamingResponse(counted(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @of_a_run
    async def control(request, run):
        try:
            body = json.loads(await request.body() or b"{}")
            action = body["action"]
        except (ValueError, KeyError, TypeError) as exc:
            return _refusal(message("control.not-a-request", problem=str(exc)), 400)
        try:
            await run_in_threadpool(run.control, action, body.get("lr"))
        except SgdlabError as exc:  # a bad rate, or a run that cannot be controlled
            return _refusal(message_of(exc), 400)
        return JSONResponse({"ok": True})

    @of_a_run
    async def predict(request, run):
        declared = int(request.headers.get("content-length") or 0)
        if declared > MAX_UPLOAD_BYTES:
            return _too_large()
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_UPLOAD_BYTES:
                return _too_large()
        try:
            return JSONResponse(await run_in_threadpool(run.read_digit, io.BytesIO(bytes(data)), _upload_name(request)))
        except SgdlabError as exc:  # not an image, a decompression bomb, no network to read it with
            return _refusal(message_of(exc), 400)

    routes = [
        Route("/", page),
        Route("/static/{name}", static_file),
        Route("/api/runs", runs),
        Route("/api/sweep", sweep),
        Route("/api/sweep/stream", sweep_stream),
        Route("/api/runs/{run}/stream", stream),
        Route("/api/runs/{run}/control", control, methods=["POST"]),
        Route("/api/runs/{run}/predict", predict, methods=["POST"]),
    ]
    hosts = [*LOCAL_HOSTS, *extra_hosts]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
                                                Middleware(TokenGuard, token=token)])


class TokenGuard:
    """Refuses every request without the token (in its query or its X-Sgdlab-Token header) and every POST sent
    by a page of another origin."""

    def __init__(self, app, token):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            request = Request(scope)
            origin = request.headers.get("origin")
            given = request.headers.get("x-sgdlab-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), self.token):
                return await _refused()(scope, receive, send)
            if request.method == "POST" and origin is not None and origin != f"http://{request.headers.get('host')}":
                return await PlainTextResponse("refused: a request from another site", status_code=403)(
                    scope, receive, send)
        await self.app(scope, receive, send)


async def _events(request, run, ending, inspections):
    """The run's server-sent events: everything at first (so a tab that reconnects catches up), then what
    changed, at most every STREAM_INTERVAL; the inspection of each new evaluation when it is ready, made
    meanwhile (a large net's takes seconds, in which the curves and the status go on)."""
    cursor = {"generation": None, "loss_width": None, "loss_start": 0, "evaluations_start": 0}
    version, inspected, quiet, inspected_at, inspecting = None, None, 0.0, -math.inf, None
    try:
        while not ending.is_set() and not await request.is_disconnected():
            await run_in_threadpool(run.refresh)
            feed = run.feed
            if feed.version != version:
                view = feed.view(**cursor)
                version = view["version"]
                cursor = {"generation": view["generation"], "loss_width": view["loss"]["width"],
                          "loss_start": view["loss"]["start"] + len(view["loss"]["values"]),
                          "evaluations_start": view["evaluations"]["start"] + len(view["evaluations"]["rows"])}
                yield _event("update", view)
                quiet = 0.0
            if inspecting is not None and inspecting.done():
                yield inspecting.result()
                inspecting, quiet = None, 0.0
            now = asyncio.get_running_loop().time()
            if (inspecting is None and feed.snapshot is not None and inspected is not feed.snapshot
                    and now - inspected_at >= _inspection_interval(run, inspections)):
                inspected, inspected_at = feed.snapshot, now
                inspecting = asyncio.ensure_future(_inspection_event(run, inspections))
            await asyncio.sleep(STREAM_INTERVAL)
            quiet += STREAM_INTERVAL
            if quiet >= STREAM_HEARTBEAT:
                yield ": still here\n\n"
                quiet = 0.0
            await _changed(feed, version, 1.0, inspecting)
    finally:
        if inspecting is not None:
            inspecting.cancel()


async def _changed(feed, seen_version, timeout, inspecting=None):
    """Until `feed` changes after `seen_version`, the `inspecting` task ends or `timeout` seconds pass, on the
    event loop: a stream of a paused run holds no thread the other requests need (hundreds of them would hold
    them all)."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def wake():  # on training's thread
        with contextlib.suppress(RuntimeError):  # the server's loop has closed
            loop.call_soon_threadsafe(changed.set)

    cancel = feed.call_on_change(seen_version, wake)
    waiting = asyncio.ensure_future(changed.wait())
    try:
        await asyncio.wait([waiting] + ([inspecting] if inspecting is not None else []), timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        cancel()


async def _sweep_events(request, sweep, ending):
    """The sweep's results (`SweepTrials.results`): all at first, then again whenever they change."""
    sent, quiet = None, 0.0
    while not ending.is_set() and not await request.is_disconnected():
        results = await run_in_threadpool(sweep.results)
        if results != sent:
            sent, quiet = results, 0.0
            yield _event("results", results)
        await asyncio.sleep(SWEEP_INTERVAL)
        quiet += SWEEP_INTERVAL
        if quiet >= STREAM_HEARTBEAT:
            yield ": still here\n\n"
            quiet = 0.0


def _inspection_interval(run, inspections):
    """The seconds a stream waits between two inspections of `run`: INSPECTION_INTERVAL, or, while it trains,
    longer where the last one's time (looking into the evaluation and writing its event) would be more than
    INSPECTION_SHARE of them. A run evaluated many times a second is looked into every few seconds, so that the
    page's work stays a small share of a core beside training's, however large the net; a paused or ended run
    takes nothing from training, and its latest evaluation is looked into at once."""
    sent = inspections.get(run.id)
    if run.feed.status != "training" or not sent:
        return INSPECTION_INTERVAL
    return max(INSPECTION_INTERVAL, sent[2] / INSPECTION_SHARE)


async def _inspection_event(run, inspections):
    """The event of the run's latest inspection, written once for all its streams (its images make it large, and
    hundreds of pages would each hold a copy being written), the time it took recorded."""
    found, seconds = await run_in_threadpool(_timed, run.inspection)
    sent = inspections.get(run.id)
    if sent is None or sent[0] is not found:
        event, writing = _timed(_event, "inspection", found)
        sent = inspections[run.id] = (found, event, seconds + writing)
    return sent[1]


def _timed(work, *args):
    """`work(*args)` and the seconds it took, by the clock: its processor time would miss what its worker threads
    (a gradient check's) and BLAS's do, and the clock is never less than the busiest of them."""
    start = time.perf_counter()
    return work(*args), time.perf_counter() - start


def _upload_name(request):
    """The name of the file the user chose, as the page sends it (percent-encoded, in X-Sgdlab-File-Name), for
    the errors to name: printable, at most MAX_NAME_CHARACTERS; "the image" when none is sent."""
    name = unquote(request.headers.get("x-sgdlab-file-name", ""))
    name = "".join(character for character in name if character.isprintable())[:MAX_NAME_CHARACTERS]
    return name or "the image"


def _event(name, data):
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:  # a diverged run's NaN or infinity (its gradient check, its weights): sent as null, so
        text = json.dumps(_finite(data), allow_nan=False)  # that the stream goes on and says "diverged"
    return f"event: {name}\ndata: {text}\n\n"


def _finite(value):
    """`value` with every NaN or infinite number, however deep in lists and dicts, made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _secured(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused():
    return PlainTextResponse("refused: open the address sgdlab printed, with its token (or ask sgdlab for it again)",
                             status_code=403)


def _refusal(said, status):
    """A request refused with the message `said` (see `sgdlab.lab.messages`): its English text as `error`, its code
    and values for the page to say it in its language."""
    return JSONResponse({"error": said["text"], "code": said["code"], "params": said["params"]}, status_code=status)


def _no_such_run(request):
    return _refusal(message("run.none", run=request.path_params["run"][:MAX_NAME_CHARACTERS]), 404)


def _too_large():
    return _refusal(message("upload.too-large", megabytes=MAX_UPLOAD_BYTES // (1024 * 1024)), 413)
