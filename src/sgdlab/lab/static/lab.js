// The lab page: the runs' curves as they grow, the latest evaluation looked into, the controls of a run
// trained with --live, and a digit drawn or dropped, read by the network. Everything comes from the sgdlab
// server that served this page (server-sent events for the updates); charts are plotly's. Every text it shows is
// an entry of i18n.json, in the language chosen (see "the page's language").
"use strict";

const SMOOTHING_ITERATIONS = 100; // the smoothed loss: an exponential mean whose weights fall by e every 100
const FITTED_MARGIN = 0.15; // a fitted accuracy axis reaches this share of the data's span beyond it (0.01 at least)
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const ROUND_COLOURS = ["#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]; // later rounds darker
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const PAGE_FONT = getComputedStyle(document.body).fontFamily; // lab.css's (a Korean font among them), read once
const REDRAW_EVERY_MS = 1000; // the curves are redrawn once a second at most, and only a chart whose data changed
const REDRAW_SHARE = 0.02; // of a core, at most, that redrawing the curves takes: a redraw costs a browser tens of
// milliseconds of script, on the cores training uses, so the next waits 50 times as long as the last took,
const REDRAW_LONGEST_MS = 4000; // but no longer than this: curves a learner watches must move
const SIGHT_MARGIN = "50px"; // a chart this near the window is drawn as if in it: it is there when scrolled to

const runs = new Map(); // id -> {summary, loss: {iterations, values, width}, evaluations, view, stream}
let focused = null; // the run whose evaluation, controls and digits the page shows
let sweep = null; // what the sweep searches, when the runs are a sweep's trials
let trials = []; // the sweep's rows, best validation accuracy first
let best = []; // the summaries of the sweep's best few trials, whose curves are overlaid
let lastResults = null; // the sweep's latest results, shown again in another language
let lastReading = null; // the digit read last, as the server answered: shown again in another language
let redrawTimer = null; // the redraw scheduled, if any
let redrawnAt = -Infinity; // performance.now() of the latest redraw
let redrawEvery = REDRAW_EVERY_MS; // the wait after it: see REDRAW_SHARE
const drawn = new Map(); // chart id -> what it was last drawn from (see `drawIfChanged`)

const $ = (id) => document.getElementById(id);
// A chart drawn (or drawn again) with plotly, in the page's font rather than plotly's own
const plot = (chart, traces, layout) => Plotly.react(chart, traces, { ...layout, font: { family: PAGE_FONT } },
  PLOT_CONFIG);
const plotlyText = (text) => String(text).replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);
const TOKEN = document.querySelector('meta[name="sgdlab-token"]').content; // every request must carry it

// --- the page's language ----------------------------------------------------------------------------------

// i18n.json holds every text: {key: {en: ..., ko: ...}}, `{name}` where a value goes. The page's static texts
// name their keys in data-i18n attributes; what this script writes asks `t(key, values)`.
const LANGUAGES = ["en", "ko"];
const LANGUAGE_NAME = "sgdlab-language";
let texts = {};
let language = "en";

function t(key, values = {}) {
  const entry = texts[key];
  if (!entry) {
    console.error(`no text for "${key}"`);
    return key;
  }
  return entry[language].replace(/\{(\w+)\}/g, (_, name) => String(values[name]));
}

// What the server says (why a run ended, a request refused): a message of sgdlab.lab.messages, {code, params, text},
// said by its i18n.json entry "server.<code>" in the page's language, or as the server's English text on an English
// page or where the table has no such entry; a text of the page's own is {key, params}.
const saying = new Map(); // element id -> the message it shows: said again in another language

function said(message) {
  if (!message) return "";
  if (message.key) return t(message.key, message.params);
  if (!translated(message)) return message.text;
  const params = { ...message.params }; // a run's status among them said in the table's words too
  if (params.status !== undefined) params.status = term("status", params.status);
  return t(`server.${message.code}`, params);
}

const translated = (message) => language !== "en" && message.code && texts[`server.${message.code}`];

function say(id, message) {
  saying.set(id, message);
  const element = $(id);
  element.textContent = said(message);
  element.lang = message && !message.key && !translated(message) ? "en" : language;
}

const uncoded = (text) => ({ code: null, params: {}, text }); // a message the server did not code (or no server)
const refusal = (error) => error.said || uncoded(error.message); // what a failed request (see `api`) said

function term(kind, word) { // a word the server sends (a status, a layer's kind): in the table's words if it has it
  return texts[`${kind}.${word}`] ? t(`${kind}.${word}`) : word;
}

// The choice is remembered in localStorage, and in a cookie too: localStorage belongs to one origin, one port,
// while `sgdlab view` serves on a free port each time, and a cookie is shared by every port of 127.0.0.1.
function rememberedLanguage() {
  const cookie = document.cookie.split("; ").find((pair) => pair.startsWith(`${LANGUAGE_NAME}=`));
  if (cookie) return cookie.split("=")[1];
  try {
    return localStorage.getItem(LANGUAGE_NAME);
  } catch {
    return null; // storage refused (a sandboxed frame): the browser's languages choose
  }
}

function chooseLanguage() { // the user's own choice, else the first of the browser's languages the page has
  const remembered = rememberedLanguage();
  if (LANGUAGES.includes(remembered)) return remembered;
  const preferred = (navigator.languages || [navigator.language]).map((tag) => tag.toLowerCase().split("-")[0]);
  return preferred.find((code) => LANGUAGES.includes(code)) || "en";
}

function showTexts() {
  document.documentElement.lang = language;
  document.title = `sgdlab ${t("page.title")}`;
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const attribute of ["title", "alt", "aria-label"]) {
    for (const element of document.querySelectorAll(`[data-i18n-${attribute}]`)) {
      element.setAttribute(attribute, t(element.getAttribute(`data-i18n-${attribute}`)));
    }
  }
  for (const button of document.querySelectorAll("[data-language]")) {
    button.setAttribute("aria-pressed", String(button.dataset.language === language));
  }
}

