// The sweep page: a sweep's trials ranked by best validation loss, each swept setting's effect,
// the recommendation sentence (`strata sweep show`'s), and a parallel-coordinates view of the
// trials against their settings. Re-read when the daemon says a run changed (server-sent
// events): trials appear, train and finish on the page as they do.
"use strict";

const sweepId = decodeURIComponent(location.pathname.split("/").pop());
/** Re-reads of the sweep at most this often, however many runs change. */
const REFRESH_MIN_GAP_MS = 1000;
const $ = (id) => document.getElementById(id);
const view = { sweep: null, loads: 0, highlight: null, lines: 0, axes: [] };

/** A colour from green (t = 0, the best) through amber to red (t = 1, the worst). */
function ramp(t) {
  const stops = [[26, 127, 55], [191, 135, 0], [198, 40, 40]];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c.join(",")})`;
}

/**
 * An axis of the parallel view: where each value goes, from 0 (bottom) to 1 (top). Numbers on a
 * number line (a log one when positive and spanning a decade); anything else evenly spaced in
 * the order the sweep first used them.
 */
function axisFor(name, values) {
  const numbers = values.map(Number);
  if (values.length > 1 && numbers.every((n) => Number.isFinite(n))) {
    const log = numbers.every((n) => n > 0) && Math.max(...numbers) / Math.min(...numbers) > 10;
    const f = log ? Math.log10 : (v) => v;
    const lo = Math.min(...numbers.map(f)), hi = Math.max(...numbers.map(f));
    return { name, values, log, at: (v) => (hi === lo ? 0.5 : (f(Number(v)) - lo) / (hi - lo)) };
  }
  return { name, values, log: false, at: (v) => (values.length < 2 ? 0.5 : values.indexOf(v) / (values.length - 1)) };
}

function drawParallel(sweep) {
  const canvas = $("parallel");
  const ratio = devicePixelRatio || 1;
  const width = Math.max(400, canvas.parentElement.clientWidth - 32), height = 320;
  canvas.width = width * ratio; canvas.height = height * ratio;
  canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const axes = sweep.effects.map((e) => axisFor(e.setting, e.values.map((v) => v.value)));
  const losses = sweep.trials.map((t) => t.best_val_loss).filter((l) => l !== null && Number.isFinite(l));
  const lossAxis = losses.length ? axisFor("best val loss", [...new Set(losses.map(String))]) : null;
  if (lossAxis) {
    // Lower is better: the loss axis runs with the lowest at the bottom, as a chart's would.
    lossAxis.values = losses.map(String);
  }
  const all = lossAxis ? [...axes, lossAxis] : axes;
  view.axes = all.map((a) => a.name);
  const top = 36, bottom = height - 24, left = 70, right = width - 70;
  const xOf = (i) => (all.length < 2 ? (left + right) / 2 : left + (i * (right - left)) / (all.length - 1));
  const yOf = (t) => bottom - t * (bottom - top);
  // The lines, worst first so the best is drawn on top.
  const ranked = [...sweep.trials].sort((a, b) => b.rank - a.rank);
  const n = sweep.trials.length;
  view.lines = 0;
  for (const trial of ranked) {
    const hasLoss = trial.best_val_loss !== null && Number.isFinite(trial.best_val_loss);
    const points = axes.map((a, i) => (trial.settings[a.name] === undefined ? null : [xOf(i), yOf(a.at(trial.settings[a.name]))]));
    if (lossAxis && hasLoss) points.push([xOf(axes.length), yOf(lossAxis.at(String(trial.best_val_loss)))]);
    const highlighted = view.highlight === trial.trial;
    ctx.strokeStyle = hasLoss ? ramp(n > 1 ? (trial.rank - 1) / (n - 1) : 0) : "#9aa1ad";
    ctx.globalAlpha = view.highlight !== null && !highlighted ? 0.25 : 0.9;
    ctx.lineWidth = highlighted || trial.rank === 1 ? 3.5 : 1.6;
    ctx.setLineDash(hasLoss ? [] : [4, 4]);
    ctx.beginPath();
    let started = false;
    for (const p of points) {
      if (!p) { started = false; continue; }
      started ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1]);
      started = true;
    }
    ctx.stroke();
    view.lines += 1;
  }
  ctx.globalAlpha = 1;
  ctx.setLineDash([]);
  // The axes, their names and their values.
  ctx.font = "12px system-ui, sans-serif";
  all.forEach((axis, i) => {
    const x = xOf(i);
    ctx.strokeStyle = "#6b7385"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
    ctx.fillStyle = "#1d2330"; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    ctx.fillText(axis.name + (axis.log ? " (log)" : ""), x, top - 10);
    ctx.textAlign = i === all.length - 1 && all.length > 1 ? "left" : "right";
    ctx.textBaseline = "middle";
    const offset = ctx.textAlign === "left" ? 6 : -6;
    const ticks = axis === lossAxis ? [Math.min(...losses), Math.max(...losses)].map(String) : axis.values.slice(0, 12);
    for (const v of ticks) {
      ctx.fillStyle = "#6b7385";
      ctx.fillText(axis === lossAxis ? strata.num(Number(v)) : v, x + offset, yOf(axis.at(v)));
    }
  });
}

function renderEffects(sweep) {
  $("effects").replaceChildren(...sweep.effects.map((effect) => {
    const medians = effect.values.map((v) => v.median_best_val_loss).filter((m) => m !== null && m > 0);
    const lo = Math.min(...medians), hi = Math.max(...medians);
    const bestMedian = medians.length ? lo : null;
    return strata.el("div", { class: "effect", "data-setting": effect.setting },
      strata.el("h3", {}, effect.setting),
      strata.el("table", {},
        strata.el("tr", {}, ["Value", "Trials", "Best", "Median", ""].map((h) => strata.el("th", {}, h))),
        ...effect.values.map((v) => {
          const m = v.median_best_val_loss;
          // Longer is worse: the median on a log line from the best value's to the worst's.
          const share = m === null || !(m > 0) || hi === lo ? 0.05 : 0.05 + 0.95 * Math.log(m / lo) / Math.log(hi / lo);
          const bar = strata.el("div", { class: "bar" });
          bar.style.width = `${(100 * share).toFixed(1)}%`;
          return strata.el("tr", { class: m !== null && m === bestMedian && effect.values.length > 1 ? "best" : "" },
            strata.el("td", {}, v.value), strata.el("td", { class: "num" }, v.trials),
            strata.el("td", { class: "num" }, strata.num(v.best_val_loss)), strata.el("td", { class: "num" }, strata.num(m)),
            strata.el("td", { class: "bar-cell" }, bar));
        })));
  }));
}

function renderTrials(sweep) {
  const head = ["Rank", "Trial", "Run", "Status", "Verdict", "Best val loss", "Epochs", ...sweep.settings];
  $("trials").replaceChildren(
    strata.el("tr", {}, head.map((h) => strata.el("th", {}, h))),
    ...sweep.trials.map((t) => strata.el("tr", {
      "data-trial": t.trial, class: sweep.recommendation && sweep.recommendation.trial === t.trial ? "best" : "",
      onmouseenter: () => { view.highlight = t.trial; drawParallel(sweep); },
      onmouseleave: () => { view.highlight = null; drawParallel(sweep); },
    },
    strata.el("td", {}, t.rank), strata.el("td", {}, t.trial),
    strata.el("td", {}, strata.el("a", { href: `/runs/${t.run_id}` }, t.run_id)),
    strata.el("td", { title: t.reason }, strata.badge("status", t.stopped_early ? "stopped early" : t.status)),
    strata.el("td", {}, t.epochs_done ? strata.badge("verdict", t.verdict) : "—"),
    strata.el("td", { class: "num" }, t.best_epoch ? `${strata.num(t.best_val_loss)} @${t.best_epoch}` : "—"),
    strata.el("td", { class: "num" }, t.epochs ? `${t.epochs_done}/${t.epochs}` : t.epochs_done),
    ...sweep.settings.map((s) => strata.el("td", {}, t.settings[s] ?? "—")))));
}

function render(sweep) {
  document.title = `Strata — sweep ${sweep.sweep_id}`;
  $("title").replaceChildren("Sweep ", strata.el("span", { class: "muted" }, sweep.sweep_id));
  $("recommendation").replaceChildren(...(sweep.recommendation
    ? [strata.el("strong", {}, "Recommendation: "), sweep.recommendation.sentence]
    : ["No trial has a validation loss yet."]));
  const done = sweep.trials.length - sweep.running;
  $("counts").textContent = `${sweep.trials.length} trial(s), ${done} finished, ${sweep.running} queued or training${sweep.more ? " (more than shown)" : ""}. `
    + "strata sweep show gathers the trials of every daemon.";
  drawParallel(sweep);
  renderEffects(sweep);
  renderTrials(sweep);
}

async function load() {
  try {
    view.sweep = await strata.api(`/api/sweeps/${encodeURIComponent(sweepId)}`);
    view.loads += 1;
    $("error").replaceChildren();
    render(view.sweep);
  } catch (err) {
    strata.showError($("error"), err);
  }
}

let refreshTimer = null;
let lastRefresh = 0;
/** A re-read soon, coalescing bursts of changes. */
function refreshSoon() {
  if (refreshTimer) return;
  const wait = Math.max(0, lastRefresh + REFRESH_MIN_GAP_MS - Date.now());
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    lastRefresh = Date.now();
    load();
  }, wait);
}

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { $("live").textContent = "live"; refreshSoon(); });
  source.addEventListener("changed", refreshSoon);
  source.addEventListener("resync", refreshSoon);
  source.addEventListener("error", () => { $("live").textContent = "reconnecting…"; });
}

window.addEventListener("resize", () => { if (view.sweep) drawParallel(view.sweep); });
// For the end-to-end tests: what the page shows.
window.strataSweep = {
  ready: () => view.sweep !== null,
  loads: () => view.loads,
  trials: () => (view.sweep ? view.sweep.trials : []),
  recommendation: () => view.sweep && view.sweep.recommendation,
  effects: () => (view.sweep ? view.sweep.effects : []),
  /** The parallel view: its axes' names and the lines drawn. */
  axes: () => view.axes.slice(),
  lines: () => view.lines,
  recommendationText: () => $("recommendation").textContent,
};
load();
listen();
