"""sgdlab in Jupyter: the lab page of a run trained in a notebook (`sgdlab.lab.notebook.LiveLab`), and
docs/chapter4.ipynb and docs/chapter7.ipynb executed from top to bottom, their outputs showing what their text
says."""

import http.server
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from sgdlab.lab.notebook import LiveLab
from sgdlab.runs.run import train_run
from sgdlab.training.config import TrainConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"
NOTEBOOKS = (DOCS / "chapter4.ipynb", DOCS / "chapter7.ipynb")
SETTINGS = {"iters": 200, "eval_every": 100}


@pytest.fixture(scope="module")
def mnist(data_dir):
    from sgdlab.data import load_mnist

    return load_mnist(normalize=False, data_dir=data_dir)


def fetch(url, token=None):
    """(status, body) of a GET, on 127.0.0.1 only; `token` as the header the page's scripts may send."""
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, headers={"x-sgdlab-token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_a_live_lab_serves_the_page_with_its_token_and_trains_the_same_run_as_unwatched(tmp_path, mnist):
    _, plain = train_run(TrainConfig(**SETTINGS), out=tmp_path / "plain", data=mnist, plot=False)
    with LiveLab(data=mnist) as lab:
        token = re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=([\w-]{32})", lab.url).group(1)
        status, page = fetch(lab.url)
        assert status == 200 and "<title>sgdlab lab</title>" in page
        assert fetch(lab.url.partition("?")[0])[0] == 403  # without the token: refused
        assert f'src="{lab.url}"' in lab._repr_html_() and "<iframe" in lab._repr_html_()
        assert lab.iframe().src == lab.url
        run_dir, watched = lab.train(TrainConfig(**SETTINGS), out=tmp_path / "watched", plot=False)
        runs = json.loads(fetch(lab.url.replace("/?token=", "/api/runs?token="), token)[1])
        assert [(run["name"], run["status"], run["live"]) for run in runs] == [("watched", "finished", True)]
        with pytest.raises(Exception, match="make a new LiveLab"):
            lab.train(TrainConfig(**SETTINGS), out=tmp_path / "again")
    assert run_dir == tmp_path / "watched"
    assert watched.loss == plain.loss and watched.train_acc == plain.train_acc and watched.test_acc == plain.test_acc
    with np.load(tmp_path / "plain" / "model.npz") as a, np.load(run_dir / "model.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with pytest.raises(urllib.error.URLError):  # closed: nothing listens there any more
        urllib.request.urlopen(lab.url, timeout=2)


def test_a_live_lab_outside_a_notebook_says_where_its_page_is(capsys):
    with LiveLab(data=((), ())) as lab:
        assert capsys.readouterr().out == f"lab page: {lab.url}\n"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_the_notebook_imports_sgdlab_by_its_public_names(path):
    import sgdlab

    notebook = json.loads(path.read_text())
    code = "".join(line for cell in notebook["cells"] for line in cell["source"])  # the code in its text too
    imported = re.findall(r"^from (sgdlab\S*) import (.+)$", code, re.MULTILINE)
    assert imported and {module for module, _ in imported} == {"sgdlab"}, imported
    for _, names in imported:
        for name in names.split(", "):
            assert name in sgdlab.__all__, name


def test_a_browser_shows_the_page_framed_in_a_notebook_of_another_origin(browser):
    with LiveLab(data=((), ())) as lab, notebook_page(lab._repr_html_()) as notebook_url:
        page = browser.new_page()
        page.goto(notebook_url)
        frame = page.frame_locator("iframe")
        frame.locator("#run-name", has_text="starting").wait_for(timeout=10_000)  # its script ran, with the token
        page.close()


class notebook_page:
    """A page on another port of 127.0.0.1 (as Jupyter's is) showing `body`, served while in the `with`."""

    def __init__(self, body):
        page = f"<!DOCTYPE html><html><body>{body}</body></html>".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


def executed(path, data_dir, monkeypatch):
    """The outputs of the notebook at `path` run from top to bottom in a Jupyter kernel, by its cells' names; the
    kernel reads MNIST from the session's folder of links, where its decoded cache is written once."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel draws inline, as Jupyter's does (CI sets Agg)
    monkeypatch.setenv("SGDLAB_DATA", str(data_dir))
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = {cell.metadata.get("name"): cell.outputs for cell in notebook.cells if cell.cell_type == "code"}
    for name, cell_outputs in outputs.items():
        assert not [o for o in cell_outputs if o.output_type == "error"], name
        assert "Warning" not in text_of(cell_outputs), name
    return outputs


@pytest.mark.slow  # the book's run, 10000 iterations, in a Jupyter kernel
def test_the_chapter_4_notebook_runs_and_shows_what_it_says(data_dir, monkeypatch):
    check_outputs(executed(NOTEBOOKS[0], data_dir, monkeypatch))


@pytest.mark.slow  # 12 to 30 s: a convolutional net trained, the whole sets evaluated three times, in a kernel
def test_the_chapter_7_notebook_runs_and_shows_what_it_says(data_dir, monkeypatch):
    check_chapter_7_outputs(executed(NOTEBOOKS[1], data_dir, monkeypatch))


def text_of(outputs):
    """What a cell printed and returned, as text."""
    return "".join(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
                   for o in outputs)


def images_of(outputs):
    return [o for o in outputs if "image/png" in o.get("data", {})]


def check_outputs(outputs):
    """The claims the notebook's text makes of its outputs, against those outputs."""
    assert "(60000, 784) (60000,) (10000, 784) (10000,)" in text_of(outputs["load"])
    # central difference error ~ h^2, forward ~ h: over two decades of h, slopes of about 2 and 1
    slopes = json.loads(re.search(r"slopes (\{.*\})", text_of(outputs["differences"])).group(1))
    assert slopes["central"] == pytest.approx(2, abs=0.1) and slopes["forward"] == pytest.approx(1, abs=0.1)
    assert images_of(outputs["differences"])
    gradcheck = text_of(outputs["gradcheck"])
    assert gradcheck.count(" ok") == 4 and "FAIL" not in gradcheck
    final = float(re.search(r"final test accuracy (0\.\d+)", text_of(outputs["train"])).group(1))
    assert final > 0.9
    assert len(images_of(outputs["plot"])) == 2
    gap = float(re.search(r"gap (0\.\d+)", text_of(outputs["overfit"])).group(1))
    assert gap > 0.1 and len(images_of(outputs["overfit"])) == 1
    assert f"{final:.4f}" in text_of(outputs["reload"])  # the saved model scores what the run ended with


def check_chapter_7_outputs(outputs):
    """The claims chapter 7's notebook makes of its outputs, against those outputs."""
    assert "(60000, 1, 28, 28) (60000,) (10000, 1, 28, 28) (10000,)" in text_of(outputs["load"])
    im2col = text_of(outputs["im2col"])
    assert "im2col shape (4, 9)" in im2col
    assert "[ 0.  1.  2.  4.  5.  6.  8.  9. 10.]" in im2col and "[ 5.  6.  7.  9. 10. 11. 13. 14. 15.]" in im2col
    col2im = text_of(outputs["col2im"])
    assert "[[1. 2. 2. 1.]\n [2. 4. 4. 2.]\n [2. 4. 4. 2.]\n [1. 2. 2. 1.]]" in col2im  # windows per pixel
    inner_products = re.findall(r"> = (-?\d+\.\d+)", col2im)
    assert len(inner_products) == 2 and inner_products[0] == inner_products[1]  # the adjoint, to 12 decimals
    convolution = text_of(outputs["convolution"])
    assert "output shape (1, 2, 2, 2)" in convolution and convolution.count(": True") == 2
    assert re.search(r"\[\[ 6\.  6\.\]\s+\[ 6\.  6\.\]\]\s+\[\[24\. 24\.\]\s+\[24\. 24\.\]\]", convolution)
    pooling = text_of(outputs["pooling"])  # the maxima, and the gradient at each window's maximum only
    assert "[[3. 4.]\n [6. 7.]]" in pooling
    assert "[[ 0.  0.  0.  0.]\n [10.  0. 20.  0.]\n [ 0. 30.  0.  0.]\n [ 0.  0.  0. 40.]]" in pooling
    shapes = dict(re.findall(r"^(\w\d) +(\(.*\))$", text_of(outputs["network"]), re.M))
    assert shapes == {"W1": "(30, 1, 5, 5)", "b1": "(30,)", "W2": "(4320, 100)", "b2": "(100,)",
                      "W3": "(100, 10)", "b3": "(10,)"}
    rows = re.findall(r"^(\w\d) +\(.*\) +(\d+) +(\d+) +(\S+) +(\S+)$", text_of(outputs["gradcheck"]), re.M)
    assert [row[0] for row in rows] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert sum(int(size) for _, size, *_ in rows) == 1820
    for name, _, kinks, all_entries, off_kinks in rows:
        assert float(off_kinks) < 1e-7, name  # off the kinks: backprop and the numerical gradient agree
        assert float(all_entries) < 1e-6 or int(kinks) > 0, name  # a disagreement only where a nudge crossed one
    assert any(float(all_entries) > 1e-6 for *_, all_entries, _ in rows)  # as the text says, some nudges do
    fast = text_of(outputs["fast"])
    assert float(re.search(r"over all 1820 parameters: (\S+)", fast).group(1)) < 1e-9  # the textbook's, to rounding
    checks = re.findall(r"^(\w\d) +\(.*\) +\S+ +\S+ +(\d+)  (ok|FAIL|NOT CHECKED)$", fast, re.M)
    assert [name for name, *_ in checks] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert [(name, verdict) for name, _, verdict in checks if verdict != "ok"] == [("b1", "NOT CHECKED")]
    assert dict((name, int(kinks)) for name, kinks, _ in checks)["b1"] == 30  # every nudge of b1 crosses a kink
    train = text_of(outputs["train"])
    assert train.startswith("SimpleConvNet([Convolution(10 filters 1x5x5") and "with Adam(lr=0.001" in train
    evaluations = re.findall(r"^ +(\d+) +(0\.\d+) +(0\.\d+)$", text_of(outputs["train"]), re.M)
    assert [int(iteration) for iteration, *_ in evaluations] == [0, 150, 300]
    final = float(re.search(r"final test accuracy (0\.\d+)", text_of(outputs["train"])).group(1))
    assert final == float(evaluations[-1][2]) and final > 0.85 and float(evaluations[0][2]) < 0.3
    assert len(images_of(outputs["filters"])) == 1
    before, after = map(float, re.search(r"before (-?[\d.]+), after (-?[\d.]+)", text_of(outputs["filters"])).groups())
    assert abs(before) < 0.3 and after > 0.5  # noise at first, smooth strokes after training