function switchLanguage(chosen) { // everything shown is written again in the new language
  language = chosen;
  document.cookie = `${LANGUAGE_NAME}=${chosen}; path=/; max-age=31536000; SameSite=Strict`;
  try {
    localStorage.setItem(LANGUAGE_NAME, chosen);
  } catch {
    // remembered by the cookie alone
  }
  showTexts();
  for (const run of runs.values()) nameRun(run);
  const run = runs.get(focused);
  if (run && run.inspection) showInspection(run.inspection);
  if (sweep) {
    describeSweep();
    if (lastResults) showResults(lastResults);
  }
  if (lastReading) showReading(lastReading);
  for (const [id, message] of saying) say(id, message);
  scheduleRedraw(true);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), "X-Sgdlab-Token": TOKEN };
  const response = await fetch(path, { ...options, headers, credentials: "omit" });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) { // the server's message (see `say`), by its code
    const text = body.error || response.statusText;
    throw Object.assign(new Error(text), { said: { code: body.code || null, params: body.params || {}, text } });
  }
  return body;
}

// --- runs and their streams ----------------------------------------------------------------------------

async function start() {
  const [table, summaries, found] = await Promise.all([api("/static/i18n.json"), api("/api/runs"), api("/api/sweep")]);
  texts = table;
  language = chooseLanguage();
  showTexts();
  for (const button of document.querySelectorAll("[data-language]")) {
    button.addEventListener("click", () => switchLanguage(button.dataset.language));
  }
  sweep = found.sweep;
  if (sweep) {
    best = summaries; // the best few trials, all overlaid
    startSweep();
  }
  summaries.forEach((summary, position) => addRun(summary, sweep !== null || position === 0 || summaries.length <= 4));
  const first = summaries.find((summary) => summary.live) || summaries[0];
  if (first) setFocus(first.id);
  for (const id of runs.keys()) follow(id);
}

function addRun(summary, shown) {
  const used = new Set([...runs.values()].map((run) => run.colour));
  const run = { summary, colour: COLOURS.find((colour) => !used.has(colour)) || COLOURS[runs.size % COLOURS.length],
    loss: null, evaluations: [], view: null, stream: null, shown };
  runs.set(summary.id, run);
  run.label = document.createElement("label");
  run.label.innerHTML = `<input type="checkbox"> <input type="radio" name="focus"> <span></span>`;
  const [show, focus] = run.label.querySelectorAll("input");
  run.label.title = summary.name;
  show.checked = shown;
  nameRun(run);
  show.addEventListener("change", () => { run.shown = show.checked; follow(summary.id); });
  focus.addEventListener("change", () => setFocus(summary.id));
  $("runs").appendChild(run.label);
  run.focusInput = focus;
  return run;
}

// A run's label: a sweep's trial by its number, in the page's language; else the settings in which it differs
const runLabel = (summary) => (typeof summary.trial === "number" ? t("sweep.trial", { trial: summary.trial })
  : summary.label);

function nameRun(run) {
  run.label.querySelector("span").textContent = runLabel(run.summary);
  const [show, focus] = run.label.querySelectorAll("input");
  show.title = t("runs.show");
  focus.title = t("runs.focus");
}

function renamed(run, name) { // the run trained here, named by its folder once training starts ("starting" before)
  if (run.summary.label === run.summary.name) run.summary.label = name;
  run.summary.name = name;
  run.label.title = name;
  nameRun(run);
}

function dropRun(id) {
  const run = runs.get(id);
  if (run.stream) run.stream.close();
  run.label.remove();
  runs.delete(id);
  scheduleRedraw(true);
}

function follow(id) {
  const run = runs.get(id);
  const wanted = (run.shown && !(run.settled && run.loss)) || id === focused;
  if (wanted && !run.stream) {
    run.stream = openStream(`/api/runs/${encodeURIComponent(id)}/stream`);
    run.stream.addEventListener("update", (event) => receive(run, JSON.parse(event.data)));
    run.stream.addEventListener("inspection", (event) => {
      run.inspection = JSON.parse(event.data);
      if (id === focused) {
        showInspection(run.inspection);
        readAgain(run);
      }
    });
  } else if (!wanted && run.stream) {
    run.stream.close();
    run.stream = null;
    if (!run.settled) {
      run.loss = null; // a stream opened later sends everything again
      run.evaluations = [];
    }
  }
  scheduleRedraw(true);
}

// A stream of the events at `path`. The browser reconnects a stream that was cut off by itself, but gives up on one
// the server refused (a 503 when too many pages are open, with the reason): the page asks again, and says why.
function openStream(path) {
  const address = `${path}?token=${encodeURIComponent(TOKEN)}`;
  const stream = new EventSource(address);
  stream.addEventListener("error", async () => {
    if (stream.readyState !== EventSource.CLOSED) return; // cut off: the browser tries again
    const asking = new AbortController();
    let why = { key: "stream.stopped", params: {} };
    try {
      const response = await fetch(address, { signal: asking.signal, credentials: "omit" });
      const body = response.ok ? {} : await response.json().catch(() => ({}));
      if (body.error) why = { code: body.code || null, params: body.params || {}, text: body.error };
      else if (!response.ok) why = { key: "stream.stopped-status", params: { status: response.status } };
    } catch (error) { /* the server has gone: what the page says already stands */ }
    asking.abort(); // a stream opened this time is not wanted: its tab has to be reloaded anyway
    say("page-message", why);
  });
  return stream;
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
  run.loss.open = loss.open; // the mean of the bucket being filled, which ends at the latest iteration
  if (view.evaluations.start === 0) run.evaluations = [];
  run.evaluations.push(...view.evaluations.rows);
  run.generation = view.generation;
  run.view = view;
  if (view.name !== run.summary.name) renamed(run, view.name);
  if (view.status === "finished" && !run.settled) {
    // a finished run changes no more: its curves are kept, its stream closed unless it is looked into (a
    // browser opens six connections to a server at most: the page's requests must not wait behind streams)
    run.settled = true;
    follow(run.summary.id);
  }
  if (run.summary.id === focused) showStatus(); // at once: the status and the controls answer without waiting
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
  if (sweep) {
    keepRuns();
    showTrials();
  }
  scheduleRedraw(true);
}

// In an animation frame (a tab in the background draws nothing until it is seen): `promptly` when the user changed
// what it shows (the language, the runs shown or looked into, an axis) or a chart came into sight; else (a stream's
// update) at most every REDRAW_EVERY_MS, and as much less often as keeps its share of a core within REDRAW_SHARE
// (up to REDRAW_LONGEST_MS apart).
function scheduleRedraw(promptly = false) {
  if (redrawTimer !== null && !promptly) return;
  clearTimeout(redrawTimer);
  redrawTimer = setTimeout(() => requestAnimationFrame(() => {
    redrawTimer = null;
    redrawnAt = performance.now();
    redraw();
    const took = performance.now() - redrawnAt;
    redrawEvery = Math.min(REDRAW_LONGEST_MS, Math.max(REDRAW_EVERY_MS, took / REDRAW_SHARE));
  }), promptly ? 0 : Math.max(0, redrawnAt + redrawEvery - performance.now()));
}

