// The run page: its config and rate table, its curves, its verdict; new epochs arrive as
// server-sent events (history first, then live, each epoch once) and are drawn as they come. A run
// logged from outside also shows its hyperparameters, its other named scalars, and its per-step
// records (re-read with the analysis: they are not streamed), the training loss among them drawn
// under the epochs' means. The charts and their controls are charts.js's; every chart of the page
// shares one cursor and one zoom.
"use strict";

const runName = decodeURIComponent(location.pathname.split("/").pop());
/** The analysis (verdict, diagnoses) is re-read at most this often while the run trains. */
const ANALYSIS_MIN_GAP_MS = 2000;
const $ = (id) => document.getElementById(id);

const page = {
  run: null,
  groups: [],
  metricField: "val_accuracy",
  // Column-wise data, as uPlot takes it.
  epochs: [], train: [], val: [], metric: [], rates: [], ratios: [],
  /** An external run's other scalars per epoch: name → column (null where an epoch lacks it). */
  extra: {},
  /** The run's step records by column, as /api/runs/RUN/steps answers. */
  steps: null,
  duplicates: 0, gaps: 0,
  /** Date.now() when each epoch was first drawn (for the latency benchmark). */
  drawnAt: {},
  source: null,
  ended: false,
};

function lineSeries(label, color, extra = {}) {
  return { label, stroke: color, width: 2, points: { show: false }, ...extra };
}

/** Every chart of a run shares one cursor: hovering epoch 7 on one shows epoch 7 on all. */
const SYNC = "run";

/** Records when each epoch first reached the screen. */
function stampDrawn() {
  const now = Date.now();
  for (const epoch of page.epochs) if (!(epoch in page.drawnAt)) page.drawnAt[epoch] = now;
}

/** A chart over the epochs in the element `containerId`. */
function epochChart(containerId, spec) {
  return charts.create($(containerId), {
    xLabel: "epoch", sync: SYNC, file: `${runName}-${spec.id}`, ...spec,
    data: () => [page.epochs, ...spec.columns()],
  });
}

/** The verdict's epochs on the loss chart: the best, where overfitting began, each bounce. */
function keyEpochMarks() {
  const key = page.run && page.run.analysis && page.run.analysis.key_epochs;
  if (!key || !page.epochs.length) return [];
  const marks = [];
  if (key.best) marks.push({ x: key.best, label: `best (${key.best})`, color: "#1a7f37" });
  if (key.overfitting_from) marks.push({ x: key.overfitting_from, label: `overfitting from ${key.overfitting_from}`, color: "#c62828" });
  for (const epoch of key.bounces) marks.push({ x: epoch, label: "bounce", color: "#b26a00" });
  return marks;
}

/** Each group's update ratio per step: the epoch's ‖Δw‖/‖w‖ over its steps (as the diagnoses judge it). */
function ratiosPerStep() {
  const steps = page.run.steps_per_epoch || 1;
  return page.ratios.map((column) => column.map((v) => (v === null ? null : v / steps)));
}

function buildCharts() {
  const groups = page.groups;
  // The gap: the shaded band between the two curves.
  epochChart("loss-chart", {
    id: "loss", title: "Train and validation loss", yLabel: "loss, mean per epoch",
    series: [lineSeries("train", strata.color(0)), lineSeries("validation", strata.color(1))],
    columns: () => [page.train, page.val],
    bands: [{ series: [2, 1], fill: "rgba(209,36,47,0.15)" }],
    marks: keyEpochMarks, underlay: stepUnderlay, onDraw: stampDrawn,
  });
  const r2 = page.metricField === "val_r2";
  epochChart("metric-chart", {
    id: "metric", title: r2 ? "Validation R²" : "Validation accuracy", yLabel: `${r2 ? "R²" : "accuracy"}, per epoch`,
    series: [lineSeries(page.metricField, strata.color(2))], columns: () => [page.metric],
    logDefault: () => false, marks: keyEpochMarks,
  });
  epochChart("rate-chart", {
    id: "rate", title: "Per-group learning rate", yLabel: "learning rate, per epoch",
    series: groups.map((g, i) => lineSeries(g, strata.color(i))), columns: () => page.rates,
    logDefault: () => true, smooth: false,
  });
  epochChart("ratio-chart", {
    id: "ratio", title: "Per-group update ratio per step", yLabel: "‖Δw‖/‖w‖ per step",
    series: groups.map((g, i) => lineSeries(g, strata.color(i))), columns: ratiosPerStep,
    logDefault: () => true,
  });
  buildExtraCharts();
}

