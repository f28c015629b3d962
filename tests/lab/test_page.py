"""The lab page end to end: `sgdlab train --live` in a child process, the page in headless Chromium driven by
Playwright. Nothing the page asks for may leave the machine, and nothing may go wrong in its console."""

import io
import json
import re
import time
from importlib import resources

import pytest
from PIL import Image, ImageDraw

from tests.processes import lab_page, press_ctrl_c

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def conv_view(conv_run, data_dir):
    """`sgdlab view` of the convolutional net's finished run, for the tests that only look at it (each in tabs of
    its own); yields its address."""
    with lab_page("view", conv_run, "--no-browser", "--data-dir", data_dir) as (process, address):
        yield address
        press_ctrl_c(process)


@pytest.fixture(scope="module")
def conv_tab(browser, conv_view):
    """A tab on `conv_view`'s page, for the test that looks into the run and draws on it, and for those that only
    call the page's own functions (what it holds by then changes nothing they compute)."""
    tab = Page(browser, conv_view)
    yield tab
    tab.page.close()


class Page:
    """A tab on the lab page that records every request it makes and every console message."""

    def __init__(self, browser, address, locale="en-US", context=None):
        """A tab of its own browser context (cookies, storage), speaking `locale`; or a new tab of `context`."""
        self.origin = address.split("/?")[0]
        self.requests, self.problems = [], []
        viewport = {"width": 1400, "height": 1800}
        self.page = context.new_page() if context else browser.new_page(viewport=viewport, locale=locale)
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: self.problems.append(message.text) if message.type == "error"
                     else None)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.route(re.compile(r"^(?!" + re.escape(self.origin) + r"/).*"), lambda route: route.abort())
        self.page.goto(address)

    def loss_points(self):
        return self.page.evaluate("() => { const c = document.getElementById('loss-chart');"
                                  " return c.data && c.data.length ? c.data[0].x.length : 0; }")

    def iteration(self):
        text = self.page.text_content("#progress") or ""
        return int(match[1]) if (match := re.match(r"iteration (\d+) of", text)) else None

    def wait_for(self, condition, timeout=120):
        """Poll `condition` until it holds; the timeout only bounds a hang (a loaded machine's run may take tens
        of seconds to its next evaluation)."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            self.page.wait_for_timeout(100)

    def outside_the_first_screen(self, ids, width=1400, height=900):
        """Those of the elements `ids` that do not lie wholly within the first screen of a window of width x height
        (the page's layout depends on the width alone: a taller window shows the same page)."""
        assert self.page.viewport_size["width"] == width
        self.page.evaluate("() => window.scrollTo(0, 0)")
        return self.page.evaluate("""([ids, width, height]) => ids.filter((id) => {
            const box = document.getElementById(id).getBoundingClientRect();
            return !(box.width > 0 && box.left >= 0 && box.top >= 0 && box.right <= width && box.bottom <= height);
        })""", [ids, width, height])

    def wider_than_the_window(self):
        """Every shown element reaching past the window's sides, named; the page's own width if wider. (Plotly's
        text-measuring svg, #js-plotly-tester, stands far off-screen on purpose: it is no part of the page.)"""
        return self.page.evaluate("""() => {
            const shown = [...document.querySelectorAll("body *")].filter((e) => !e.closest("#js-plotly-tester"));
            const wide = shown.filter((e) => {
                const box = e.getBoundingClientRect();
                return box.width > 0 && (box.left < -0.5 || box.right > innerWidth + 0.5);
            }).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute("class")}`);
            const page = document.documentElement.scrollWidth;
            return page > innerWidth ? [...wide, `the page: ${page}`] : wide;
        }""")

    def reflows_to(self, width):
        """The window narrowed to `width` (900 px tall); once the charts have followed, what still overflows."""
        self.page.set_viewport_size({"width": width, "height": 900})
        deadline = time.monotonic() + 60  # it ends as soon as nothing overflows: this bounds a hang only
        while self.wider_than_the_window() and time.monotonic() < deadline:  # plotly redraws a moment later
            self.page.wait_for_timeout(100)
        return self.wider_than_the_window()

    def assert_nothing_left_the_machine_and_nothing_went_wrong(self):
        assert self.requests and all(url.startswith(self.origin + "/") or url.startswith("data:")
                                     for url in self.requests), self.requests
        assert self.problems == []


def digit_png(strokes, size=280):
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).line([(x * size, y * size) for x, y in strokes], fill=255, width=size // 12)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_page_shows_the_run_learning_and_drives_it(browser, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    with lab_page("train", "--live", "--no-browser", "--data-dir", data_dir, "--out", run_dir, "--iters", "100000",
                  "--hidden-size", "30", "--eval-every", "300", "--train-size", "5000",
                  "--no-plot") as (process, address):
        # (trained on 5000 images, which each evaluation measures, rather than 60000: what the page shows of a run
        # in training is the same, at a fraction of the processor time the tests beside it need)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=\S+", address)
        drive_the_page(browser, address, run_dir, tmp_path)
        press_ctrl_c(process)  # after the page's stop: ends the page