// Which charts are in the window (or within SIGHT_MARGIN of it): one out of sight is not drawn, nor one in a hidden
// figure, until it comes into sight, then at once, from what is current then.
const inSight = new Set();
const watched = new Set();
const sight = new IntersectionObserver((entries) => {
  let appeared = false;
  for (const entry of entries) {
    if (entry.isIntersecting && !inSight.has(entry.target)) appeared = true;
    if (entry.isIntersecting) inSight.add(entry.target);
    else inSight.delete(entry.target);
  }
  if (appeared) scheduleRedraw(true);
}, { rootMargin: SIGHT_MARGIN });

function seen(element) { // watched from its first use on: the observer says at once whether it is in sight
  if (!watched.has(element)) {
    watched.add(element);
    sight.observe(element);
  }
  return inSight.has(element);
}

// --- the curves ------------------------------------------------------------------------------------------

// An exponential moving mean, debiased as TensorBoard's smoothing is: each point weighs the older ones by
// (1 - 1/SMOOTHING_ITERATIONS) per iteration, and is divided by the weights' sum so far (1 - keep^n), so the
// curve starts at the first losses rather than at 0, follows a short run closely and has no step anywhere.
function smoothed(values, width, state = { mean: 0, weight: 0 }) { // `state` carries on to later points
  const keep = Math.pow(1 - 1 / SMOOTHING_ITERATIONS, width); // a point is the mean of `width` iterations
  return values.map((value) => {
    state.mean = keep * state.mean + (1 - keep) * value;
    state.weight = keep * state.weight + (1 - keep);
    return state.mean / state.weight;
  });
}

// The loss on the whole sets at each evaluation (the looked-into run's): the overfitting view beside the
// mini-batch loss, drawn where it was measured (a run of an older sgdlab has none)
const SET_LOSSES = [["train_loss", "trace.train-set", "solid"], ["test_loss", "trace.test-set", "dash"],
  ["val_loss", "trace.validation-set", "dot"]];

function setLossTraces(evaluations, showlegend) {
  return SET_LOSSES.filter(([key]) => evaluations.some((row) => row[key] !== null && row[key] !== undefined))
    .map(([key, label, dash]) => ({ x: evaluations.map((row) => row.iteration),
      y: evaluations.map((row) => (row[key] === undefined ? null : row[key])), type: "scatter",
      mode: "lines+markers", name: t(label), legendgroup: "sets", showlegend, line: { color: "#444", width: 1, dash },
      marker: { size: 5 } }));
}

// A run's loss as drawn: its buckets' means, raw and smoothed, then the bucket being filled, which ends at the
// latest iteration (the last point is always where training is).
function lossCurve(run) {
  const { iterations, values, width, open } = run.loss;
  const state = { mean: 0, weight: 0 };
  const curve = { x: iterations, raw: values, smooth: smoothed(values, width, state) };
  const last = iterations.length ? iterations[iterations.length - 1] : 0;
  const done = run.view ? run.view.iterations_done : last;
  if (open === null || open === undefined || done <= last) return curve;
  return { x: [...iterations, done], raw: [...values, open],
    smooth: [...curve.smooth, ...smoothed([open], done - last, state)] };
}

// What a line of the points (x, y) needs at `columns` pixels across: every point when there are few; else the
// points in groups of a power of two (a column or less each, the same groups as the curve grows), each group's
// lowest and highest in their order, and the last point, so that the line covers the same pixels, noise included.
// A group of missing values (a diverged run's) keeps one, so that the line breaks there as it would.
function decimated(x, y, columns) {
  const count = x.length;
  if (count <= 2 * columns) return { x, y };
  let group = 1;
  while (count / group > columns) group *= 2;
  const kept = [];
  for (let start = 0; start < count; start += group) {
    let low = -1;
    let high = -1;
    for (let k = start; k < Math.min(count, start + group); k++) {
      if (y[k] === null || y[k] === undefined) continue;
      if (low < 0 || y[k] < y[low]) low = k;
      if (high < 0 || y[k] > y[high]) high = k;
    }
    if (low < 0) kept.push(start);
    else kept.push(...(low === high ? [low] : [Math.min(low, high), Math.max(low, high)]));
  }
  if (kept[kept.length - 1] !== count - 1) kept.push(count - 1);
  return { x: kept.map((k) => x[k]), y: kept.map((k) => y[k]) };
}

// plot(chart, ...) unless the chart was drawn from the same `source` last time, or is out of sight (drawn when it
// comes into sight): redrawing a chart costs the page (and the training on the same cores) far more than comparing
// what it shows.
function drawIfChanged(chart, source, draw) {
  const key = JSON.stringify(source);
  if (drawn.get(chart) === key || !seen($(chart))) return;
  drawn.set(chart, key);
  draw();
}

function fittedAccuracyRange(traces) { // the evaluations after the first (an untrained net's, near chance)
  const values = [];
  for (const trace of traces) {
    const later = trace.x.length > 1 ? trace.y.slice(1) : trace.y;
    values.push(...later.filter((value) => value !== null && value !== undefined));
  }
  if (!values.length) return [0, 1];
  const low = Math.min(...values);
  const high = Math.max(...values);
  const margin = Math.max(0.01, (high - low) * FITTED_MARGIN);
  return [Math.max(0, low - margin), Math.min(1, high + margin)];
}

function rateMarks(run, iterationsPerEpoch) { // a dashed line at each change of the learning rate, and the new rate
  const shapes = [];
  const annotations = [];
  for (const change of (run.view && run.view.lr_changes) || []) {
    const x = iterationsPerEpoch ? change.iteration / iterationsPerEpoch : change.iteration;
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1,
      line: { color: run.colour, width: 1, dash: "dash" } });
    annotations.push({ xref: "x", yref: "paper", x, y: 1, yanchor: "bottom", showarrow: false,
      text: t("lr-mark", { lr: change.lr }), font: { size: 10, color: run.colour } });
  }
  return { shapes, annotations };
}

