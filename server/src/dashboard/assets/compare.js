// The compare page: the runs named in `?runs=A,B` overlaid on one chart, ranked by best
// validation loss, with the daemon's verdicts and its summary of which is best and why.
"use strict";

const $ = (id) => document.getElementById(id);
const view = { comparison: null, series: [], drawnMs: null };

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
  const series = [{ label: "epoch" }];
  const many = runs.length > MAX_LEGEND_RUNS;
  runs.forEach((run, i) => {
    const color = strata.color(i);
    // The best run stands out however many are drawn.
    const width = run.id === comparison.best_run ? 3 : many ? 1 : 2;
    series.push({ label: `${label(run)} val`, stroke: color, width, spanGaps: true, points: { show: false } });
    series.push({ label: `${label(run)} train`, stroke: color, width: 1, dash: [6, 4], spanGaps: true, points: { show: false } });
    view.series.push(run.id);
  });
  const container = $("chart");
  new uPlot({
    width: strata.width(container), height: 360, legend: { show: !many },
    scales: { x: { time: false } }, axes: [{ label: "epoch" }, { size: 70 }], series,
    hooks: { draw: [() => { if (view.drawnMs === null) view.drawnMs = performance.now(); }] },
  }, columns(runs), container);
}

function table(comparison) {
  const head = ["Rank", "Run", "Status", "Verdict", "Best val loss", "Gap at best", "Epochs", "Rates", "Why"];
  $("table").replaceChildren(
    strata.el("tr", {}, head.map((h) => strata.el("th", {}, h))),
    ...comparison.runs.map((run) => {
      const a = run.analysis;
      const rates = run.rates.map((g) => `${g.name} ${strata.num(g.lr)}`).join(", ");
      return strata.el("tr", { class: run.id === comparison.best_run ? "best" : "", "data-run": run.id },
        strata.el("td", {}, run.rank),
        strata.el("td", {}, strata.el("a", { href: `/runs/${run.id}` }, label(run))),
        strata.el("td", {}, strata.badge("status", run.status)),
        strata.el("td", {}, strata.badge("verdict", a.verdict)),
        strata.el("td", { class: "num" }, a.best_epoch ? `${strata.num(a.best_val_loss)} @${a.best_epoch}` : "—"),
        strata.el("td", { class: "num" }, strata.num(a.gap_at_best)),
        strata.el("td", { class: "num" }, run.epochs_done),
        strata.el("td", { class: "wrap" }, rates),
        strata.el("td", { class: "wrap" }, a.reason));
    }));
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
    draw(comparison);
    table(comparison);
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
};
start();