/** An extra scalar's group: its prefix before the first `/` (`val/f1` → `val`), else "other". */
function prefixOf(name) {
  const cut = name.indexOf("/");
  return cut > 0 ? name.slice(0, cut) : "";
}

let extraCharts = [];
/**
 * The other per-epoch scalars (an external run's), one chart per prefix (`val/…`, `train/…`,
 * the rest together); drawn again when a new one appears.
 */
function buildExtraCharts() {
  for (const chart of extraCharts) chart.destroy();
  extraCharts = [];
  const names = Object.keys(page.extra).sort();
  $("extra-card").hidden = names.length === 0;
  const holder = $("extra-charts");
  holder.replaceChildren();
  const prefixes = [...new Set(names.map(prefixOf))].sort();
  for (const prefix of prefixes) {
    const group = names.filter((n) => prefixOf(n) === prefix);
    const title = prefix ? `${prefix}/…` : prefixes.length > 1 ? "other" : "";
    const box = strata.el("div", { class: "chart", "data-prefix": prefix });
    holder.append(strata.el("h3", {}, title), box);
    extraCharts.push(charts.create(box, {
      id: `extra:${prefix || "other"}`, title: `Other scalars ${title}`, xLabel: "epoch", yLabel: "value, per epoch",
      sync: SYNC, file: `${runName}-extra-${prefix || "other"}`,
      series: group.map((n, i) => lineSeries(n, strata.color(i), { spanGaps: true })),
      data: () => [page.epochs, ...group.map((n) => page.extra[n])],
    }));
  }
}

/** The step scalar that is the training loss: `train_loss`, else `loss`. */
function stepLossName(steps) {
  return ["train_loss", "loss"].find((n) => n in steps.scalars);
}

/**
 * Where each step falls among the epochs: a step of epoch E lands in (E−1, E], spread over the
 * steps that epoch logged, so its last step is at E, beside the epoch's mean; steps of no known
 * epoch are not placed.
 */
function stepPositions(steps) {
  const range = {};
  steps.steps.forEach((s, i) => {
    const e = steps.epochs[i];
    if (!e) return;
    const r = range[e] || (range[e] = { first: s, last: s, count: 0 });
    r.first = Math.min(r.first, s); r.last = Math.max(r.last, s); r.count += 1;
  });
  return steps.steps.map((s, i) => {
    const r = range[steps.epochs[i]];
    if (!r) return null;
    const span = r.last - r.first;
    return steps.epochs[i] - 1 + (span > 0 ? 0.05 + 0.95 * (s - r.first) / span : 1);
  });
}

/** The training loss per step, drawn faint under the loss chart's epoch curves. */
function stepUnderlay() {
  const steps = page.steps;
  const lossName = steps && stepLossName(steps);
  if (!lossName) return null;
  return { xs: stepPositions(steps), ys: steps.scalars[lossName], color: strata.color(0) };
}