function redraw() {
  const shown = [...runs.values()].filter((run) => (run.shown || run.summary.id === focused) && run.loss);
  const several = shown.length > 1;
  const lossTraces = [];
  const accuracyTraces = [];
  const lossMarks = { shapes: [], annotations: [] };
  const accuracyMarks = { shapes: [], annotations: [] };
  let rawWidth = 1;
  const lossFrom = []; // what the loss chart shows: see `drawIfChanged`
  const accuracyFrom = [];
  const lossColumns = $("loss-chart").clientWidth || window.innerWidth; // a hidden chart: at most the window's
  for (const run of shown) {
    const name = several ? plotlyText(runLabel(run.summary)) : "";
    const mine = run.summary.id === focused;
    const curve = lossCurve(run);
    const evaluated = [run.summary.id, run.generation, run.evaluations.length, run.view && run.view.lr_changes.length];
    lossFrom.push([...evaluated, mine, run.loss.width, curve.x.length, curve.x[curve.x.length - 1],
      curve.raw[curve.raw.length - 1]]); // the whole sets' losses are drawn from the evaluations
    accuracyFrom.push(evaluated);
    if (mine && curve.x.length) {
      rawWidth = run.loss.width;
      lossTraces.push({ ...decimated(curve.x, curve.raw, lossColumns), type: "scatter", mode: "lines",
        name: t("trace.raw"), line: { color: run.colour, width: 1 }, opacity: 0.3, showlegend: !several });
    }
    if (curve.x.length) {  // a model file alone has no curves
      lossTraces.push({ ...decimated(curve.x, curve.smooth, lossColumns), type: "scatter",
        mode: "lines", name: name || t("trace.smoothed"), line: { color: run.colour, width: 2 } });
    }
    if (mine) lossTraces.push(...setLossTraces(run.evaluations, !several)); // several runs: one legend entry a run
    const epochs = run.evaluations.map((row) => row.epoch);
    // several runs: one legend entry a run (its colour), the line's dash telling train, test and validation apart
    const kinds = [["train_acc", t("trace.train"), "solid"], ["test_acc", t("trace.test"), "dash"],
      ["val_acc", t("trace.validation"), "dot"]];
    kinds.filter(([key]) => run.evaluations.some((row) => row[key] !== null && row[key] !== undefined))
      .forEach(([key, label, dash], k) => {
        accuracyTraces.push({ x: epochs, y: run.evaluations.map((row) => row[key]), type: "scatter",
          mode: "lines+markers", name: several ? name : label, showlegend: !several || k === 0,
          line: { color: run.colour, dash } });
      });
    const perEpoch = run.evaluations.find((row) => row.iteration > 0 && row.epoch > 0);
    for (const [marks, iterationsPerEpoch] of [[lossMarks, 0], [accuracyMarks, perEpoch && perEpoch.iteration / perEpoch.epoch]]) {
      if (marks === accuracyMarks && !perEpoch) continue;
      const found = rateMarks(run, iterationsPerEpoch);
      marks.shapes.push(...found.shapes);
      marks.annotations.push(...found.annotations);
    }
  }
  $("loss-figure").hidden = !lossTraces.length;
  $("accuracy-figure").hidden = !accuracyTraces.length;
  $("essentials").classList.toggle("no-curves", !lossTraces.length && !accuracyTraces.length);
  $("raw-note").textContent = rawWidth > 1 ? t("loss.raw-means", { width: rawWidth }) : t("loss.raw-one");
  // the legend in a line under the curves, inside the chart: several runs' labels wrap there, hiding nothing
  // (traceorder "normal": a legend group, such as the whole sets' losses, would otherwise stack as a column)
  const legend = { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 }, traceorder: "normal" };
  const margin = { l: 50, r: 10, t: 20, b: 40 };
  const logLoss = $("loss-log").checked;
  if (lossTraces.length) { // (drawn again in another language too)
    drawIfChanged("loss-chart", [lossFrom, focused, logLoss, lossColumns, language], () => plot("loss-chart",
      lossTraces, { margin, xaxis: { title: { text: t("axis.iteration"), standoff: 4 } },
        yaxis: { title: { text: t(logLoss ? "axis.loss-log" : "axis.loss") }, type: logLoss ? "log" : "linear",
          automargin: true },
        legend, uirevision: `loss ${logLoss}`, ...lossMarks }));
  }
  if (accuracyTraces.length) {
    const whole = $("accuracy-whole").checked;
    drawIfChanged("accuracy-chart", [accuracyFrom, focused, whole, language], () => plot("accuracy-chart",
      accuracyTraces, { margin, xaxis: { title: { text: t("axis.epoch"), standoff: 4 } },
        yaxis: { title: { text: t("axis.accuracy") }, range: whole ? [0, 1] : fittedAccuracyRange(accuracyTraces),
          automargin: true },
        legend, uirevision: `accuracy ${whole}`, ...accuracyMarks }));
  }
  showWeightSpread(runs.get(focused));
  const inspected = focused && runs.get(focused).inspection;
  if (inspected && inspected.confusion) drawMistakeCharts(inspected); // those that have come into sight since
  showStatus();
}

function showStatus() {
  const run = runs.get(focused);
  if (!run || !run.view) return;
  const view = run.view;
  $("run-name").textContent = run.summary.name;
  showInspectedAt(run.inspection);
  const status = $("status");
  const controllable = view.live && ["training", "paused", "starting"].includes(view.status);
  // "stopping..." said until the run has saved
  status.textContent = controllable && run.stopping ? t("status.stopping") : term("status", view.status);
  status.className = `status ${view.status}`;
  $("progress").textContent = view.total_iterations
    ? t("progress", { done: view.iterations_done, total: view.total_iterations }) : "";
  showPace(view, controllable);
  const rate = rateInForce(run);
  const asked = view.requested_learning_rate;
  $("lr-now").textContent = rate === null ? "" : asked !== null && asked !== undefined
    ? t("lr-now.asked", { rate, asked }) : t("lr-now", { rate });
  say("run-message", view.message);
  $("controls").hidden = !controllable;
  for (const button of ["pause", "resume", "step", "stop", "set-lr"]) $(button).disabled = Boolean(run.stopping);
  if (!run.stopping) {
    $("pause").disabled = view.status === "paused";
    $("resume").disabled = view.status !== "paused";
  }
}

