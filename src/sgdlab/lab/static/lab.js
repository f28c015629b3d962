// The lab page: the runs' curves as they grow, the latest evaluation looked into, the controls of a run
// trained with --live, and a digit drawn or dropped, read by the network. Everything comes from the sgdlab
// server that served this page (server-sent events for the updates); charts are plotly's.
"use strict";

const SMOOTHING_ITERATIONS = 100; // the smoothed loss averages about this many iterations
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const PLOT_CONFIG = { displaylogo: false, responsive: true };

const runs = new Map(); // id -> {summary, loss: {iterations, values, width}, evaluations, view, stream}
let focused = null; // the run whose evaluation, controls and digits the page shows
let redrawPending = false;

const $ = (id) => document.getElementById(id);
const TOKEN = document.querySelector('meta[name="sgdlab-token"]').content; // every request must carry it

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), "X-Sgdlab-Token": TOKEN };
  const response = await fetch(path, { ...options, headers, credentials: "omit" });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// --- runs and their streams ----------------------------------------------------------------------------

async function start() {
  const summaries = await api("/api/runs");
  const list = $("runs");
  summaries.forEach((summary, position) => {
    runs.set(summary.id, { summary, colour: COLOURS[position % COLOURS.length], loss: null, evaluations: [],
      view: null, stream: null, shown: position === 0 || summaries.length <= 4 });
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox"> <input type="radio" name="focus"> <span></span>`;
    const [shown, focus] = label.querySelectorAll("input");
    label.querySelector("span").textContent = summary.label;
    label.title = summary.name;
    shown.checked = runs.get(summary.id).shown;
    shown.title = "show its curves";
    focus.title = "look into it";
    shown.addEventListener("change", () => { runs.get(summary.id).shown = shown.checked; follow(summary.id); });
    focus.addEventListener("change", () => setFocus(summary.id));
    list.appendChild(label);
    runs.get(summary.id).focusInput = focus;
  });
  const first = summaries.find((summary) => summary.live) || summaries[0];
  if (first) setFocus(first.id);
  for (const id of runs.keys()) follow(id);
}

function follow(id) {
  const run = runs.get(id);
  const wanted = run.shown || id === focused;
  if (wanted && !run.stream) {
    run.stream = new EventSource(`/api/runs/${encodeURIComponent(id)}/stream?token=${encodeURIComponent(TOKEN)}`);
    run.stream.addEventListener("update", (event) => receive(run, JSON.parse(event.data)));
    run.stream.addEventListener("inspection", (event) => {
      run.inspection = JSON.parse(event.data);
      if (id === focused) showInspection(run.inspection);
    });
  } else if (!wanted && run.stream) {
    run.stream.close();
    run.stream = null;
    run.loss = null; // a stream opened later sends everything again
    run.evaluations = [];
  }
  scheduleRedraw();
}

function receive(run, view) {
  const loss = view.loss;
  if (!run.loss || loss.start === 0 || run.generation !== view.generation || run.loss.width !== loss.width) {
    run.loss = { iterations: [], values: [], width: loss.width };
  }
  loss.values.forEach((value, k) => {
    run.loss.iterations.push((loss.start + k + 1) * loss.width); // bucket i ends at iteration (i + 1) * width
    run.loss.values.push(value);
  });
  if (view.evaluations.start === 0) run.evaluations = [];
  run.evaluations.push(...view.evaluations.rows);
  run.generation = view.generation;
  run.view = view;
  scheduleRedraw();
}

function setFocus(id) {
  const previous = focused;
  focused = id;
  const run = runs.get(id);
  run.focusInput.checked = true;
  if (previous && previous !== id) follow(previous);
  follow(id);
  if (run.inspection) showInspection(run.inspection);
  scheduleRedraw();
}

function scheduleRedraw() {
  if (redrawPending) return;
  redrawPending = true;
  requestAnimationFrame(() => { redrawPending = false; redraw(); });
}

// --- the curves ------------------------------------------------------------------------------------------