let stepChart = null;
let stepScalarsChart = null;
/** The training loss per step under the epochs' means, and the other step scalars by step. */
function drawSteps() {
  const steps = page.steps;
  const lossName = steps && stepLossName(steps);
  $("step-card").hidden = !lossName;
  if (stepChart) stepChart.destroy();
  stepChart = null;
  if (lossName) {
    const at = stepPositions(steps);
    const points = [];
    at.forEach((x, i) => { if (x !== null) points.push([x, steps.scalars[lossName][i], null]); });
    page.epochs.forEach((e, i) => points.push([e, null, page.train[i]]));
    points.sort((a, b) => a[0] - b[0]);
    stepChart = charts.create($("step-chart"), {
      id: "steps", title: "Training loss per step", xLabel: "epoch (its steps spread across it)", yLabel: "loss, per step",
      sync: SYNC, file: `${runName}-steps`,
      series: [
        lineSeries(`${lossName} per step`, "rgba(31,111,235,0.45)", { width: 1, spanGaps: true }),
        lineSeries("train (epoch mean)", strata.color(0), { spanGaps: true, points: { show: true } }),
      ],
      data: () => [points.map((p) => p[0]), points.map((p) => p[1]), points.map((p) => p[2])],
    });
    $("step-note").textContent = steps.thinned
      ? `An even spread of ${steps.steps.length} of its ${steps.stored} steps (the first and the last among them).`
      : `${steps.stored} steps.`;
  }
  const others = steps ? Object.keys(steps.scalars).filter((n) => n !== lossName).sort() : [];
  $("step-scalars-card").hidden = others.length === 0;
  if (stepScalarsChart) stepScalarsChart.destroy();
  stepScalarsChart = null;
  if (others.length) {
    stepScalarsChart = charts.create($("step-scalars-chart"), {
      id: "step-scalars", title: "Other scalars per step", xLabel: "step", yLabel: "value, per step",
      sync: "run-steps", file: `${runName}-step-scalars`,
      series: others.map((n, i) => lineSeries(n, strata.color(i), { spanGaps: true })),
      data: () => [steps.steps, ...others.map((n) => steps.scalars[n])],
    });
  }
  const loss = charts.all.get("loss");
  if (loss) loss.plot.redraw(false);
}

/** Reads the run's step records again (a run that logs none has none). */
async function loadSteps() {
  if (!page.run || !page.run.external) return;
  page.steps = await strata.api(`/api/runs/${encodeURIComponent(runName)}/steps`);
  drawSteps();
}

/** Adds one epoch's values to the columns; false when it was already drawn. */
function addEpoch(epoch) {
  const last = page.epochs.length ? page.epochs[page.epochs.length - 1] : 0;
  if (epoch.epoch <= last) { page.duplicates += 1; return false; }
  if (epoch.epoch !== last + 1) page.gaps += 1;
  page.epochs.push(epoch.epoch);
  page.train.push(epoch.train_loss);
  page.val.push(epoch.val_loss);
  page.metric.push(epoch[page.metricField]);
  const byName = Object.fromEntries(epoch.groups.map((g) => [g.name, g]));
  page.groups.forEach((name, i) => {
    const group = byName[name];
    // A log scale cannot show 0 (a frozen group): a gap in the line instead.
    page.rates[i].push(group && group.lr > 0 ? group.lr : null);
    page.ratios[i].push(group && group.update_ratio > 0 ? group.update_ratio : null);
  });
  const extra = epoch.extra || {};
  let newName = false;
  for (const name of Object.keys(extra)) {
    if (!(name in page.extra)) {
      page.extra[name] = page.epochs.slice(0, -1).map(() => null);
      newName = true;
    }
  }
  for (const [name, column] of Object.entries(page.extra)) column.push(name in extra ? extra[name] : null);
  if (newName && charts.all.size) buildExtraCharts();
  return true;
}

function redraw() {
  for (const chart of charts.all.values()) if (chart !== stepScalarsChart) chart.refresh();
}

/** A sweep trial's swept settings, `lr=0.01, layer-lr=layer0=1e-3`. */
function settingsText(sweep) {
  return Object.entries(sweep.settings).map(([name, value]) => `${name}=${value}`).join(", ");
}