function showPace(view, controllable) { // iterations per second over the server's recent window, and the time left
  $("pace").hidden = !controllable;
  const perSecond = view.status === "training" ? view.iterations_per_second : null;
  const measured = perSecond !== null && perSecond !== undefined && perSecond > 0;
  $("per-second").textContent = measured ? (perSecond >= 100 ? String(Math.round(perSecond)) : perSecond.toPrecision(3)) : "—";
  $("time-left").textContent = measured && view.total_iterations
    ? duration((view.total_iterations - view.iterations_done) / perSecond) : "—";
}

function duration(seconds) { // h:mm:ss, or m:ss
  const whole = Math.round(seconds);
  const [hours, minutes, rest] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  const two = (n) => String(n).padStart(2, "0");
  return hours ? `${hours}:${two(minutes)}:${two(rest)}` : `${minutes}:${two(rest)}`;
}

function rateInForce(run) { // the live run's, else the last change's, else the run's setting
  const view = run.view;
  if (view.learning_rate !== null && view.learning_rate !== undefined) return view.learning_rate;
  if (view.lr_changes && view.lr_changes.length) return view.lr_changes[view.lr_changes.length - 1].lr;
  const settings = run.summary.settings || {};
  return typeof settings.lr === "number" ? settings.lr : null;
}

// --- the latest evaluation -------------------------------------------------------------------------------

// The confusion matrix and the accuracy per digit of the evaluation `found`, each drawn once in sight (see
// `drawIfChanged`); each chart given its own copies: plotly takes an array it was given before as unchanged, and a
// chart drawn again in another language from the same arrays would lose its data.
function drawMistakeCharts(found) {
  const digits = [...Array(10).keys()].map(String);
  drawIfChanged("confusion-chart", [found.confusion, language], () => plot("confusion-chart", [{
    z: found.confusion.map((row) => [...row]), x: digits, y: digits, type: "heatmap", colorscale: "Blues",
    reversescale: true, hovertemplate: `${t("confusion.hover")}<extra></extra>` }],
  { margin: { l: 40, r: 10, t: 10, b: 40 }, xaxis: { title: { text: t("axis.predicted") }, type: "category" },
    yaxis: { title: { text: t("axis.true") }, autorange: "reversed", type: "category" } }));
  drawIfChanged("per-digit-chart", [found.per_digit, language], () => plot("per-digit-chart", [{ x: digits,
    y: [...found.per_digit], type: "bar", marker: { color: "#1f77b4" } }],
  { margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: t("axis.digit") }, type: "category" },
    yaxis: { title: { text: t("axis.test-accuracy") }, range: [0, 1] } }));
}

function showInspection(found) {
  showInspectedAt(found);
  if (!found.confusion) return;
  $("mistakes").hidden = false;
  $("gradient-check").hidden = false;
  showImage("units", "weights", found.weights);
  showImage("filters-figure", "filters", found.filters);
  showDeeperFilters(found.deeper_filters || []);
  $("confusion-figure").hidden = false;
  $("per-digit-figure").hidden = false;
  drawMistakeCharts(found);
  showStrip(found.strip || []);
  showHistograms(found.histograms || []);
  $("errors-count").textContent = t("mistakes.count", { errors: found.errors });
  const gallery = $("gallery");
  gallery.replaceChildren(...found.gallery.map((item) => {
    const figure = document.createElement("figure");
    const image = document.createElement("img");
    image.src = item.image;
    image.alt = t("mistakes.alt", { index: item.index });
    const caption = document.createElement("figcaption");
    caption.textContent = t("mistakes.caption", { label: item.label, predicted: item.predicted,
      percent: (100 * item.probability).toFixed(0) });
    figure.append(image, caption);
    return figure;
  }));
  const rows = found.gradients.map((check) => {
    const row = document.createElement("tr");
    const differentiated = check.sampled ?? check.size;
    const verdict = t(!check.checked ? "gradients.unchecked" : !check.passed ? "gradients.differ"
      : check.is_zero ? "gradients.agree-zero" : "gradients.agree");
    const cells = [check.name, check.max_rel_error === null ? t("gradients.nan") : check.max_rel_error.toExponential(2),
      check.kinks ? t("gradients.kinks-count", { kinks: check.kinks, size: differentiated }) : "",
      check.sampled === null || check.sampled === undefined ? verdict
        : t("gradients.sampled", { verdict, sampled: check.sampled, size: check.size })];
    cells.forEach((text, i) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (i === 3) cell.className = check.passed ? "ok" : check.checked ? "fail" : "unchecked";
      row.appendChild(cell);
    });
    return row;
  });
  $("gradients").querySelector("tbody").replaceChildren(...rows);
  $("gradient-images").textContent = t("gradients.images", { images: found.gradient_images });
}

function showStrip(strip) { // the same test digits at every evaluation: their images kept, the guesses changed
  $("strip-figure").hidden = !strip.length;
  const cells = $("strip");
  if (cells.children.length !== strip.length
      || strip.some((item, k) => cells.children[k].dataset.index !== String(item.index))) {
    cells.replaceChildren(...strip.map((item) => {
      const figure = document.createElement("figure");
      figure.dataset.index = String(item.index);
      const image = document.createElement("img");
      image.src = item.image;
      image.alt = t("mistakes.alt", { index: item.index });
      figure.append(image, document.createElement("figcaption"));
      return figure;
    }));
  }
  strip.forEach((item, k) => {
    const figure = cells.children[k];
    figure.classList.toggle("wrong", item.predicted !== item.label);
    figure.querySelector("figcaption").textContent = String(item.predicted);
    figure.title = `${item.label} → ${item.predicted} (${(100 * item.probability).toFixed(0)}%)`;
  });
}

function showInspectedAt(found) { // the evaluation looked into, or that none is here yet
  $("inspected-at").textContent = !found || !found.confusion ? t("state.waiting")
    : found.iteration === null ? "" : t("state.at", { iteration: found.iteration });
}

const FIELD_PIXELS = 28; // screen pixels of each deeper filter's patch, whatever its size: an MNIST digit's

function showDeeperFilters(convolutions) { // each filter the patch that drives it most, every patch at one size
  $("deeper-filters-figure").hidden = !convolutions.length;
  $("deeper-filters-searched").textContent = convolutions.length ? convolutions[0].images : "";
  $("deeper-filters").replaceChildren(...convolutions.map((found) => {
    const item = document.createElement("figure");
    const label = document.createElement("figcaption");
    label.textContent = t("deeper-filters.label", { convolution: found.convolution, filters: found.filters,
      size: `${found.size.join("x")}x${found.channels}`, field: found.field.join("x") });
    const image = document.createElement("img");
    const scale = FIELD_PIXELS / found.field[1];
    image.src = found.image;
    image.alt = t("deeper-filters.alt", { convolution: found.convolution });
    image.style.width = `${Math.round(scale * found.width)}px`; // its height follows (narrower where the page is)
    item.append(image, label);
    return item;
  }));
}