function smoothed(values, width) {
  const span = Math.max(1, Math.round(SMOOTHING_ITERATIONS / width));
  const out = new Array(values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= span) sum -= values[i - span];
    out[i] = sum / Math.min(i + 1, span);
  }
  return out;
}

function redraw() {
  const shown = [...runs.values()].filter((run) => (run.shown || run.summary.id === focused) && run.loss);
  const several = shown.length > 1;
  const lossTraces = [];
  const accuracyTraces = [];
  for (const run of shown) {
    const name = several ? run.summary.label : "";
    const mine = run.summary.id === focused;
    if (mine) {
      lossTraces.push({ x: run.loss.iterations, y: run.loss.values, type: "scatter", mode: "lines",
        name: `${name} raw`.trim(), line: { color: run.colour, width: 1 }, opacity: 0.3 });
    }
    lossTraces.push({ x: run.loss.iterations, y: smoothed(run.loss.values, run.loss.width), type: "scatter",
      mode: "lines", name: `${name} smoothed`.trim(), line: { color: run.colour, width: 2 } });
    const epochs = run.evaluations.map((row) => row.epoch);
    const kinds = [["train_acc", "train", "solid"], ["test_acc", "test", "dash"], ["val_acc", "validation", "dot"]];
    for (const [key, label, dash] of kinds) {
      if (!run.evaluations.some((row) => row[key] !== null && row[key] !== undefined)) continue;
      accuracyTraces.push({ x: epochs, y: run.evaluations.map((row) => row[key]), type: "scatter",
        mode: "lines+markers", name: `${name} ${label}`.trim(), line: { color: run.colour, dash } });
    }
  }
  const margin = { l: 50, r: 10, t: 10, b: 40 };
  Plotly.react("loss-chart", lossTraces, { margin, xaxis: { title: { text: "iteration" } },
    yaxis: { title: { text: "loss" } }, legend: { orientation: "h", y: 1.1 }, uirevision: "loss" }, PLOT_CONFIG);
  Plotly.react("accuracy-chart", accuracyTraces, { margin, xaxis: { title: { text: "epoch" } },
    yaxis: { title: { text: "accuracy" }, range: [0, 1] }, legend: { orientation: "h", y: 1.1 },
    uirevision: "accuracy" }, PLOT_CONFIG);
  showStatus();
}

function showStatus() {
  const run = runs.get(focused);
  if (!run || !run.view) return;
  const view = run.view;
  $("run-name").textContent = run.summary.name;
  const status = $("status");
  status.textContent = view.status;
  status.className = `status ${view.status}`;
  $("progress").textContent = view.total_iterations
    ? `iteration ${view.iterations_done} of ${view.total_iterations}` : "";
  $("lr-now").textContent = view.learning_rate ? `learning rate ${view.learning_rate}` : "";
  $("run-message").textContent = view.message || "";
  const controllable = view.live && ["training", "paused", "starting"].includes(view.status);
  $("controls").hidden = !controllable;
  $("pause").disabled = view.status === "paused";
  $("resume").disabled = view.status !== "paused";
}

// --- the latest evaluation -------------------------------------------------------------------------------

