"""report.html: a finished run in one self-contained file that opens offline from the file system.

It shows what the lab page shows of a finished run: the book's two charts
(the PNGs `sgdlab train` drew, inlined), what each hidden unit learned (a
dense net's) or the convolutions' trained filters (a convolutional net's:
the first as the book's figure 7-24 shows them, then the deeper ones), and
each weight matrix's spread over the evaluations (an inline SVG chart
each), the test set's confusion matrix, accuracy per digit and worst
mistakes, with the run's settings and its history as JSON. Everything is inline (no
script, style, font or image is fetched), so the file can be mailed or
archived on its own.
"""

import base64
import html
import json
from pathlib import Path

from ..errors import SgdlabError
from ..fileio import read_regular_file, write_text_atomic
from ..nn.functions import softmax
from ..training.inspection import (PATTERN_IMAGES, first_layer_filters, hidden_unit_weights, strongest_inputs,
                                   test_set_errors)
from .charts import chart_paths

REPORT_NAME = "report.html"
MAX_CHART_BYTES = 16 << 20  # a chart's PNG (about 50 KB)
FIELD_PIXELS = 28  # the screen pixels of each deeper filter's patch, whatever its size: an MNIST digit's
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 2rem 2rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.85rem; color: #555; max-width: 34rem; }
img.chart { max-width: 34rem; } img.units { width: 34rem; image-rendering: pixelated; }
img.filters { width: 20rem; image-rendering: pixelated; } img.deeper { image-rendering: pixelated; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; }
.settings td { text-align: left; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.4rem; }
.gallery figure { text-align: center; } .gallery img { width: 56px; height: 56px; image-rendering: pixelated; }
.gallery figcaption { font-size: 0.75rem; }
.note { font-size: 0.85rem; color: #555; max-width: 50rem; }
svg.spread { background: #fff; border: 1px solid #ddd; } svg.spread text { font-size: 10px; fill: #555; }
"""
SPREAD_SIZE = (260, 130)  # a weight matrix's chart, in pixels
SPREAD_MARGIN = (44, 8, 8, 18)  # left, right, top, bottom: room for the axis' figures
SPREAD_BANDS = ((0, 8, 0.15), (1, 7, 0.25), (2, 6, 0.35), (3, 5, 0.5))  # percentiles' positions, opacity: as the page


def write_report(run_dir, settings, history, network, test_set, test_scores=None):
    """Write report.html into `run_dir` (atomically) for the run with these `settings` (its config.json),
    `history` and trained `network`, examined on `test_set` (images, labels; `test_scores`, the network's output
    scores on them, if training measured them already); returns its path."""
    run_dir = Path(run_dir)
    found = test_set_errors(network, *test_set, probabilities=None if test_scores is None else softmax(test_scores))
    charts = {path.stem: png for path in chart_paths(run_dir) if (png := _chart_png(path)) is not None}
    page = render_report(run_dir.name, settings, history, hidden_unit_weights(network), found, charts,
                         first_layer_filters(network), strongest_inputs(network, test_set[0][:PATTERN_IMAGES]))
    path = run_dir / REPORT_NAME
    write_text_atomic(path, page)
    return path


def render_report(name, settings, history, weights, found, charts, filters=None, deeper_filters=()):
    """The report's HTML: every value escaped, every image a data URL (`charts`: each chart's PNG bytes, by name;
    `weights` a dense net's hidden units, `filters` a convolutional net's first filters, as `inspection` draws
    them, or None; `deeper_filters` what drives its other convolutions' filters, as `inspection.strongest_inputs` finds it)."""
    title = f"sgdlab run {name}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_text(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{_text(title)}</h1>", _outcome(history)]
    if charts:
        parts.append("<h2>Learning</h2><div class='row'>")
        parts += [f"<figure><img class='chart' alt='{_text(name)} chart' src='{_png_data_url(png)}'></figure>"
                  for name, png in charts.items()]
        parts.append("</div>")
    else:
        parts.append("<p>The charts were not drawn (--no-plot): <code>sgdlab plot RUN_DIR</code> draws them and "
                     "writes this report again with them.</p>")
    if weights is not None:
        parts.append("<h2>What each hidden unit looks for</h2><figure><img class='units' alt='first-layer weights' "
                     f"src='{weights}'><figcaption>Each unit's 784 incoming weights as a 28x28 image (red positive, "
                     "blue negative).</figcaption></figure>")
    if filters is not None:
        parts.append("<h2>What the first convolution's filters look for</h2><figure><img class='filters' "
                     f"alt='first-layer filters' src='{filters}'><figcaption>Each trained filter's weights as a small "
                     "image, dark where they are large, light where small (the book's figure 7-24): edges and "
                     "blobs, where they were random before training.</figcaption></figure>")
    if deeper_filters:
        parts.append("<h2>What drives each deeper filter most</h2><div class='row'>")
        parts += [_convolution_figure(convolution) for convolution in deeper_filters]
        parts.append("</div>")
    parts.append(_weight_spread(history))
    parts += [_errors(found), _settings(settings, history.lr_changes),
              f"<script type='application/json' id='history'>{_json(history.to_dict())}</script></body></html>"]
    return "\n".join(parts)


def _convolution_figure(convolution):
    number, size = convolution["convolution"], "x".join(map(str, convolution["size"]))
    field = "x".join(map(str, convolution["field"]))
    scale = FIELD_PIXELS / convolution["field"][1]  # every convolution's patches drawn at one size
    return (f"<figure><img class='deeper' alt='filters of convolution {number}' src='{convolution['image']}' "
            f"width='{round(scale * convolution['width'])}'><figcaption>Convolution {number}: "
            f"{convolution['filters']} filters of {size} over {convolution['channels']} channels, each shown as the "
            f"{field} patch it sees (its receptive field) of the test digit that drives it most, among the first "
            f"{convolution['images']}.</figcaption></figure>")


def _weight_spread(history):
    """Each weight matrix's percentiles at every evaluation (`history.weight_percentiles`), as the lab page draws
    them: bands between them, the median a line with a dot per evaluation. Empty for a history without them."""
    names = dict.fromkeys(name for spread in history.weight_percentiles if spread for name in spread)
    charted = {name: [(iteration, spread[name]) for iteration, spread in zip(history.iteration,
                                                                             history.weight_percentiles)
                      if spread and spread.get(name)] for name in names}  # an array's None: not finite then
    charts = "".join(_spread_chart(name, points) for name, points in charted.items() if points)
    if not charts:
        return ""
    return ("<h2>How the weights spread</h2><div class='row'>" + charts + "</div><p class='note'>Each weight "
            "matrix (W1 the first layer's) at every evaluation: the darkest band holds the middle 38% of its weights, "
            "the next ones 68% and 87%, the palest all of them; the line is their median (TensorBoard's "
            "distributions). The first evaluation shows the initial weights' scale (the book's 6.2).</p>")


def _spread_chart(name, points):
    """One weight matrix's chart as inline SVG, from `points`: (iteration, its percentiles) per evaluation."""
    (width, height), (left, right, top, bottom) = SPREAD_SIZE, SPREAD_MARGIN
    first, last = points[0][0], points[-1][0]
    low, high = min(p[0] for _, p in points), max(p[-1] for _, p in points)

    def x(iteration):
        return left + (width - left - right) * ((iteration - first) / (last - first) if last > first else 0.5)

    def y(value):
        return top + (height - top - bottom) * ((high - value) / (high - low) if high > low else 0.5)

    shapes = []
    for lower, upper, opacity in SPREAD_BANDS:
        outline = [(x(i), y(p[upper])) for i, p in points] + [(x(i), y(p[lower])) for i, p in reversed(points)]
        shapes.append(f"<polygon points='{_svg_points(outline)}' fill='#1f77b4' fill-opacity='{opacity}'/>")
    median = [(x(i), y(p[4])) for i, p in points]
    shapes.append(f"<polyline points='{_svg_points(median)}' fill='none' stroke='#1f77b4' stroke-width='1.5'/>")
    shapes += [f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='2' fill='#1f77b4'/>" for cx, cy in median]
    labels = (f"<text x='{left - 4}' y='{top + 8}' text-anchor='end'>{high:.3g}</text>"
              f"<text x='{left - 4}' y='{height - bottom}' text-anchor='end'>{low:.3g}</text>"
              f"<text x='4' y='{height / 2:.0f}'>{_text(name)}</text>"
              f"<text x='{left}' y='{height - 4}'>{first}</text>"
              f"<text x='{width - right}' y='{height - 4}' text-anchor='end'>iteration {last}</text>")
    return (f"<svg class='spread' role='img' aria-label='{_text(name)}' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'>{''.join(shapes)}{labels}</svg>")


def _svg_points(points):
    return " ".join(f"{px:.1f},{py:.1f}" for px, py in points)


SET_LOSS_NAMES = (("train_loss", "training"), ("val_loss", "validation"), ("test_loss", "test"))


def _outcome(history):
    if not history.iteration:
        return "<p>No evaluation was recorded.</p>"
    stopped = f" It ended early: {_text(history.stopped)}." if history.stopped else ""
    kept_at = -1 if history.best_iteration is None else history.iteration.index(history.best_iteration)
    if history.best_iteration is None:
        kept = "final"
    else:
        kept = (f"kept (the weights of the best validation accuracy, {history.val_acc[kept_at]:.4f}, at "
                f"iteration {history.best_iteration}, epoch {history.epoch[kept_at]:g})")
        stopped += f" It stopped early: {_text(history.early_stopped)}." if history.early_stopped else ""
    test = "" if history.final_test_acc is None else f" and <strong>{history.final_test_acc:.4f}</strong> on the test set"
    losses = [f"{getattr(history, key)[kept_at]:.4f} on the {name} set" for key, name in SET_LOSS_NAMES
              if getattr(history, key) and getattr(history, key)[kept_at] is not None]
    loss = f"; its loss {' and '.join(losses)}" if losses else ""  # a history of an older sgdlab has none
    return (f"<p>{len(history.loss)} iterations; {kept} accuracy {history.train_acc[kept_at]:.4f} on the training "
            f"set{test}{loss}.{stopped}</p>")


def _errors(found):
    digits = range(len(found["per_digit"]))
    largest = max(max(row) for row in found["confusion"]) or 1
    header = "".join(f"<th>{d}</th>" for d in digits)
    rows = "".join(
        f"<tr><th>{d}</th>" + "".join(
            f"<td style='background: rgba(31, 119, 180, {count / largest:.3f}); color: "
            f"{'#fff' if count > largest / 2 else '#222'}'>{count}</td>" for count in row)
        + f"<td>{found['per_digit'][d]:.3f}</td></tr>" for d, row in zip(digits, found["confusion"]))
    gallery = "".join(
        f"<figure><img alt='test image {item['index']}' src='{item['image']}'><figcaption>{item['label']} read as "
        f"{item['predicted']} ({100 * item['probability']:.0f}%)</figcaption></figure>" for item in found["gallery"])
    return (f"<h2>On the test set</h2><p>{found['errors']} of the test images are misread. Rows: the true digit; "
            f"columns: the prediction; last column: accuracy per digit.</p><table><tr><th></th>{header}"
            f"<th>accuracy</th></tr>{rows}</table><h2>The most confident mistakes</h2>"
            f"<div class='gallery'>{gallery}</div>")


def _settings(settings, lr_changes=()):
    """The settings as the run started, then each change of its learning rate (the lab page's, --resume's --lr)."""
    rows = "".join(f"<tr><td>{_text(key)}</td><td>{_text(json.dumps(value))}</td></tr>"
                   for key, value in settings.items())
    if lr_changes:
        changes = "; ".join(f"{change['lr']} from iteration {change['iteration'] + 1}" for change in lr_changes)
        rows += f"<tr><td>learning rate changed</td><td>{_text(changes)}</td></tr>"
    return f"<h2>Settings</h2><table class='settings'>{rows}</table>"


def _chart_png(path):
    """The chart's PNG bytes; None if there is none (not drawn), or it is no regular file of a chart's size."""
    try:
        return read_regular_file(path, MAX_CHART_BYTES)
    except (FileNotFoundError, SgdlabError):
        return None


def _png_data_url(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _text(value):
    return html.escape(str(value), quote=True)


def _json(values):
    """JSON safe inside a <script> element: no '</' can close it early."""
    return json.dumps(values).replace("</", "<\\/")