const STATE_IMAGE_BOX = [380, 240]; // px: the most a mosaic of weights is scaled up to

function showImage(figure, image, source) { // a figure shown for the networks that have what it shows
  $(figure).hidden = !source;
  if (!source) return;
  const element = $(image);
  element.onload = () => {
    const scale = Math.min(STATE_IMAGE_BOX[0] / element.naturalWidth, STATE_IMAGE_BOX[1] / element.naturalHeight);
    element.style.width = `${scale * element.naturalWidth}px`; // its height follows
  };
  element.src = source;
}

// --- a sweep's trials ---------------------------------------------------------------------------------------

function startSweep() {
  $("sweep").hidden = false;
  $("sweep-name").textContent = sweep.name;
  $("search-charts").replaceChildren(...sweep.searches.map((search, k) => {
    const figure = document.createElement("figure");
    const chart = document.createElement("div");
    chart.id = `search-chart-${k}`;
    chart.className = "chart small";
    figure.append(chart, document.createElement("figcaption"));
    return figure;
  }));
  describeSweep();
  const stream = openStream("/api/sweep/stream");
  stream.addEventListener("results", (event) => showResults(JSON.parse(event.data)));
}

function describeSweep() { // what it searches, its table's heads and its charts' captions
  const ranges = sweep.searches.map((search) => (search.kind === "choice"
    ? t("sweep.choice", { name: search.name, choices: search.choices.join(", ") })
    : t("sweep.range", { name: search.name, kind: search.kind, low: search.low, high: search.high })));
  const values = { ranges: ranges.join("; "), trials: sweep.trials, rounds: sweep.rounds, seed: sweep.seed };
  const searched = t(sweep.rounds > 1 ? "sweep.rounds" : "sweep.one-round", values);
  const shared = Object.entries(sweep.settings).map(([name, value]) => `${name} ${value}`);
  $("sweep-searched").textContent = shared.length ? t("sweep.shared", { searched, shared: shared.join(", ") }) : searched;
  const heads = [[t("sweep.head.trial")], [t("sweep.head.round")], ...sweep.searches.map((search) => [search.name]),
    [t("sweep.head.val")], [t("sweep.head.train")], [t("sweep.head.test"), "unused"], [t("sweep.head.seconds")],
    [t("sweep.head.status")], [t("sweep.head.worker")]];
  $("trials").querySelector("thead tr").replaceChildren(...heads.map(([text, kind]) => {
    const head = document.createElement("th");
    head.textContent = text;
    if (kind) head.className = kind;
    return head;
  }));
  sweep.searches.forEach((search, k) => {
    $(`search-chart-${k}`).nextElementSibling.textContent = t("sweep.search-caption", { name: search.name });
  });
}

function showResults(results) {
  lastResults = results;
  trials = results.rows;
  best = results.best;
  const counts = new Map();
  for (const row of trials) counts.set(row.status, (counts.get(row.status) || 0) + 1);
  const counted = [...counts].map(([status, count]) => t("sweep.count", { count, status: term("status", status) }))
    .join(", ");
  $("sweep-progress").textContent = t("sweep.progress", { total: results.total, counted: counted || t("sweep.none-started") });
  say("sweep-message", results.message);
  keepRuns();
  showTrials();
}

function keepRuns() { // the curves of the best few trials, and of the one looked into
  const wanted = new Set([...best.map((summary) => summary.id), focused]);
  for (const id of [...runs.keys()]) if (!wanted.has(id)) dropRun(id);
  for (const summary of best) {
    if (!runs.has(summary.id)) {
      addRun(summary, true);
      follow(summary.id);
    }
  }
  for (const id of wanted) if (runs.has(id)) $("runs").appendChild(runs.get(id).label); // best first
  if (!focused && best.length) setFocus(best[0].id);
}

function lookInto(row) {
  if (!runs.has(row.run)) {
    addRun({ id: row.run, name: row.run, status: row.status, live: false, settings: row.settings, trial: row.trial,
      label: `trial ${row.trial}` }, false);
  }
  setFocus(row.run);
}

function settingText(value) {
  if (typeof value !== "number" || Number.isInteger(value)) return value === null ? "" : String(value);
  const plain = Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4;
  return plain ? String(Number(value.toPrecision(3))) : value.toExponential(2);
}

function showTrials() {
  const fixed = (value, digits) => (value === null ? "" : value.toFixed(digits));
  $("trials").querySelector("tbody").replaceChildren(...trials.map((row) => {
    const line = document.createElement("tr");
    const cells = [[row.trial, "number"], [row.round, "number"],
      ...sweep.searches.map((search) => [settingText(row.settings[search.name]), "number"]),
      [fixed(row.val_acc, 4), "number"], [fixed(row.train_acc, 4), "number"], [fixed(row.test_acc, 4), "number unused"],
      [fixed(row.seconds, 1), "number"], [term("status", row.status), ""], [row.worker, ""]];
    for (const [text, kind] of cells) {
      const cell = document.createElement("td");
      cell.textContent = text === null ? "" : text;
      cell.className = kind;
      line.appendChild(cell);
    }
    if (row.error) line.cells[line.cells.length - 2].title = row.error;
    const run = runs.get(row.run);
    if (run && (run.shown || row.run === focused)) line.cells[0].style.borderLeft = `4px solid ${run.colour}`;
    if (row.run) {
      line.tabIndex = 0;
      line.title = t("sweep.look-into", { trial: row.trial });
      line.addEventListener("click", () => lookInto(row));
      line.addEventListener("keydown", (event) => { if (event.key === "Enter") lookInto(row); });
    }
    if (row.run !== null && row.run === focused) line.classList.add("focused");
    return line;
  }));
  showSearch();
}

function roundColour(round) { // the rounds' own colours: the runs' mark the trials whose curves are overlaid
  const step = sweep.rounds > 1 ? (ROUND_COLOURS.length - 1) / (sweep.rounds - 1) : 0;
  return ROUND_COLOURS[Math.min(ROUND_COLOURS.length - 1, Math.round((round - 1) * step))];
}