def drive_the_page(browser, address, run_dir, tmp_path):
    tab = Page(browser, address)
    tab.wait_for(lambda: tab.loss_points() > 0)
    latest = ("() => { const drawn = document.getElementById('loss-chart').calcdata?.[0];"  # as last drawn (a trace's
              " return drawn ? drawn[drawn.length - 1].x : null; }")  # data may be the page's own, growing arrays)
    first = tab.page.evaluate(latest)
    tab.wait_for(lambda: (tab.iteration() or 0) > first + 50)  # training goes on (the curve follows: see the step)
    evaluations = "() => document.getElementById('accuracy-chart').data?.[0]?.x.length ?? 0"  # none until drawn
    tab.wait_for(lambda: tab.page.evaluate(evaluations) > 1)
    tab.wait_for(lambda: tab.page.locator("#gallery figure").count() == 32)  # an evaluation looked into
    assert tab.page.locator("#gradients tbody tr").count() == 4
    assert tab.page.locator("#gradients td.ok").count() == 4

    tab.page.locator("#canvas").scroll_into_view_if_needed()
    box = tab.page.locator("#canvas").bounding_box()
    tab.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    tab.page.mouse.down()
    for step in range(1, 11):  # a synthetic stroke, top to bottom: a "1"
        tab.page.mouse.move(box["x"] + box["width"] * (0.5 - 0.01 * step), box["y"] + box["height"] * (0.15 + 0.07 * step))
    tab.page.mouse.up()  # drawn early: it is read again, as the weights change, while the rest goes on
    tab.wait_for(lambda: (tab.page.text_content("#prediction") or "").startswith("Read as")
                 or tab.page.text_content("#draw-message"))
    assert tab.page.text_content("#draw-message") == ""
    read_after = re.compile(r"\(the weights after iteration (\d+)\)$")
    first_read = int(read_after.search(tab.page.text_content("#prediction"))[1])

    pace = ("() => ['per-second', 'time-left', 'progress'].map((id) => document.getElementById(id).textContent)")
    tab.wait_for(lambda: tab.page.evaluate(pace)[0] != "—")
    per_second, left, progress = tab.page.evaluate(pace)  # from one view of the run
    assert float(per_second) > 10 and re.fullmatch(r"(\d+:)?\d{1,2}:\d\d", left)  # 100000 iterations: minutes left
    seconds_left = sum(int(part) * 60 ** k for k, part in enumerate(reversed(left.split(":"))))
    done = int(re.match(r"iteration (\d+) of 100000", progress)[1])
    assert abs(seconds_left - (100000 - done) / float(per_second)) <= 1 + 0.01 * seconds_left
    assert tab.page.is_visible("#pace")
    tab.page.click("#pause")
    tab.wait_for(lambda: tab.page.text_content("#status") == "paused")
    assert tab.page.evaluate(pace)[:2] == ["—", "—"]
    held = tab.iteration()
    tab.page.wait_for_timeout(800)
    assert tab.iteration() == held  # paused between two iterations
    tab.page.click("#step")
    tab.wait_for(lambda: tab.iteration() == held + 1)
    tab.page.wait_for_timeout(500)
    assert tab.iteration() == held + 1 and tab.page.text_content("#status") == "paused"

    tab.wait_for(lambda: tab.page.evaluate(latest) == held + 1)  # the step drawn: the curve has grown from
    # `first`, without a reload
    redraws = ("() => { window.lossRedraws = 0; const react = Plotly.react; Plotly.react = function (chart, ...rest) {"
               " if (chart === 'loss-chart') window.lossRedraws += 1; return react.call(this, chart, ...rest); }; }")
    tab.page.evaluate(redraws)  # from here, until the next step, the loss does not change: nor does its chart (its
    # redraws counted as they are asked for: plotly's own event of the one just made may come after this)
    for typed, said in (("-1", "the learning rate must be a positive number, got -1"),
                        ("", "type a learning rate first: a positive number, such as 0.01")):
        tab.page.fill("#lr", typed)
        tab.page.click("#set-lr")
        tab.wait_for(lambda: tab.page.text_content("#control-message") != "")
        assert tab.page.text_content("#control-message") == said
    tab.page.fill("#lr", "0.05")
    asked_at = tab.page.evaluate("() => performance.now()")
    tab.page.click("#set-lr")  # while paused: said at once, taken at the next update
    tab.wait_for(lambda: "(0.05 from the next iteration)" in tab.page.text_content("#lr-now"))
    assert tab.page.text_content("#control-message") == "" and tab.iteration() == held + 1
    tab.wait_for(lambda: tab.page.evaluate("() => redrawnAt") > asked_at)  # a redraw since the page heard of the
    tab.page.wait_for_timeout(600)  # rate, and its time and more: the loss is the same
    assert tab.page.evaluate("() => window.lossRedraws") == 0
    assert tab.page.evaluate(latest) == held + 1  # the curve ends where training is, whatever its buckets' width
    tab.page.click("#step")
    tab.wait_for(lambda: tab.page.text_content("#lr-now") == "learning rate 0.05")
    marks = "() => [...document.querySelectorAll('#loss-chart .annotation-text')].map((e) => e.textContent)"
    tab.wait_for(lambda: tab.page.evaluate(marks) == ["lr 0.05"])  # the change marked on the curve, where it was made
    tab.page.click("#resume")
    tab.wait_for(lambda: int(read_after.search(tab.page.text_content("#prediction"))[1]) > first_read)  # read
    # again, without drawing again, as training changes the weights
    assert tab.page.text_content("#prediction").startswith("Read as 1,")
    assert tab.page.evaluate("() => document.getElementById('probabilities-chart').data[0].y.length") == 10
    tab.page.click("#pause")  # nothing below needs training to go on
    tab.wait_for(lambda: tab.page.text_content("#status") == "paused")

    fitted = "(id) => document.getElementById(id)._fullLayout.yaxis.range"
    accuracies = ("() => document.getElementById('accuracy-chart').data.flatMap((t) => t.y.slice(1))"
                  ".filter((y) => y !== null)")
    tab.wait_for(lambda: len(tab.page.evaluate(accuracies)) >= 2)
    low, high = tab.page.evaluate(fitted, "accuracy-chart")
    later = tab.page.evaluate(accuracies)
    assert 0 < low < min(later) and max(later) < high <= 1  # the axis fitted to the evaluations after the first
    # (its top at 1 where the margin above them would pass it: a run that has trained far by now)
    tab.page.check("#accuracy-whole")
    tab.wait_for(lambda: tab.page.evaluate(fitted, "accuracy-chart") == [0, 1])
    tab.page.check("#loss-log")
    axis = "() => [document.getElementById('loss-chart')._fullLayout.yaxis.type, document.querySelector('#loss-chart .ytitle').textContent]"
    tab.wait_for(lambda: tab.page.evaluate(axis) == ["log", "loss (log scale)"])
    width = tab.page.evaluate("() => runs.get(focused).loss.width")
    assert tab.page.text_content("#raw-note") == ("raw: each iteration's mini-batch loss" if width == 1 else
                                                  f"raw: the mean of each {width} iterations (a long run is kept as "
                                                  "at most 4096 means)")

    second = Page(browser, address)  # another tab, opened late, catches up on everything
    second.wait_for(lambda: second.iteration() == tab.iteration() and second.loss_points() > 0)

    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    tab.page.set_input_files("#file", str(notes))
    tab.wait_for(lambda: tab.page.text_content("#draw-message") != "")
    assert tab.page.text_content("#draw-message") == ("notes.txt: cannot read it as an image (not a picture format "
                                                      "Pillow knows); use a PNG, JPEG, BMP or similar")
    picture = tmp_path / "seven.png"
    picture.write_bytes(digit_png([(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]))
    tab.page.click("#clear")
    tab.page.set_input_files("#file", str(picture))
    tab.wait_for(lambda: tab.page.text_content("#prediction").startswith("Read as 7,"))
    # the essentials of a run in training share the first screen of a 1400x900 window: its controls, both curves,
    # the network at its latest evaluation and its guesses on the strip of test digits, the drawing pad and what
    # the network read
    assert tab.outside_the_first_screen(["controls", "loss-figure", "accuracy-figure", "units", "confusion-figure",
                                         "per-digit-figure", "strip-figure", "canvas", "probabilities-figure"]) == []
    assert tab.reflows_to(800) == []  # one column, nothing wider than the window
    loss, accuracy = (tab.page.locator(f"#{name}-figure").bounding_box() for name in ("loss", "accuracy"))
    assert accuracy["y"] > loss["y"]  # one under the other

    tab.page.click("#stop")
    assert tab.page.text_content("#status") == "stopping..."  # at once: the run saves before it says "stopped"
    assert tab.page.is_disabled("#pause") and tab.page.is_disabled("#stop")
    tab.wait_for(lambda: tab.page.text_content("#status") == "stopped")
    history = json.loads((run_dir / "history.json").read_text())
    assert history["stopped"].startswith("interrupted by the lab page after iteration")
    assert [change["lr"] for change in history["lr_changes"]] == [0.05]
    assert history["lr_changes"][0]["iteration"] == held + 1  # after the step taken before it
    assert (run_dir / "checkpoint.npz").exists()  # it can be resumed
    refused = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert tab.problems.count(refused) == 3  # the two rates and the text file above, refused as they should be
    tab.problems = [problem for problem in tab.problems if problem != refused]
    for page in (tab, second):
        page.assert_nothing_left_the_machine_and_nothing_went_wrong()


def test_a_chart_out_of_sight_waits_until_scrolled_to_and_costly_redraws_come_less_often(browser, data_dir, tmp_path):
    """Watching must cost the training beside it little: no chart is drawn out of sight (below the first screen or
    scrolled away from), each is drawn as soon as it comes into sight, and the curves are redrawn the less often
    the more a redraw costs. The run is paused and stepped, each step an iteration and an evaluation: the page
    gets what changes as the test makes it, and a run held between steps takes no core from the tests beside it."""
    with lab_page("train", "--live", "--no-browser", "--data-dir", data_dir, "--out", tmp_path / "run", "--iters",
                  "100000", "--hidden-size", "30", "--eval-every", "1", "--train-size", "5000",
                  "--no-plot") as (process, address):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        tab = Page(browser, address, context=context)
        tab.wait_for(lambda: tab.page.text_content("#status") == "training")
        tab.page.click("#pause")
        tab.wait_for(lambda: tab.page.text_content("#status") == "paused")

        def step():  # one iteration, and its evaluation, as the page hears of it (the button pressed where it is:
            at = tab.iteration()  # a click would first scroll it, and the curves beside it, into sight)
            tab.page.dispatch_event("#step", "click")
            tab.wait_for(lambda: tab.iteration() > at)

        evaluations = "() => document.getElementById('accuracy-chart').data?.[0]?.x.length ?? 0"
        while tab.page.evaluate(evaluations) < 3:
            step()
        spread = "() => [...document.querySelectorAll('#spread .chart')].map((c) => c.data?.[8]?.x.length ?? 0)"
        before, seen = tab.page.evaluate(spread), tab.page.evaluate(evaluations)  # (drawn once at most, while the
        # page was first laid out and the charts above it had no height yet)
        step()
        tab.wait_for(lambda: tab.page.evaluate(evaluations) > seen)
        assert tab.page.evaluate(spread) == before  # below the first screen: not drawn while an evaluation came
        tab.page.locator("#spread-figure").scroll_into_view_if_needed()
        tab.wait_for(lambda: len(drawn := tab.page.evaluate(spread)) == 2 and min(drawn) > seen)  # W1, W2:
        # drawn on coming into sight

        drawing = ("() => [...document.querySelectorAll('#loss-chart .scatterlayer .js-line')]"
                   ".map((e) => e.getAttribute('d'))")
        # (what the chart shows: its traces' data may be the page's own arrays, which grow with the updates)
        tab.page.evaluate("() => { const below = document.createElement('div'); below.style.height = '3000px';"
                          " document.body.append(below); window.scrollTo(0, document.documentElement.scrollHeight); }")
        # (far below: the page's own parts growing as they fill in cannot bring the curves back into sight)
        assert tab.page.evaluate("() => document.getElementById('loss-chart').getBoundingClientRect().bottom") < -2000
        watched = ["loss-chart", "confusion-chart", "per-digit-chart"]  # the curve and the evaluation looked into
        tab.wait_for(lambda: tab.page.evaluate("(ids) => ids.every((id) => !inSight.has(document.getElementById(id)))",
                                               watched))  # the page has heard so from its observer (a task of its
        # own, late on a loaded machine)
        tab.page.evaluate("() => { window.redrawsOf = {}; window.inspected = runs.get(focused).inspection;"
                          " const react = Plotly.react; Plotly.react = function (chart, ...rest) {"
                          " window.redrawsOf[chart] = (window.redrawsOf[chart] || 0) + 1;"
                          " return react.call(this, chart, ...rest); }; }")  # redraws counted as asked for
        held = tab.page.evaluate(drawing)
        step()  # an update the curve lacks has come, and the evaluation is looked into again,
        since = tab.page.evaluate("() => performance.now()")
        tab.wait_for(lambda: tab.page.evaluate("() => redrawnAt") > since and tab.page.evaluate(
            "() => runs.get(focused).inspection !== window.inspected"))  # and a redraw since: scrolled away, the
        # curve and the evaluation's charts wait
        assert tab.page.evaluate("(ids) => ids.map((id) => window.redrawsOf[id] || 0)", watched) == [0, 0, 0]
        assert tab.page.evaluate(drawing) == held

        # every redraw made to take 30 ms more of script: the next waits at least 30 ms / REDRAW_SHARE after it
        tab.page.evaluate("""() => { window.lossDrawnAt = []; const react = Plotly.react;
            Plotly.react = function (chart, ...rest) {
                if (chart === "loss-chart") window.lossDrawnAt.push(performance.now());
                const until = performance.now() + 30;
                while (performance.now() < until);
                return react.call(this, chart, ...rest);
            }; }""")
        tab.page.evaluate("() => window.scrollTo(0, 0)")
        tab.wait_for(lambda: tab.page.evaluate(drawing) != held)  # and is drawn at once when it is back in sight,
        latest = ("() => { const found = runs.get(focused).inspection, chart = (id) => document.getElementById(id);"
                  " return JSON.stringify([chart('confusion-chart').data[0].z, chart('per-digit-chart').data[0].y])"
                  " === JSON.stringify([found.confusion, found.per_digit]); }")
        tab.wait_for(lambda: tab.page.evaluate(latest))  # as are the evaluation's charts, from the latest one
        while len(tab.page.evaluate("() => window.lossDrawnAt")) < 2:  # that redraw, and the next: the curve
            step()  # changing all the while
        first, then = tab.page.evaluate("() => window.lossDrawnAt")[:2]
        longest, share = tab.page.evaluate("() => [REDRAW_LONGEST_MS, REDRAW_SHARE]")
        least = min(longest, max(1000, 30 / share))
        assert least > 1000 and then - first >= 0.95 * least  # (1000 ms apart, whatever a redraw cost, before)
        tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
        context.close()
        press_ctrl_c(process)


def test_the_page_shows_a_convolutional_nets_filters_and_what_each_makes_of_a_digit(browser, conv_view, conv_tab,
                                                                                    conv_run, tmp_path):
    (tmp_path / "early.png").write_bytes(digit_png([(0.5, 0.15), (0.45, 0.85)]))
    address = conv_view
    early = browser.new_page()  # a digit chosen before the page knows its runs is read once it does
    held = []
    early.route(re.compile(r"/api/runs$"), lambda route: held.append(route))
    early.goto(address)
    early.set_input_files("#file", str(tmp_path / "early.png"))
    while not held:
        early.wait_for_timeout(50)
    held[0].continue_()
    early.wait_for_function("() => document.getElementById('prediction').textContent.startsWith('Read as')")
    early.close()
    tab = conv_tab
    shown = "(id) => { const e = document.getElementById(id); return e.offsetWidth > 0 && !e.closest('[hidden]'); }"
    natural = "(id) => { const e = document.getElementById(id); return [e.naturalWidth, e.naturalHeight]; }"
    tab.wait_for(lambda: tab.page.evaluate(natural, "filters")[0] > 0)
    assert tab.page.evaluate(natural, "filters") == [8 * 6 - 1, 6 - 1]  # 8 filters of 5x5 in a row
    assert tab.page.evaluate(shown, "filters") and not tab.page.evaluate(shown, "weights")
    assert "The first convolution's filters" in tab.page.text_content("#filters-figure figcaption")
    tab.wait_for(lambda: tab.page.locator("#gradients td.ok").count() == 6)  # W1 b1 W2 b2 W3 b3
    assert tab.page.text_content("#gradient-images") == "(on the first 2 training images)"
    assert not tab.page.evaluate(shown, "maps-figure")  # nothing read yet
    empty = ("() => [...document.querySelectorAll('figure')].filter((f) => f.offsetWidth > 0"
             " && !f.querySelector('svg.main-svg, canvas')"
             " && ![...f.querySelectorAll('img')].some((i) => i.naturalWidth))"
             ".map((f) => f.id || f.textContent.trim().slice(0, 40))")
    assert tab.page.evaluate(empty) == []  # no white box stands where nothing is drawn yet
    # each weight matrix's spread at the run's evaluations, as its history.json recorded them: a chart each
    spread = ("() => [...document.querySelectorAll('#spread .chart')].map((c) => [c.layout.yaxis.title.text,"
              " c.data.length, c.data[8].x, c.data[0].y, c.data[8].y, c.data[1].y])")
    history = json.loads((conv_run / "history.json").read_text())
    assert history["iteration"] == [0, 100, 200]
    tab.wait_for(lambda: len(tab.page.evaluate(spread)) == 3)  # at the next redraw: the inspection, computed for
    # the tab above, may come first
    assert tab.page.evaluate(spread) == [  # minimum, median, maximum; bands between them
        [name, 9, history["iteration"], *([at[name][p] for at in history["weight_percentiles"]] for p in (0, 4, 8))]
        for name in ("W1", "W2", "W3")]  # the convolution's, the hidden affine layer's, the output layer's
    assert tab.page.evaluate(shown, "spread-figure")
    loss, accuracy = (tab.page.locator(f"#{name}-figure").bounding_box() for name in ("loss", "accuracy"))
    draw = tab.page.locator(".draw").bounding_box()
    assert loss["y"] == accuracy["y"] == draw["y"] and draw["x"] + draw["width"] > 1400 - 40  # side by side,
    # the page's width shared: nothing wraps, nothing is left empty at 1400 px
    assert tab.outside_the_first_screen(["loss-figure", "accuracy-figure", "filters-figure", "confusion-figure",
                                         "canvas"]) == []
    assert tab.page.text_content("#lr-now") == "learning rate 0.001"  # the run's, as it was trained
    # the smoothed loss, an exponential mean debiased: it starts at the first loss, and its slope changes
    # nowhere abruptly (a trailing 100-iteration mean's slope doubles at iteration 100)
    curve = tab.page.evaluate("() => smoothed(Array.from({length: 300}, (_, i) => 300 - i), 1)")
    slopes = [b - a for a, b in zip(curve, curve[1:])]
    assert curve[0] == 300 and max(abs(b - a) for a, b in zip(slopes, slopes[1:])) < 0.05
    assert tab.page.evaluate("() => smoothed([2, 2, 2], 16)") == [2, 2, 2]

    picture = tmp_path / "seven.png"
    picture.write_bytes(digit_png([(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]))
    tab.page.set_input_files("#file", str(picture))
    maps = "() => [...document.querySelectorAll('#maps img')].map((e) => [e.naturalWidth, e.offsetWidth])"
    tab.wait_for(lambda: len(tab.page.evaluate(maps)) == 2 and all(w > 0 for w, _ in tab.page.evaluate(maps)))
    assert tab.page.evaluate(maps) == [[199, 398], [103, 206]]  # 8 maps of 24x24, then 8 of 12x12, at 2x
    assert tab.page.evaluate(shown, "maps-figure") and tab.page.text_content("#draw-message") == ""
    assert tab.page.text_content("#maps-stages") == ("Feature maps after convolution and relu (left), then "
                                                     "after pooling (right)")
    assert tab.page.text_content("#prediction").startswith("Read as")
    hidden = "() => [...document.querySelectorAll('#hidden-charts .chart')].map((c) => c.data[0].y.length)"
    assert tab.page.evaluate(hidden) == [20]  # its one hidden affine layer
    histograms = "() => [...document.querySelectorAll('#histograms span')].map((s) => s.textContent)"
    assert tab.page.evaluate(histograms) == ["convolution 1 → relu", "affine 1 → relu"]
    assert tab.reflows_to(800) == []
    tab.assert_nothing_left_the_machine_and_nothing_went_wrong()


TEXTS = json.loads((resources.files("sgdlab.lab") / "static" / "i18n.json").read_text(encoding="utf-8"))
IN_LANGUAGE = "() => [document.documentElement.lang, document.querySelector('#loss-chart .ytitle')?.textContent]"


def test_a_korean_browser_gets_the_page_in_korean_and_its_switch_changes_it(browser, conv_view, tmp_path):
    static = """() => [...document.querySelectorAll("[data-i18n], [data-i18n-title]")].map((e) => [
        e.dataset.i18n || e.dataset.i18nTitle, e.dataset.i18n ? e.textContent : e.title])"""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ko-KR")
    address = conv_view
    tab = Page(browser, address, context=context)
    assert tab.page.evaluate("() => navigator.languages[0]") == "ko-KR"
    tab.wait_for(lambda: tab.page.evaluate(IN_LANGUAGE) == ["ko", "손실"])
    shown = tab.page.evaluate(static)
    assert len(shown) > 40 and all(text == TEXTS[key]["ko"] for key, text in shown)
    assert tab.page.text_content("#status") == "끝남" and tab.page.text_content("#lr-now") == "학습률 0.001"
    tab.wait_for(lambda: tab.page.locator("#gradients td.ok").count() == 6)
    assert set(tab.page.locator("#gradients td.ok").all_text_contents()) == {"일치"}
    assert tab.page.text_content("#gradient-images") == "(앞쪽 훈련 이미지 2개로)"
    picture = tmp_path / "seven.png"
    picture.write_bytes(digit_png([(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]))
    tab.page.set_input_files("#file", str(picture))
    tab.wait_for(lambda: tab.page.text_content("#prediction").startswith("예측 7, 확률"))
    assert tab.page.text_content("#maps-stages") == ("합성곱 및 ReLU 뒤의 특징 맵(왼쪽), "
                                                     "그다음 풀링 뒤의 특징 맵(오른쪽)")
    layers = ("() => [...document.querySelectorAll('#histograms span, #hidden-charts .xtitle')]"
              ".map((e) => e.textContent)")
    tab.wait_for(lambda: len(tab.page.evaluate(layers)) == 3)
    assert tab.page.evaluate(layers) == ["Affine 1 → ReLU", "합성곱 1 → ReLU", "Affine 1 → ReLU"]
    spread = "() => [...document.querySelectorAll('#spread .xtitle')].map((e) => e.textContent)"
    tab.page.locator("#spread-figure").scroll_into_view_if_needed()  # below the first screen: drawn when seen
    tab.wait_for(lambda: tab.page.evaluate(spread) == ["반복"] * 3)

    tab.page.click("[data-language=en]")  # everything said again in English, the curves' axes too
    tab.wait_for(lambda: tab.page.evaluate(IN_LANGUAGE) == ["en", "loss"])
    assert all(text == TEXTS[key]["en"] for key, text in tab.page.evaluate(static))
    assert tab.page.text_content("#status") == "finished"
    assert tab.page.text_content("#prediction").startswith("Read as 7, with probability")
    assert tab.page.evaluate(layers) == ["affine 1 → relu", "convolution 1 → relu", "affine 1 → relu"]
    tab.page.locator("#spread-figure").scroll_into_view_if_needed()  # (the click scrolled up to the switch)
    tab.wait_for(lambda: tab.page.evaluate(spread) == ["iteration"] * 3)  # drawn again, though their data did
    # not change
    spans = "(chart) => document.querySelector(chart)._fullLayout.xaxis.range"  # drawn again with their data
    charts = ("#per-digit-chart", "#probabilities-chart", "#hidden-charts .chart")
    assert [tab.page.evaluate(spans, chart) for chart in charts] == [[-0.5, 9.5], [-0.5, 9.5], [-0.5, 19.5]]
    assert set(tab.page.locator("#gradients td.ok").all_text_contents()) == {"agree"}
    assert tab.page.evaluate("() => localStorage.getItem('sgdlab-language')") == "en"  # remembered (see below)
    tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
    context.close()


@pytest.mark.slow  # a second `sgdlab view` and page: the quick loop checks that the choice is stored (above)
def test_the_language_chosen_is_remembered_by_the_page_of_another_sgdlab_view(browser, conv_view, conv_run, data_dir):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ko-KR")
    tab = Page(browser, conv_view, context=context)
    tab.wait_for(lambda: tab.page.evaluate(IN_LANGUAGE) == ["ko", "손실"])
    tab.page.click("[data-language=en]")
    tab.wait_for(lambda: tab.page.evaluate(IN_LANGUAGE) == ["en", "loss"])
    with lab_page("view", conv_run, "--no-browser", "--data-dir", data_dir) as (other, elsewhere):
        assert elsewhere.split("/?")[0] != tab.origin  # `sgdlab view` again: another port, another origin
        again = Page(browser, elsewhere, context=context)
        again.wait_for(lambda: again.page.evaluate(IN_LANGUAGE) == ["en", "loss"])  # remembered there too, though
        # the browser still prefers Korean
        again.page.click("[data-language=ko]")
        again.wait_for(lambda: again.page.evaluate(IN_LANGUAGE) == ["ko", "손실"])
        again.assert_nothing_left_the_machine_and_nothing_went_wrong()
        press_ctrl_c(other)
    tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
    context.close()


@pytest.mark.slow
def test_every_deeper_convolution_of_the_shipped_deep_convnet_shows_compactly_at_once(browser, data_dir):
    with lab_page("view", "--demo", "--no-browser", "--data-dir", data_dir) as (process, address):
        tab = Page(browser, address)
        figures = "#deeper-filters figure"
        # convolutions 2 to 6, with the rest of the inspection (the test set read, the gradient checked): seconds
        # each on a quiet machine, minutes on a loaded one
        tab.wait_for(lambda: tab.page.locator(figures).count() == 5, timeout=600)
        images = tab.page.evaluate("() => [...document.querySelectorAll('#deeper-filters img')].map((e) => "
                                   "[e.naturalWidth, e.naturalHeight, e.offsetWidth, e.offsetHeight])")
        # 16, 32, 32, 64, 64 filters, 8 a row, each the patch it sees: 5, 10, 14, 24 and 32 pixels square
        assert [image[:2] for image in images] == [[47, 11], [87, 43], [119, 59], [199, 199], [263, 263]]
        for (width, height, shown_width, shown_height), field in zip(images, (5, 10, 14, 24, 32)):
            assert abs(shown_width - round(28 / field * width)) <= 1  # every patch at 28 screen pixels
            assert abs(shown_height - round(28 / field * height)) <= 1
        labels = tab.page.locator("#deeper-filters figcaption").all_text_contents()
        assert labels[-1] == "convolution 6: 64 filters of 3x3x64, seeing 32x32 pixels"
        assert tab.page.text_content("#deeper-filters-searched") == "500"
        box = tab.page.locator("#deeper-filters-figure").bounding_box()
        assert box["width"] <= 1400 and box["height"] <= 700  # not the 64x64 mosaic of each channel's weights
        for k in range(5):  # every convolution in the figure, none clipped
            inner = tab.page.locator(figures).nth(k).bounding_box()
            assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"]
            assert box["y"] <= inner["y"] and inner["y"] + inner["height"] <= box["y"] + box["height"]
        # the gradient check, on a sample of each parameter's entries: seconds, where all of them take minutes
        tab.wait_for(lambda: tab.page.locator("#gradients td.ok").count() == 16)
        verdicts = tab.page.locator("#gradients td.ok").all_text_contents()
        # W6 sampled, b8 whole; either may be "zero gradient" where the check's dropout masks leave a confident score
        assert any(v.startswith("agree") and v.endswith("(sampled: 10 of 36864 entries)") for v in verdicts)
        assert any(v.startswith("agree") and "sampled" not in v for v in verdicts)
        tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
        press_ctrl_c(process)


@pytest.mark.slow  # the page's side: the quick loop checks what the server tells it (tests/lab/test_live.py)
def test_a_diverged_run_says_so(browser, data_dir, tmp_path):
    with lab_page("train", "--live", "--no-browser", "--data-dir", data_dir, "--out", tmp_path / "run", "--lr", "1e30",
                  "--activation", "relu", "--hidden-size", "10", "--iters", "600", "--no-plot") as (process, address):
        tab = Page(browser, address)
        tab.wait_for(lambda: tab.page.text_content("#status") == "diverged")
        folder = tmp_path / "run"
        said = re.fullmatch(r"the loss became (nan|inf) at iteration (\d+): training diverged; try a smaller learning "
                            rf"rate than 1e\+30 \(--lr\); what was recorded is in {re.escape(str(folder))} \(to "
                            r"continue it from its last checkpoint at a smaller rate: sgdlab train --resume "
                            rf"{re.escape(str(folder))} --lr X\)", tab.page.text_content("#run-message"))
        assert said is not None, tab.page.text_content("#run-message")  # its folder and rate, as the command line
        # says them (its first evaluation's checkpoint, from before it diverged, to continue from)
        tab.wait_for(lambda: tab.page.locator("#gradients tbody tr").count() == 4)  # its NaNs reached the page too
        tab.page.click("[data-language=ko]")  # the reason in the page's language
        tab.wait_for(lambda: tab.page.text_content("#status") == "발산함")
        assert tab.page.text_content("#run-message") == (  # all the English says: the rate, the folder, the way on
            f"반복 {said[2]}에서 손실이 {said[1]}이(가) 되었습니다: 학습이 발산했습니다. 학습률(--lr)을 1e+30보다 작게 "
            f"해 보세요. 기록된 내용은 {folder}에 있습니다(마지막 체크포인트부터 더 작은 학습률로 이어 가려면: "
            f"sgdlab train --resume {folder} --lr X)")
        assert tab.page.get_attribute("#run-message", "lang") == "ko"
        tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
        code, _, err = press_ctrl_c(process)
    assert code == 1 and err.count("training diverged") == 1 and "Warning" not in err, err  # said once, as it happened


def test_a_long_runs_curves_are_drawn_with_what_the_charts_pixels_can_show(conv_tab):
    """The raw loss of 4096 buckets and its smoothed curve, drawn 500 pixels wide: in power-of-two groups of points,
    each group's lowest and highest kept (the line covers the same pixels), the last point always."""
    tab = conv_tab
    tab.wait_for(lambda: tab.loss_points() > 0)
    count, columns = 4095, 500
    y = tab.page.evaluate(f"() => Array.from({{length: {count}}}, (_, i) => Math.sin(i * i) + 2 / (1 + i / 500))")
    kept = tab.page.evaluate(f"""() => {{ const y = {y};
        return decimated(y.map((_, i) => 16 * (i + 1)), y, {columns}); }}""")
    group = 16  # the smallest power of two that makes at most 500 groups of 4095 points
    assert len(kept["x"]) <= 2 * columns + 1
    assert kept["x"] == sorted(set(kept["x"])) and kept["x"][-1] == 16 * count  # in order, the last kept
    assert all(y[x // 16 - 1] == value for x, value in zip(kept["x"], kept["y"]))  # points of the curve
    drawn = dict(zip(kept["x"], kept["y"]))
    for start in range(0, count, group):
        points = {16 * (i + 1): y[i] for i in range(start, min(count, start + group))}
        shown = [value for x, value in drawn.items() if x in points]
        assert min(shown) == min(points.values()) and max(shown) == max(points.values())
    few = tab.page.evaluate("() => decimated([1, 2, 3], [5, null, 4], 500)")
    assert few == {"x": [1, 2, 3], "y": [5, None, 4]}  # few points: all of them, a gap kept
    gap = tab.page.evaluate("() => decimated([...Array(12).keys()].map((i) => i + 1),"
                            " [1, 2, 3, 4, null, null, null, null, 5, 6, 7, 8], 3)")  # groups of 4
    assert gap == {"x": [1, 4, 5, 9, 12], "y": [1, 4, None, 5, 8]}  # a group of missing values breaks the line


def test_the_curves_axis_titles_stand_clear_of_their_tick_labels_however_long(conv_tab):
    """A flat loss (or accuracy) makes ticks of six digits, such as 2.30294: the chart's margin grows for them
    rather than the rotated axis title lying across them."""
    tab = conv_tab
    tab.wait_for(lambda: tab.loss_points() > 0)
    overlapping = """(chart) => {
        const title = document.querySelector(`#${chart} .ytitle`).getBoundingClientRect();
        return [...document.querySelectorAll(`#${chart} .ytick text`)].map((e) => e.getBoundingClientRect())
            .filter((b) => b.right > title.left && b.left < title.right && b.bottom > title.top && b.top < title.bottom)
            .length; }"""
    ticks = "(chart) => [...document.querySelectorAll(`#${chart} .ytick text`)].map((e) => e.textContent)"
    for chart, flat in (("loss-chart", [2.3029, 2.303]), ("accuracy-chart", [0.9123, 0.9124])):
        tab.page.evaluate("([chart, range]) => Plotly.relayout(chart, {'yaxis.range': range})", [chart, flat])
        assert max(len(text) for text in tab.page.evaluate(ticks, chart)) >= 7  # such as 2.30294
        assert tab.page.evaluate(overlapping, chart) == 0
        tab.page.evaluate("(chart) => Plotly.relayout(chart, {'yaxis.autorange': true})", chart)


def refusing(body):
    """A route handler answering as the server refuses a stream past its bound: 503, with `body`."""
    return lambda route: route.fulfill(status=503, json=body)


@pytest.mark.slow  # the page's side: the quick loop checks the refusal the server sends (tests/lab/test_server.py)
def test_a_stream_refused_for_too_many_pages_says_so_on_the_page(browser, conv_view):
    english = "too many pages open (500 streams follow these runs already): close some and reload"
    korean = "열린 페이지가 너무 많습니다(이미 스트림 500개가 이 실행들을 따라가고 있습니다): 몇 개를 닫고 새로 고치세요"
    refused = {"error": english, "code": "streams.too-many", "params": {"streams": 500}}  # as the server refuses the
    # 501st stream (test_server.py holds it to that)

    def korean_page_refused(body):
        page = browser.new_page(locale="ko-KR")
        page.route(re.compile(r".*/stream\?"), refusing(body))
        page.goto(conv_view)
        return page

    def says(page, shown, language):
        page.wait_for_function("(shown) => document.getElementById('page-message').textContent === shown", arg=shown)
        assert page.get_attribute("#page-message", "lang") == language
        assert page.locator("#page-message").is_visible()

    page = korean_page_refused(refused)
    says(page, korean, "ko")
    page.click("[data-language=en]")  # said again in the language chosen
    says(page, english, "en")
    page.close()
    page = korean_page_refused({**refused, "code": "streams.a-later-code"})  # a message of a newer server, which
    says(page, english, "en")  # the page has no entry for: in the server's English
    page.close()


@pytest.mark.slow  # a second Korean page, on a run of its own: the quick loop keeps the Korean page and its switch
# (above) and the table holding every message in every language (tests/lab/test_i18n.py)
def test_a_korean_page_says_the_servers_messages_in_korean_and_draws_its_charts_in_the_pages_font(browser, data_dir,
                                                                                                 tmp_path):
    font = ("(chart) => [getComputedStyle(document.body).fontFamily,"
            " document.querySelector(chart)?._fullLayout?.font.family,"
            " [...document.querySelectorAll(`${chart} .xtitle, ${chart} .xtick text, ${chart} .legendtext`)]"
            ".map((e) => getComputedStyle(e).fontFamily)]")
    with lab_page("train", "--live", "--no-browser", "--data-dir", data_dir, "--out", tmp_path / "run", "--iters",
                  "100000", "--hidden-size", "10", "--eval-every", "300", "--train-size", "5000",
                  "--no-plot") as (process, address):
        tab = Page(browser, address, locale="ko-KR")
        tab.wait_for(lambda: tab.page.text_content("#status") == "학습 중" and tab.loss_points() > 0)
        names = "() => [document.getElementById('run-name').textContent, document.querySelector('#runs span').textContent]"
        assert tab.page.evaluate(names) == ["run", "run"]  # its folder's name ("starting" until training starts)
        tab.page.click("#pause")  # nothing below needs training to go on
        tab.wait_for(lambda: tab.page.text_content("#status") == "일시 정지")
        tab.page.fill("#lr", "-1")
        tab.page.click("#set-lr")
        tab.wait_for(lambda: tab.page.text_content("#control-message") != "")
        assert tab.page.text_content("#control-message") == "학습률은 양수여야 합니다. 입력한 값: -1"
        assert tab.page.get_attribute("#control-message", "lang") == "ko"

        notes = tmp_path / "메모 1.txt"  # a name of the user's own language, and a space: named as chosen
        notes.write_text("not a picture")
        tab.page.set_input_files("#file", str(notes))
        tab.wait_for(lambda: tab.page.text_content("#draw-message") != "")
        assert tab.page.text_content("#draw-message") == ("메모 1.txt: 이미지로 읽을 수 없습니다(Pillow가 아는 그림 형식이 "
                                                          "아님). PNG, JPEG, BMP 같은 파일을 쓰세요")

        # every chart's text in the page's font (lab.css's, with a Korean font for Korean glyphs), not plotly's
        page_font, chart_font, texts = tab.page.evaluate(font, "#loss-chart")
        assert "Noto Sans KR" in page_font and chart_font == page_font
        assert len(texts) > 3 and set(texts) == {page_font}
        assert tab.page.evaluate("() => document.querySelector('#loss-chart .xtitle').textContent") == "반복"

        tab.page.click("[data-language=en]")  # what the server said, said again in English
        tab.wait_for(lambda: tab.page.text_content("#control-message") == "the learning rate must be a positive "
                                                                          "number, got -1")
        assert tab.page.text_content("#draw-message") == ("메모 1.txt: cannot read it as an image (not a picture format "
                                                          "Pillow knows); use a PNG, JPEG, BMP or similar")
        assert tab.page.get_attribute("#draw-message", "lang") == "en"
        tab.wait_for(lambda: tab.page.evaluate("() => document.querySelector('#loss-chart .xtitle').textContent")
                     == "iteration")
        page_font, chart_font, texts = tab.page.evaluate(font, "#loss-chart")
        assert chart_font == page_font and set(texts) == {page_font}  # the same font in English
        tab.page.click("[data-language=ko]")

        tab.page.click("#stop")
        tab.wait_for(lambda: tab.page.text_content("#status") == "정지됨")
        stopped = json.loads((tmp_path / "run" / "history.json").read_text())["stopped"]
        iteration = int(re.fullmatch(r"interrupted by the lab page after iteration (\d+)", stopped)[1])
        assert tab.page.text_content("#run-message") == f"반복 {iteration} 뒤에 랩 페이지에서 중단함"
        tab.page.evaluate("() => control('step')")  # as a control sent just as the run ended: its status said too
        tab.wait_for(lambda: tab.page.text_content("#control-message") != "")
        assert tab.page.text_content("#control-message") == "run은(는) 이미 끝났습니다(정지됨): 제어할 것이 없습니다"
        refused = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
        assert tab.problems.count(refused) == 3  # the rate, the text file and the late control, refused as they
        # should be
        tab.problems = [problem for problem in tab.problems if problem != refused]
        tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
        press_ctrl_c(process)


def test_report_html_renders_offline_from_the_file_system(browser, data_dir, tmp_path):
    from sgdlab.runs.run import train_run
    from sgdlab.training.config import TrainConfig

    from sgdlab.runs.run import RunObserver

    class NewRate(RunObserver):  # as the lab page sets one: from the 101st update on
        def started(self, run_dir, trainer, x_train, t_train):
            self.trainer = trainer

        def iteration(self, iteration, loss):
            if iteration == 100:
                self.trainer.change_learning_rate(0.05)

    run_dir, _ = train_run(TrainConfig(iters=300, hidden_size=20), out=tmp_path / "run", data_dir=data_dir,
                           observer=NewRate())
    page = browser.new_page()
    requests, problems = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.route(re.compile(r"^https?://"), lambda route: route.abort())  # as if offline
    page.goto((run_dir / "report.html").as_uri())
    images = page.evaluate("() => [...document.images].map((image) => [image.alt, image.naturalWidth])")
    assert [alt for alt, _ in images[:3]] == ["accuracy chart", "loss chart", "first-layer weights"]
    assert len(images) == 3 + 32 and all(width > 0 for _, width in images)  # every image drawn, from inside the file
    spread = ("() => [...document.querySelectorAll('svg.spread')].map((s) => [s.ariaLabel,"
              " s.querySelectorAll('circle').length])")
    assert page.evaluate(spread) == [["W1", 2], ["W2", 2]]  # each weight matrix, a dot at each evaluation
    assert page.locator("table tr").first.text_content().startswith("0123456789")  # the confusion matrix's header
    assert json.loads(page.text_content("#history"))["iteration"] == [0, 300]
    settings = dict(row.split("\t") for row in page.evaluate(
        "() => [...document.querySelectorAll('table.settings tr')].map((r) => r.innerText)"))
    assert settings["lr"] == "0.1" and settings["learning rate changed"] == "0.05 from iteration 101"
    assert requests == [(run_dir / "report.html").as_uri()] and problems == []


@pytest.mark.slow  # the page's side of a deeper net's inspection: the quick loop keeps the page of a run in training
# (above) and checks every part of an inspection the server sends (tests/lab/test_server.py)
def test_the_page_shows_the_whole_sets_losses_the_guesses_on_test_digits_and_every_hidden_layer(browser, data_dir, tmp_path):
    with lab_page("train", "--live", "--no-browser", "--data-dir", data_dir, "--out", tmp_path / "run", "--iters",
                  "100000", "--hidden-sizes", "30,20", "--activation", "relu", "--eval-every", "200", "--validation",
                  "0.1", "--no-plot", "--train-size", "5000") as (process, address):
        # (ReLU: its guesses on the strip's digits change from one evaluation to the next from the first hundreds
        # of iterations on, where a sigmoid net's stay one digit for thousands)
        tab = Page(browser, address)
        set_losses = ("() => (document.getElementById('loss-chart').data || []).filter((t) => t.name.endsWith(' set'))"
                      ".map((t) => [t.name, t.x.length, t.y.filter((y) => y !== null).length])")
        tab.wait_for(lambda: len(tab.page.evaluate(set_losses)) == 3 and tab.page.evaluate(set_losses)[0][1] >= 2)
        (train, n, _), (test, _, _), (validation, _, _) = tab.page.evaluate(set_losses)
        assert (train, test, validation) == ("train set", "test set", "validation set")
        assert all(measured == points for _, points, measured in tab.page.evaluate(set_losses))
        first, later = tab.page.evaluate("() => document.getElementById('loss-chart').data"
                                         ".find((t) => t.name === 'train set').y.slice(0, 2)")
        assert 2.0 < first < 2.6 and later < first  # ln 10 = 2.30 at the start, then learning

        strip = ("() => [...document.querySelectorAll('#strip figure')].map((f) => [f.dataset.index,"
                 " f.querySelector('figcaption').textContent, f.title, f.classList.contains('wrong')])")
        tab.wait_for(lambda: len(tab.page.evaluate(strip)) == 24)
        at_first = tab.page.evaluate(strip)
        for _, guess, title, wrong in at_first:  # "label → guess (p%)"; marked where they differ
            label, shown = re.match(r"(\d) → (\d) \(\d+%\)$", title).groups()
            assert shown == guess and wrong == (label != guess)
        # a later evaluation's guesses. A run in training is looked into as seldom as keeps that work a small share
        # of a core (seconds apart), a paused one INSPECTION_INTERVAL after the last look: so the run trains until a
        # later evaluation than the one looked into (and a third, for the spreads below), and is paused (it trains
        # on should its guesses be the same: a loaded machine's page may first see a trained net, whose guesses
        # change less)

        def looked_into():  # the iteration of the evaluation the page shows looked into
            return int(re.fullmatch(r"\(iteration (\d+)\)", tab.page.text_content("#inspected-at"))[1])

        def guesses():
            return [cell[1] for cell in tab.page.evaluate(strip)]

        first_looked_into = looked_into()
        latest = "() => [runs.get(focused).evaluations.length, runs.get(focused).evaluations.at(-1).iteration]"
        tab.wait_for(lambda: (made := tab.page.evaluate(latest))[0] >= 3 and made[1] > first_looked_into)
        tab.page.click("#pause")
        tab.wait_for(lambda: looked_into() > first_looked_into)
        if guesses() == [cell[1] for cell in at_first]:
            tab.page.click("#resume")
            tab.wait_for(lambda: guesses() != [cell[1] for cell in at_first])
            tab.page.click("#pause")  # nothing below needs training to go on
        assert guesses() != [cell[1] for cell in at_first]
        assert [cell[0] for cell in tab.page.evaluate(strip)] == [cell[0] for cell in at_first]  # the same digits

        histograms = ("() => [...document.querySelectorAll('#histograms > div')].map((d) => [d.querySelector('span')"
                      ".textContent, d.querySelector('canvas').width])")
        assert tab.page.evaluate(histograms) == [["affine 1 → relu", 180], ["affine 2 → relu", 180]]
        inked = ("() => { const c = document.querySelector('#histograms canvas'); const d = c.getContext('2d')"
                 ".getImageData(0, 0, c.width, c.height - 14).data; let n = 0;"
                 " for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }")
        assert tab.page.evaluate(inked) > 100  # bars drawn
        spread = ("() => [[...document.querySelectorAll('#spread .chart')].map((c) => [c.layout?.yaxis.title.text,"
                  " c.data?.[8]?.x.length ?? 0]), document.getElementById('accuracy-chart').data?.[0]?.x.length ?? 0]")
        # (0 for a chart not drawn yet)
        tab.wait_for(lambda: tab.page.evaluate(spread)[1] >= 3)
        charts, evaluations = tab.page.evaluate(spread)  # drawn together: one point per evaluation so far
        assert charts == [["W1", evaluations], ["W2", evaluations], ["W3", evaluations]]  # every weight matrix

        tab.page.locator("#canvas").scroll_into_view_if_needed()
        box = tab.page.locator("#canvas").bounding_box()
        tab.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
        tab.page.mouse.down()
        tab.page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.85, steps=10)
        tab.page.mouse.up()
        hidden = ("() => [...document.querySelectorAll('#hidden-charts .chart')].map((c) => [c.data[0].y.length,"
                  " c.querySelector('.xtitle').textContent])")
        tab.wait_for(lambda: len(tab.page.evaluate(hidden)) == 2)
        assert tab.page.evaluate(hidden) == [[30, "affine 1 → relu"], [20, "affine 2 → relu"]]  # every hidden layer
        tab.assert_nothing_left_the_machine_and_nothing_went_wrong()
        press_ctrl_c(process)