function renderSummary(run) {
  document.title = `Strata — ${run.name || run.id}`;
  $("title").replaceChildren(run.name ? `${run.name} ` : "", strata.el("span", { class: "muted" }, run.id));
  const a = run.analysis;
  $("summary").replaceChildren(
    strata.badge("status", run.status), " ",
    run.epochs_done ? strata.badge("verdict", a.verdict) : "", " ",
    `${run.epochs_done}${run.config.epochs ? `/${run.config.epochs}` : ""} epochs · ${run.config.model} on ${run.config.dataset}`,
    a.best_epoch ? ` · best validation loss ${strata.num(a.best_val_loss)} at epoch ${a.best_epoch}, gap ${strata.num(a.gap_at_best)}` : "",
    run.reason ? strata.el("div", { class: "muted" }, run.reason) : "",
    run.epochs_thinned ? strata.el("div", { class: "muted" },
      `The charts show an even spread of ${run.max_epochs} of its epochs (the first, the best and the last among them); strata export writes them all.`) : "",
    run.tags.length ? strata.el("div", { class: "muted" }, `tags: ${run.tags.join(", ")}`) : "",
    run.sweep ? strata.el("div", { class: "muted" }, "trial ", String(run.sweep.trial), " of sweep ",
      strata.el("a", { href: `/sweeps/${encodeURIComponent(run.sweep.sweep_id)}` }, run.sweep.sweep_id),
      `: ${settingsText(run.sweep)}`) : "",
  );
  $("verdict").textContent = run.epochs_done ? a.reason : "No epochs yet.";
  const diagnoses = Object.fromEntries(a.groups.map((g) => [g.name, g]));
  $("groups").replaceChildren(
    strata.el("tr", {}, ["Group", "Rate", "Frozen until", "Diagnosis", "Update ratio per step", "Advice"].map((h) => strata.el("th", {}, h))),
    ...run.groups.map((g) => {
      const d = diagnoses[g.name];
      const frozen = g.frozen_until === 0 ? "—" : g.frozen_until < 0 ? "always" : `epoch ${g.frozen_until}`;
      return strata.el("tr", {},
        strata.el("td", {}, g.name), strata.el("td", { class: "num" }, strata.num(g.lr)), strata.el("td", {}, frozen),
        strata.el("td", {}, d ? strata.badge("diagnosis", d.diagnosis) : "—"),
        strata.el("td", { class: "num" }, d ? strata.num(d.update_ratio) : "—"),
        strata.el("td", { class: "wrap" }, d ? d.advice : ""));
    }));
  const hyper = Object.entries(run.hyperparameters || {});
  $("hyper-card").hidden = hyper.length === 0;
  $("hyperparameters").replaceChildren(...hyper.map(([k, v]) =>
    strata.el("tr", {}, strata.el("th", {}, k), strata.el("td", { class: "wrap" }, v))));
  $("config").replaceChildren(...Object.entries(run.config)
    .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => strata.el("tr", {}, strata.el("th", {}, k), strata.el("td", { class: "wrap" }, Array.isArray(v) ? v.join("  ") : String(v)))));
}

let analysisTimer = null;
let lastAnalysis = 0;
/** Re-reads the run's status and analysis (not its epochs: those come from the stream). */
function refreshAnalysisSoon() {
  if (analysisTimer) return;
  const wait = Math.max(0, lastAnalysis + ANALYSIS_MIN_GAP_MS - Date.now());
  analysisTimer = setTimeout(async () => {
    analysisTimer = null;
    lastAnalysis = Date.now();
    try {
      page.run = await strata.api(`/api/runs/${encodeURIComponent(runName)}?epochs=false`);
      renderSummary(page.run);
      for (const id of ["loss", "metric"]) if (charts.all.get(id)) charts.all.get(id).plot.redraw(false);
      await loadSteps();
    } catch (err) {
      strata.showError($("error"), err);
    }
  }, wait);
}