function showSearch() {
  const rounds = [...new Set(trials.map((row) => row.round))].sort((a, b) => a - b);
  const chosen = trials.find((row) => row.run !== null && row.run === focused && row.val_acc !== null);
  sweep.searches.forEach((search, k) => {
    const choice = search.kind === "choice";
    const at = (row) => (choice && row.settings[search.name] !== null ? plotlyText(row.settings[search.name])
      : row.settings[search.name]);
    const traces = rounds.map((round) => {
      const scored = trials.filter((row) => row.round === round && row.val_acc !== null);
      return { x: scored.map(at), y: scored.map((row) => row.val_acc), customdata: scored.map((row) => row.trial),
        type: "scatter", mode: "markers", name: t("sweep.round", { round }),
        marker: { color: roundColour(round), size: 8, line: { color: "#fff", width: 0.5 } },
        hovertemplate: `${t("sweep.hover")}<extra></extra>` };
    });
    if (chosen) {
      traces.push({ x: [at(chosen)], y: [chosen.val_acc], type: "scatter", mode: "markers", name: t("sweep.looked-into"),
        marker: { size: 16, color: "rgba(0,0,0,0)", line: { color: "#222", width: 2 } }, hoverinfo: "skip" });
    }
    const xaxis = { title: { text: plotlyText(search.name) }, exponentformat: "e",
      type: search.kind === "log" ? "log" : choice ? "category" : "linear" };
    if (choice) Object.assign(xaxis, { categoryorder: "array", categoryarray: search.choices.map(plotlyText) });
    const chart = $(`search-chart-${k}`);
    plot(chart, traces, { margin: { l: 50, r: 10, t: 30, b: 40 }, xaxis,
      yaxis: { title: { text: t("axis.validation-accuracy") }, range: [0, 1] }, legend: { orientation: "h", y: 1.2 },
      showlegend: rounds.length > 1 || chosen !== undefined, uirevision: search.name });
    if (!chart.dataset.clickable) {
      chart.dataset.clickable = "yes";
      chart.on("plotly_click", (event) => {
        const row = trials.find((candidate) => candidate.trial === event.points[0].customdata);
        if (row && row.run) lookInto(row);
      });
    }
  });
}

// --- controls ----------------------------------------------------------------------------------------------

async function control(action, extra = {}) {
  say("control-message", null);
  try {
    await api(`/api/runs/${encodeURIComponent(focused)}/control`, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ action, ...extra }) });
  } catch (error) {
    say("control-message", refusal(error));
  }
}

for (const action of ["pause", "resume", "step"]) $(action).addEventListener("click", () => control(action));
$("stop").addEventListener("click", () => { // the run stops after its iteration and saves: seconds, said at once
  const run = runs.get(focused);
  if (run) run.stopping = true;
  showStatus();
  control("stop").then(() => {
    if (run && $("control-message").textContent) run.stopping = false; // refused: said beside the controls
    showStatus();
  });
});
$("set-lr").addEventListener("click", () => { // an empty field is no rate: the server says what it wants
  const text = $("lr").value.trim();
  control("lr", { lr: text === "" ? null : Number(text) });
});
for (const box of ["loss-log", "accuracy-whole"]) $(box).addEventListener("change", () => scheduleRedraw(true));

// --- drawing and reading a digit -----------------------------------------------------------------------------

const canvas = $("canvas");
const pen = canvas.getContext("2d");
let drawing = false;
let lastDigit = null; // {blob, name} of the digit read last: read again as training changes the weights

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
    lastDigit = null;
    canvas.toBlob((blob) => readDigit(blob, t("draw.own")), "image/png"); // the name the server's errors use
  });
}
$("clear").addEventListener("click", () => {
  clearCanvas();
  lastDigit = null;
});

function readAgain(run) { // a new evaluation of a run in training: the same digit, with the weights of now
  const training = run.view && run.view.live && ["training", "paused"].includes(run.view.status);
  if (lastDigit && training) readDigit(lastDigit.blob, lastDigit.name);
}
$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  lastDigit = null;
  if (file) readDigit(file, file.name);
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  const file = event.dataTransfer.files[0];
  lastDigit = null;
  if (file) readDigit(file, file.name);
});

async function readDigit(blob, name) { // `name`: what the user chose, for the server's errors to name
  say("draw-message", null);
  await started; // a digit drawn, or a file dropped, before the page knew its runs
  if (!focused) return;
  try {
    const read = await api(`/api/runs/${encodeURIComponent(focused)}/predict`, { method: "POST", body: blob,
      headers: { "Content-Type": "application/octet-stream", "X-Sgdlab-File-Name": encodeURIComponent(name) } });
    lastDigit = { blob, name };
    showReading(read);
  } catch (error) {
    say("draw-message", refusal(error));
  }
}

function showReading(read) { // drawn again, from copies, in another language (see showInspection)
  lastReading = read;
  $("seen").src = read.image;
  $("seen-figure").hidden = false;
  $("probabilities-figure").hidden = false;
  const digits = [...Array(10).keys()].map(String);
  plot("probabilities-chart", [{ x: digits, y: [...read.probabilities], type: "bar",
    marker: { color: digits.map((d) => (Number(d) === read.prediction ? "#d62728" : "#1f77b4")) } }],
  { margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { type: "category", title: { text: t("axis.digit") } },
    yaxis: { range: [0, 1], title: { text: t("axis.probability") } } });
  const said = { digit: read.prediction, percent: (100 * read.probabilities[read.prediction]).toFixed(1),
    iteration: read.iteration };
  $("prediction").textContent = t(read.iteration === null || read.iteration === undefined ? "prediction"
    : "prediction.at", said);
  showFeatureMaps(read.feature_maps);
  showHiddenLayers(read.hidden_layers || []);
}

// The element `id` holding `count` small chart boxes: made again (the old charts purged) when the count changes.
function chartsFor(id, count) {
  const charts = $(id);
  if (charts.children.length !== count) {
    for (const chart of charts.children) Plotly.purge(chart);
    charts.replaceChildren(...Array.from({ length: count }, () => {
      const chart = document.createElement("div");
      chart.className = "chart";
      return chart;
    }));
  }
  return charts;
}