function showInspection(found) {
  $("inspected-at").textContent = found.iteration === null ? "" : `(iteration ${found.iteration})`;
  if (!found.confusion) return;
  $("weights").src = found.weights;
  const digits = [...Array(10).keys()].map(String);
  Plotly.react("confusion-chart", [{ z: found.confusion, x: digits, y: digits, type: "heatmap",
    colorscale: "Blues", reversescale: true, hovertemplate: "true %{y}, predicted %{x}: %{z}<extra></extra>" }],
  { margin: { l: 40, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "predicted" }, type: "category" },
    yaxis: { title: { text: "true" }, autorange: "reversed", type: "category" } }, PLOT_CONFIG);
  Plotly.react("per-digit-chart", [{ x: digits, y: found.per_digit, type: "bar", marker: { color: "#1f77b4" } }],
    { margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "digit" }, type: "category" },
      yaxis: { title: { text: "test accuracy" }, range: [0, 1] } }, PLOT_CONFIG);
  $("errors-count").textContent = `(${found.errors} of the test images are misread)`;
  const gallery = $("gallery");
  gallery.replaceChildren(...found.gallery.map((item) => {
    const figure = document.createElement("figure");
    const image = document.createElement("img");
    image.src = item.image;
    image.alt = `test image ${item.index}`;
    const caption = document.createElement("figcaption");
    caption.textContent = `${item.label} read as ${item.predicted} (${(100 * item.probability).toFixed(0)}%)`;
    figure.append(image, caption);
    return figure;
  }));
  const rows = found.gradients.map((check) => {
    const row = document.createElement("tr");
    const cells = [check.name, check.max_rel_error.toExponential(2), check.passed ? "agree" : "DIFFER"];
    cells.forEach((text, i) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (i === 2) cell.className = check.passed ? "ok" : "fail";
      row.appendChild(cell);
    });
    return row;
  });
  $("gradients").querySelector("tbody").replaceChildren(...rows);
}

// --- controls ----------------------------------------------------------------------------------------------

async function control(action, extra = {}) {
  $("control-message").textContent = "";
  try {
    await api(`/api/runs/${encodeURIComponent(focused)}/control`, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ action, ...extra }) });
  } catch (error) {
    $("control-message").textContent = error.message;
  }
}

for (const action of ["pause", "resume", "step", "stop"]) $(action).addEventListener("click", () => control(action));
$("set-lr").addEventListener("click", () => control("lr", { lr: Number($("lr").value) }));

// --- drawing and reading a digit -----------------------------------------------------------------------------

const canvas = $("canvas");
const pen = canvas.getContext("2d");
let drawing = false;

function clearCanvas() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, canvas.width, canvas.height);
}

function position(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
}

canvas.addEventListener("pointerdown", (event) => {
  drawing = true;
  canvas.setPointerCapture(event.pointerId);
  pen.strokeStyle = "#fff";
  pen.lineWidth = 20;
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(...position(event));
  pen.lineTo(...position(event));
  pen.stroke();
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  pen.lineTo(...position(event));
  pen.stroke();
});
for (const name of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(name, () => {
    if (!drawing) return;
    drawing = false;
    canvas.toBlob((blob) => readDigit(blob), "image/png");
  });
}
$("clear").addEventListener("click", clearCanvas);
$("file").addEventListener("change", (event) => { if (event.target.files[0]) readDigit(event.target.files[0]); });
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  const file = event.dataTransfer.files[0];
  if (file) readDigit(file);
});

async function readDigit(blob) {
  $("draw-message").textContent = "";
  if (!focused) return;
  try {
    const read = await api(`/api/runs/${encodeURIComponent(focused)}/predict`, { method: "POST", body: blob,
      headers: { "Content-Type": "application/octet-stream" } });
    $("seen").src = read.image;
    $("seen").hidden = false;
    const digits = [...Array(10).keys()].map(String);
    Plotly.react("probabilities-chart", [{ x: digits, y: read.probabilities, type: "bar",
      marker: { color: digits.map((d) => (Number(d) === read.prediction ? "#d62728" : "#1f77b4")) } }],
    { margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { type: "category", title: { text: "digit" } },
      yaxis: { range: [0, 1], title: { text: "probability" } } }, PLOT_CONFIG);
    $("prediction").textContent = `Read as ${read.prediction}, with probability ${
      (100 * read.probabilities[read.prediction]).toFixed(1)}%`;
    Plotly.react("hidden-chart", [{ y: read.hidden, type: "bar", marker: { color: "#2ca02c" } }],
      { margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "hidden unit" } },
        yaxis: { title: { text: "output" } } }, PLOT_CONFIG);
  } catch (error) {
    $("draw-message").textContent = error.message;
  }
}

clearCanvas();
start().catch((error) => { $("run-message").textContent = `cannot load the runs: ${error.message}`; });