function showProgress(p) {
  const fraction = p.batches ? p.batch / p.batches : 0;
  $("bar").style.width = `${(100 * fraction).toFixed(1)}%`;
  $("progress-text").textContent = `epoch ${p.epoch}: batch ${p.batch}/${p.batches}, loss ${strata.num(p.loss)}`;
}

/** The stream of epochs after the last one drawn; a reconnect resumes after the last received. */
function listen() {
  const from = (page.epochs.length ? page.epochs[page.epochs.length - 1] : 0) + 1;
  const source = new EventSource(`/api/runs/${encodeURIComponent(runName)}/events?from_epoch=${from}`);
  page.source = source;
  source.addEventListener("open", () => { $("live").textContent = "live"; });
  source.addEventListener("error", () => { if (!page.ended) $("live").textContent = "reconnecting…"; });
  source.addEventListener("epoch", (e) => {
    if (addEpoch(JSON.parse(e.data))) {
      redraw();
      $("bar").style.width = "100%";
      refreshAnalysisSoon();
    }
  });
  source.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
  source.addEventListener("status", (e) => {
    const change = JSON.parse(e.data);
    page.run.status = change.status;
    refreshAnalysisSoon();
  });
  source.addEventListener("notice", (e) => { $("live").textContent = JSON.parse(e.data).message; });
  source.addEventListener("failure", (e) => strata.showError($("error"), new Error(JSON.parse(e.data).error)));
  source.addEventListener("end", () => {
    page.ended = true;
    source.close();
    $("live").textContent = "finished";
    refreshAnalysisSoon();
  });
}

async function start() {
  try {
    const run = await strata.api(`/api/runs/${encodeURIComponent(runName)}`);
    page.run = run;
    page.groups = run.groups.map((g) => g.name);
    page.metricField = `val_${run.val_metric === "r2" ? "r2" : "accuracy"}`;
    $("metric-title").textContent = run.val_metric === "r2" ? "Validation R²" : "Validation accuracy";
    charts.smoothingControl($("smoothing-control"));
    page.rates = page.groups.map(() => []);
    page.ratios = page.groups.map(() => []);
    for (const epoch of run.epochs) addEpoch(epoch);
    // A long run's history is an even spread of its epochs (first, best and last among them):
    // the steps between them are not missing epochs.
    if (run.epochs_thinned) page.gaps = 0;
    renderSummary(run);
    buildCharts();
    await loadSteps();
    listen();
  } catch (err) {
    strata.showError($("error"), err);
  }
}

// For the end-to-end tests and the latency benchmark: what the chart holds.
window.strataChart = {
  points: () => page.epochs.length,
  epochs: () => page.epochs.slice(),
  duplicates: () => page.duplicates,
  gaps: () => page.gaps,
  drawnAt: () => page.drawnAt,
  status: () => page.run && page.run.status,
  ended: () => page.ended,
  /** The names of the other per-epoch scalars charted, and of the per-step scalars. */
  extraScalars: () => (extraCharts.length ? Object.keys(page.extra).sort() : []),
  /** The charts of other scalars, by prefix: `{PREFIX or "other": [names]}`. */
  extraGroups: () => Object.fromEntries(extraCharts.map((c) => [c.spec.id.slice(6), c.spec.series.map((s) => s.label)])),
  stepScalars: () => (page.steps ? Object.keys(page.steps.scalars).sort() : []),
  /** Step-level training loss points drawn under the epoch curves. */
  stepPoints: () => (stepChart ? stepChart.plot.data[1].filter((v) => v !== null).length : 0),
  /** The analysis' key epochs as the loss chart marks them. */
  marks: () => keyEpochMarks(),
  hyperparameters: () => Object.fromEntries([...$("hyperparameters").querySelectorAll("tr")]
    .map((tr) => [tr.children[0].textContent, tr.children[1].textContent])),
};
start();