function showHiddenLayers(layers) { // each hidden affine layer's outputs after its activation, a small chart each
  $("hidden-figure").hidden = !layers.length;
  const charts = chartsFor("hidden-charts", layers.length);
  layers.forEach((layer, k) => {
    plot(charts.children[k], [{ y: [...layer.values], type: "bar", marker: { color: "#2ca02c" } }],
      { margin: { l: 40, r: 10, t: 6, b: 30 }, xaxis: { title: { text: layerName("affine", layer.layer,
        layer.activation), standoff: 2 } } });
  });
}

const HISTOGRAM_SIZE = [180, 80]; // a histogram's canvas, in pixels

function showHistograms(histograms) { // the book's 6.2 histograms, one small canvas per activation layer
  $("histograms-figure").hidden = !histograms.length;
  const cells = $("histograms");
  if (cells.children.length !== histograms.length) {
    cells.replaceChildren(...histograms.map(() => {
      const cell = document.createElement("div");
      const canvas = document.createElement("canvas");
      [canvas.width, canvas.height] = HISTOGRAM_SIZE;
      cell.append(document.createElement("span"), canvas);
      return cell;
    }));
  }
  histograms.forEach((histogram, k) => {
    const cell = cells.children[k];
    cell.querySelector("span").textContent = layerName(histogram.after, histogram.number, histogram.activation);
    const canvas = cell.querySelector("canvas");
    canvas.setAttribute("aria-label", cell.querySelector("span").textContent);
    const context = canvas.getContext("2d");
    const [width, height] = HISTOGRAM_SIZE;
    const plotHeight = height - 14; // the range's ends written under the bars
    context.clearRect(0, 0, width, height);
    const most = Math.max(1, ...histogram.counts);
    const bar = width / histogram.counts.length;
    context.fillStyle = "#1f77b4";
    histogram.counts.forEach((count, bin) => {
      const barHeight = (plotHeight * count) / most;
      context.fillRect(bin * bar + 0.5, plotHeight - barHeight, Math.max(1, bar - 1), barHeight);
    });
    context.fillStyle = "#555";
    context.font = `10px ${PAGE_FONT}`;
    const [low, high] = histogram.range.map((end) => Number(end.toPrecision(3)));
    context.textAlign = "left";
    context.fillText(String(low), 0, height - 2);
    context.textAlign = "right";
    context.fillText(String(high), width, height - 2);
  });
}

// Each weight matrix's spread at every evaluation, TensorBoard's distributions: bands between its nine percentiles
// (minimum, those of a normal distribution's -1.5, -1, -0.5, 0, 0.5, 1, 1.5 standard deviations, maximum)
const SPREAD_BANDS = [[0, 8, 0.15], [1, 7, 0.25], [2, 6, 0.35], [3, 5, 0.5]]; // low, high, opacity: outermost first
const SPREAD_MEDIAN = 4;
let spreadDrawn = null; // what the charts show (the run, its record and evaluations): drawn again only when it changes

function showWeightSpread(run) { // one small chart a weight matrix, from the evaluations' weight_percentiles
  const rows = run ? run.evaluations.filter((row) => row.weight_percentiles) : [];
  const names = [...new Set(rows.flatMap((row) => Object.keys(row.weight_percentiles)))];
  $("spread-figure").hidden = !names.length;
  const drawn = `${run && run.summary.id} ${run && run.view && run.view.generation} ${rows.length} ${names.length} ${
    language}`;
  if (drawn === spreadDrawn || !seen($("spread"))) return; // below the first screen: drawn when scrolled to
  spreadDrawn = drawn;
  const charts = chartsFor("spread", names.length);
  const x = rows.map((row) => row.iteration);
  names.forEach((name, k) => {
    const at = (p) => rows.map((row) => (row.weight_percentiles[name] ? row.weight_percentiles[name][p] : null));
    const traces = [];
    for (const [low, high, opacity] of SPREAD_BANDS) {
      traces.push({ x, y: at(low), type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip" });
      traces.push({ x, y: at(high), type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip",
        fill: "tonexty", fillcolor: `rgba(31, 119, 180, ${opacity})` });
    }
    traces.push({ x, y: at(SPREAD_MEDIAN), type: "scatter", mode: "lines+markers", name: t("spread.median"),
      line: { color: "#1f77b4", width: 1.5 }, marker: { size: 4 },
      hovertemplate: `${t("spread.hover", { name: plotlyText(name) })}<extra></extra>` });
    plot(charts.children[k], traces, { margin: { l: 50, r: 8, t: 6, b: 32 }, showlegend: false,
      xaxis: { title: { text: t("axis.iteration"), standoff: 2 } },
      yaxis: { title: { text: plotlyText(name), standoff: 2 }, zerolinecolor: "#ccc" } });
  });
}

const MAP_SCALE = 2; // screen pixels per feature-map pixel: each stage's maps at their own size, side by side

function showFeatureMaps(stages) { // a convolutional net's: each convolution's maps, stage by stage, a row each
  $("maps-figure").hidden = !stages;
  if (!stages) return;
  const rows = new Map();
  for (const stage of stages) {
    if (!rows.has(stage.convolution)) rows.set(stage.convolution, []);
    rows.get(stage.convolution).push(stage);
  }
  $("maps").replaceChildren(...[...rows].map(([convolution, own]) => {
    const row = document.createElement("div");
    row.className = "maps-row";
    if (rows.size > 1) {
      const label = document.createElement("span");
      label.textContent = t("maps.row", { convolution });
      row.appendChild(label);
    }
    for (const stage of own) {
      const image = document.createElement("img");
      image.src = stage.image;
      image.alt = t("maps.alt", { convolution, layers: layersText(stage.layers) });
      image.style.width = `${MAP_SCALE * stage.width}px`;
      row.appendChild(image);
    }
    return row;
  }));
  const [first, ...later] = rows.values().next().value.map((stage) => layersText(stage.layers));
  $("maps-stages").textContent = later.length ? t("maps.stages-two", { first, second: later.join(", ") })
    : t("maps.stages-one", { first });
}

function layersText(kinds) { // "convolution and relu"
  return kinds.map((kind) => term("layer", kind)).reduce((first, second) => t("maps.and", { first, second }));
}

function layerName(kind, number, activation) { // "affine 2 → relu": a layer of the net, and the activation after it
  return `${term("layer", kind)} ${number} → ${term("layer", activation)}`;
}

clearCanvas();
const started = start().catch((error) => {
  const why = said(refusal(error));
  $("run-message").textContent = texts["load-error"] ? t("load-error", { error: why }) : why;
});
