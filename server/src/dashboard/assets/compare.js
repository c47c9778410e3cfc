// The compare page: the runs named in `?runs=A,B` overlaid on one chart (log scale first when
// the losses span a decade), ranked by best validation loss, with the daemon's verdicts and its
// summary of which is best and why, each layer group's diagnosis side by side, each run against
// its single-rate twin, and what differs between their settings.
"use strict";

const $ = (id) => document.getElementById(id);
const view = { comparison: null, series: [], drawnMs: null, diff: [] };

/**
 * Every run's losses on one x axis (the union of their epochs), null where a run has none. A long
 * run comes thinned (`epochs_thinned`: an even spread keeping its first, best and last epoch), so
 * the axis holds only epochs some run carries, and lines span the nulls.
 */
function columns(runs) {
  const xs = [...new Set(runs.flatMap((r) => r.epochs.map((e) => e.epoch)))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  for (const run of runs) {
    const val = new Array(xs.length).fill(null);
    const train = new Array(xs.length).fill(null);
    for (const e of run.epochs) { val[at.get(e.epoch)] = e.val_loss; train[at.get(e.epoch)] = e.train_loss; }
    data.push(val, train);
  }
  return data;
}

function label(run) {
  return run.name ? `${run.name} (${run.id.slice(0, 6)})` : run.id;
}

/** Beyond this many runs the legend would be longer than the chart: the table names them. */
const MAX_LEGEND_RUNS = 10;

function draw(comparison) {
  const runs = comparison.runs;
  view.series = [];
  const series = [];
  const many = runs.length > MAX_LEGEND_RUNS;
  runs.forEach((run, i) => {
    const color = strata.color(i);
    // The best run stands out however many are drawn.
    const width = run.id === comparison.best_run ? 3 : many ? 1 : 2;
    series.push({ label: `${label(run)} val`, stroke: color, width, spanGaps: true });
    series.push({ label: `${label(run)} train`, stroke: color, width: 1, dash: [6, 4], spanGaps: true });
    view.series.push(run.id);
  });
  const data = columns(runs);
  charts.create($("chart"), {
    id: "compare", title: "Validation (solid) and train (dashed) loss", xLabel: "epoch", yLabel: "loss, mean per epoch",
    series, data: () => data, legend: !many, height: 360, file: "compare",
    onDraw: () => { if (view.drawnMs === null) view.drawnMs = performance.now(); },
  });
}

/** A rate table in one line: `body 1e-4, head 0.01`. */
function ratesLine(rates) {
  return rates.map((g) => `${g.name} ${strata.rate(g.lr)}${g.frozen_until ? " (frozen)" : ""}`).join(", ");
}

function table(comparison) {
  const twins = comparison.runs.some((r) => r.twin);
  const head = ["Rank", "Run", "Status", "Verdict", "Best val loss", "Gap at best", "Epochs", "Rates", ...(twins ? ["Against its single-rate twin"] : []), "Why"];
  $("table").replaceChildren(
    strata.el("tr", {}, head.map((h) => strata.el("th", {}, h))),
    ...comparison.runs.map((run) => {
      const a = run.analysis;
      return strata.el("tr", { class: run.id === comparison.best_run ? "best" : "", "data-run": run.id },
        strata.el("td", {}, run.rank),
        strata.el("td", {}, strata.el("a", { href: `/runs/${run.id}` }, label(run)),
          run.external ? strata.el("span", { class: "badge external" }, "external") : ""),
        strata.el("td", {}, strata.badge("status", run.status)),
        strata.el("td", {}, strata.badge("verdict", a.verdict)),
        strata.el("td", { class: "num" }, a.best_epoch ? `${strata.num(a.best_val_loss)} @${a.best_epoch}` : "—"),
        strata.el("td", { class: "num" }, strata.num(a.gap_at_best)),
        strata.el("td", { class: "num" }, run.epochs_done),
        strata.el("td", { class: "wrap" }, run.rates.flatMap((g, i) => [i ? ", " : "", strata.el("span", { class: "nobr" }, ratesLine([g]))])),
        twins ? strata.el("td", { class: "wrap twin" }, run.twin ? [strata.badge("twin", run.twin.outcome), " ", run.twin.summary] : "—") : null,
        strata.el("td", { class: "wrap" }, a.reason));
    }));
}

/** Each layer group's diagnosis in each run, side by side: a row a group, a column a run. */
function diagnoses(comparison) {
  const runs = comparison.runs;
  const names = [...new Set(runs.flatMap((r) => r.rates.map((g) => g.name)))];
  $("diagnoses").replaceChildren(
    strata.el("tr", {}, strata.el("th", {}, "Group"), runs.map((r) => strata.el("th", {}, label(r)))),
    ...names.map((name) => strata.el("tr", { "data-group": name }, strata.el("th", {}, name), runs.map((run) => {
      const rate = run.rates.find((g) => g.name === name);
      const d = run.analysis.groups.find((g) => g.name === name);
      if (!rate && !d) return strata.el("td", { class: "muted" }, "—");
      return strata.el("td", { class: "wrap", title: d ? d.advice : "" },
        rate ? `${strata.rate(rate.lr)} ` : "",
        d ? strata.badge("diagnosis", d.diagnosis) : "",
        d && d.update_ratio ? strata.el("span", { class: "muted" }, ` ${strata.num(d.update_ratio)}/step`) : "",
        d && d.diagnosis !== "ok" && d.advice ? strata.el("div", { class: "muted small" }, d.advice) : "");
    }))));
}

/** Every setting as text, by name: the config's fields, the rates, each hyperparameter. */
function settings(run) {
  const out = { rates: ratesLine(run.rates), model: run.model, dataset: run.dataset };
  for (const [k, v] of Object.entries(run.config || {})) {
    if (k === "model" || k === "dataset") continue;
    out[k] = v === null || v === undefined ? "" : Array.isArray(v) ? v.join(" ") : String(v);
  }
  for (const [k, v] of Object.entries(run.hyperparameters || {})) out[`hyperparameter ${k}`] = v;
  if (run.tags && run.tags.length) out.tags = run.tags.join(", ");
  return out;
}

/** What differs between the runs: only the settings whose values are not all the same. */
function configDiff(comparison) {
  const runs = comparison.runs;
  const all = runs.map(settings);
  const names = [...new Set(all.flatMap((s) => Object.keys(s)))];
  const differing = names.filter((n) => new Set(all.map((s) => s[n] ?? "")).size > 1);
  view.diff = differing;
  if (!differing.length) {
    $("diff").replaceChildren(strata.el("tr", {}, strata.el("td", { class: "muted" },
      runs.length > 1 ? "Every setting is the same in these runs." : "One run: nothing to set against it.")));
    return;
  }
  $("diff").replaceChildren(
    strata.el("tr", {}, strata.el("th", {}, "Setting"), runs.map((r) => strata.el("th", {}, label(r)))),
    ...differing.map((n) => strata.el("tr", { "data-setting": n }, strata.el("th", {}, n),
      all.map((s) => strata.el("td", { class: "wrap" }, s[n] ?? "—")))));
}

async function start() {
  const runs = new URLSearchParams(location.search).get("runs") || "";
  try {
    const comparison = await strata.api(`/api/compare?runs=${encodeURIComponent(runs)}`);
    view.comparison = comparison;
    const best = comparison.runs.find((r) => r.id === comparison.best_run);
    $("summary").replaceChildren(
      best ? strata.el("strong", {}, `Best: ${label(best)}. `) : "",
      comparison.summary);
    charts.smoothingControl($("smoothing-control"));
    draw(comparison);
    table(comparison);
    diagnoses(comparison);
    configDiff(comparison);
  } catch (err) {
    strata.showError($("error"), err);
  }
}

// For the end-to-end tests: the runs overlaid and the best one.
window.strataCompare = {
  ready: () => view.comparison !== null,
  series: () => view.series.slice(),
  best: () => view.comparison && view.comparison.best_run,
  /** Milliseconds from navigation to the chart's first draw (for the benchmark). */
  drawnMs: () => view.drawnMs,
  /** The settings that differ between the runs, by name. */
  diff: () => view.diff.slice(),
  /** Each group's diagnosis per run: `{GROUP: [diagnosis or null, ...]}` in the runs' order. */
  diagnoses: () => Object.fromEntries(view.comparison.runs[0] ? [...new Set(view.comparison.runs.flatMap((r) => r.rates.map((g) => g.name)))]
    .map((name) => [name, view.comparison.runs.map((r) => { const d = r.analysis.groups.find((g) => g.name === name); return d ? d.diagnosis : null; })]) : []),
};
start();
