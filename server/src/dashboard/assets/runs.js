// The runs page: every run with its status and verdict, filtered and sorted here, re-read when
// the daemon says a run changed (server-sent events), never polled. The columns are the user's
// choice (remembered in this browser), the rate table and each hyperparameter among them; a
// search box narrows the rows by name, id, tags, hyperparameters and sweep settings; ticked
// runs open side by side on the compare page.
"use strict";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled", "diverged", "interrupted"];
const VERDICTS = ["good", "plateaued", "overfitting", "unstable", "slow", "not-learning", "diverged", "too-short"];
/** Re-reads of the list at most this often, however many runs change. */
const REFRESH_MIN_GAP_MS = 1000;
/** Groups a rate cell names before it says how many more (all of them in its tooltip). */
const RATE_CELL_GROUPS = 3;
/** Where the chosen columns are remembered. */
const COLUMNS_KEY = "strata.runs.columns";

/** A rate table in a few characters: `body 1e-4 · head 1e-2`, frozen groups marked ❄. */
function ratesText(rates, all = false) {
  const shown = all ? rates : rates.slice(0, RATE_CELL_GROUPS);
  const text = shown.map((g) => `${g.name} ${g.frozen_until === 0 ? strata.rate(g.lr) : `${strata.rate(g.lr)}❄`}`).join(" · ");
  return rates.length > shown.length ? `${text} · +${rates.length - shown.length}` : text;
}

/** `12-08 14:03`: a date and time in little room (the full one in its tooltip). */
function shortTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** The fixed columns; `shown` is the default choice (what fits 1280 px). */
const COLUMNS = [
  { key: "id", label: "Run", shown: true, sort: (r) => r.name || r.id },
  { key: "status", label: "Status", shown: true, sort: (r) => r.status },
  { key: "verdict", label: "Verdict", shown: true, sort: (r) => r.verdict },
  { key: "best_val_loss", label: "Best val loss", shown: true, num: true, sort: (r) => r.best_val_loss ?? Infinity },
  { key: "epochs", label: "Epochs", shown: true, num: true, sort: (r) => r.epochs_done },
  { key: "rates", label: "Rates", shown: true, sort: (r) => ratesText(r.rates, true) },
  { key: "model", label: "Model", shown: false, sort: (r) => r.model },
  { key: "dataset", label: "Dataset", shown: false, sort: (r) => r.dataset },
  { key: "tags", label: "Tags", shown: true, sort: (r) => r.tags.join(",") },
  { key: "sweep", label: "Sweep trial", shown: false, sort: (r) => (r.sweep ? `${r.sweep.sweep_id}/${String(r.sweep.trial).padStart(6, "0")}` : "") },
  { key: "created", label: "Created", shown: true, sort: (r) => r.created_at_ms },
];
/** A hyperparameter's column key: `hp:NAME`. */
const HP = "hp:";

const state = {
  rows: [], more: false, sort: "created", descending: true, selected: new Set(), loads: 0,
  /** Column keys shown, in COLUMNS' order then hyperparameters'. */
  chosen: new Set(COLUMNS.filter((c) => c.shown).map((c) => c.key)),
  search: "",
};
const $ = (id) => document.getElementById(id);

function loadChoice() {
  try {
    const saved = JSON.parse(localStorage.getItem(COLUMNS_KEY));
    if (Array.isArray(saved)) state.chosen = new Set(saved.filter((k) => typeof k === "string"));
  } catch (_) { /* nothing saved, or private mode */ }
}

function saveChoice() {
  try { localStorage.setItem(COLUMNS_KEY, JSON.stringify([...state.chosen])); } catch (_) { /* private mode */ }
}

/** Every hyperparameter named by a listed run, sorted. */
function hyperparameterNames() {
  return [...new Set(state.rows.flatMap((r) => Object.keys(r.hyperparameters || {})))].sort();
}

/** The columns on offer now: the fixed ones, then one per hyperparameter. */
function allColumns() {
  return [...COLUMNS, ...hyperparameterNames().map((name) => ({
    key: `${HP}${name}`, label: name, hyperparameter: name,
    sort: (r) => { const v = (r.hyperparameters || {})[name]; const n = Number(v); return v === undefined ? "" : Number.isFinite(n) ? n : v; },
  }))];
}

function shownColumns() {
  return allColumns().filter((c) => state.chosen.has(c.key));
}

function filterQuery() {
  const query = new URLSearchParams();
  for (const name of ["status", "tag", "verdict", "sweep"]) {
    const value = $(name).value.trim();
    if (value) query.set(name, value);
  }
  return query;
}

async function load() {
  try {
    const answer = await strata.api(`/api/runs?${filterQuery()}`);
    state.rows = answer.runs;
    state.more = answer.more;
    state.loads += 1;
    $("error").replaceChildren();
    render();
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

/** What the search box looks through for a run: its names, tags, settings and hyperparameters. */
function searchable(run) {
  const hyper = Object.entries(run.hyperparameters || {}).map(([k, v]) => `${k}=${v}`);
  const sweep = run.sweep ? [run.sweep.sweep_id, ...Object.entries(run.sweep.settings).map(([k, v]) => `${k}=${v}`)] : [];
  return [run.id, run.name, run.model, run.dataset, ...run.tags, ...hyper, ...sweep,
    run.external ? "external" : ""].join(" ").toLowerCase();
}

/** Every word of the search in the run's text. */
function matches(run) {
  const words = state.search.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const text = searchable(run);
  return words.every((w) => text.includes(w));
}

function cell(run, column) {
  if (column.hyperparameter) return (run.hyperparameters || {})[column.hyperparameter] ?? "";
  switch (column.key) {
    case "id": return strata.el("span", {},
      strata.el("a", { href: `/runs/${run.id}`, title: run.id }, run.name || run.id),
      run.external ? strata.el("span", { class: "badge external", title: "Logged from outside (the Python client): its own training loop" }, "external") : "",
      run.name ? strata.el("div", { class: "muted small" }, run.id) : "");
    case "status":
      // A queued run says why it waits (no connected worker can serve it, …).
      return run.waiting ? strata.el("span", { title: run.waiting }, strata.badge("status", run.status), " ",
        strata.el("span", { class: "muted" }, run.waiting)) : strata.el("span", {}, strata.badge("status", run.status),
        run.worker ? strata.el("span", { class: "muted" }, ` on ${run.worker}`) : null);
    case "verdict": return run.epochs_done ? strata.badge("verdict", run.verdict) : "—";
    case "best_val_loss": return run.best_epoch ? `${strata.num(run.best_val_loss)} @${run.best_epoch}` : "—";
    case "epochs": return run.epochs ? `${run.epochs_done}/${run.epochs}` : String(run.epochs_done);
    case "rates": return strata.el("span", { title: ratesText(run.rates, true) }, ratesText(run.rates));
    case "tags": return run.tags.join(", ");
    case "sweep":
      // The trial's settings; its sweep id opens the sweep's page.
      return run.sweep ? strata.el("span", {},
        strata.el("a", { href: `/sweeps/${encodeURIComponent(run.sweep.sweep_id)}` }, `${run.sweep.sweep_id} #${run.sweep.trial}`),
        " ", strata.el("span", { class: "muted" }, Object.entries(run.sweep.settings).map(([n, v]) => `${n}=${v}`).join(", "))) : "";
    case "created": return strata.el("span", { title: strata.time(run.created_at_ms) }, shortTime(run.created_at_ms));
    default: return run[column.key] ?? "";
  }
}

/** The column chooser: a box per column on offer, ticked when shown. */
function renderChooser() {
  $("columns-list").replaceChildren(...allColumns().map((c) => strata.el("label", {},
    strata.el("input", {
      type: "checkbox", checked: state.chosen.has(c.key), "data-column": c.key,
      onchange: (e) => { e.target.checked ? state.chosen.add(c.key) : state.chosen.delete(c.key); saveChoice(); render(); },
    }), " ", c.hyperparameter ? strata.el("span", {}, c.label, strata.el("span", { class: "muted" }, " (hyperparameter)")) : c.label)));
}

function render() {
  const columns = shownColumns();
  const column = allColumns().find((c) => c.key === state.sort);
  const rows = state.rows.filter(matches);
  if (column && column.sort) {
    rows.sort((a, b) => {
      const [x, y] = [column.sort(a), column.sort(b)];
      const order = x < y ? -1 : x > y ? 1 : 0;
      return state.descending ? -order : order;
    });
  }
  const allTicked = rows.length > 0 && rows.every((r) => state.selected.has(r.id));
  $("head").replaceChildren(
    strata.el("th", {}, strata.el("input", {
      type: "checkbox", title: "Select every run shown", checked: allTicked, id: "select-all",
      onchange: (e) => { for (const r of rows) e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id); render(); },
    })),
    ...columns.map((c) => strata.el("th", {
      class: [c.sort ? "sortable" : "", c.key === state.sort ? (state.descending ? "sorted-desc" : "sorted-asc") : ""].join(" "),
      onclick: c.sort ? () => { state.descending = state.sort === c.key ? !state.descending : false; state.sort = c.key; render(); } : null,
    }, c.label)));
  $("rows").replaceChildren(...rows.map((run) => strata.el("tr", { "data-run": run.id, class: run.external ? "external" : "" },
    strata.el("td", {}, strata.el("input", {
      type: "checkbox", checked: state.selected.has(run.id),
      onchange: (e) => { e.target.checked ? state.selected.add(run.id) : state.selected.delete(run.id); updateCompare(); },
    })),
    columns.map((c) => strata.el("td", { class: [c.num ? "num" : "", c.key === "rates" || c.key === "tags" ? "clip" : ""].join(" ") }, cell(run, c))))));
  const hidden = state.rows.length - rows.length;
  $("count").textContent = `${rows.length} run(s)${hidden ? ` (${hidden} not matching the search)` : ""}${state.more ? " (more: narrow the filters)" : ""}`;
  renderChooser();
  updateCompare();
}

function updateCompare() {
  const n = state.selected.size;
  $("compare").disabled = n < 1;
  $("compare").textContent = n ? `Compare ${n} selected` : "Compare selected";
}

/** Remote workers' heartbeats change every few seconds: the panel is re-read every 5 s. */
const WORKERS_EVERY_MS = 5000;
async function loadWorkers() {
  try {
    const answer = await strata.api("/api/workers");
    state.workers = answer.workers;
    $("workers-panel").hidden = !answer.takes_workers;
    $("workers-count").textContent = `${answer.workers.length} connected`;
    const now = Date.now();
    $("worker-rows").replaceChildren(...answer.workers.map((w) => strata.el("tr", { "data-worker": w.name },
      strata.el("td", {}, w.name),
      strata.el("td", {}, w.labels.join(", ")),
      strata.el("td", {}, w.devices.join(", ")),
      strata.el("td", { class: "num" }, w.memory_bytes ? `${(w.memory_bytes / 2 ** 30).toFixed(1)} GiB` : "—"),
      strata.el("td", {}, w.run_id ? strata.el("a", { href: `/runs/${w.run_id}` }, `${w.run_id} on ${w.device}`) : "idle"),
      strata.el("td", { class: "num" }, String(w.runs_done)),
      strata.el("td", {}, `${Math.max(0, Math.round((now - w.last_heartbeat_ms) / 1000))} s ago`),
      strata.el("td", {}, `${w.host} (pid ${w.pid})`))));
  } catch (err) {
    strata.showError($("error"), err);
  }
}

function listen() {
  const source = new EventSource("/api/events");
  // (Re)connected: whatever changed while disconnected is read again.
  source.addEventListener("open", () => { $("live").textContent = "live"; refreshSoon(); });
  source.addEventListener("changed", refreshSoon);
  source.addEventListener("resync", refreshSoon);
  source.addEventListener("error", () => { $("live").textContent = "reconnecting…"; });
}

loadChoice();
for (const s of STATUSES) $("status").append(strata.el("option", { value: s }, s));
for (const v of VERDICTS) $("verdict").append(strata.el("option", { value: v }, v));
for (const id of ["status", "verdict"]) $(id).addEventListener("change", load);
for (const id of ["tag", "sweep"]) $(id).addEventListener("change", load);
$("search").addEventListener("input", (e) => { state.search = e.target.value; render(); });
$("columns-button").addEventListener("click", () => { $("columns-list").hidden = !$("columns-list").hidden; });
// `/?sweep=ID` (the CLI's and the run page's links): a sweep's trials, best validation loss first.
const linked = new URLSearchParams(location.search);
for (const name of ["status", "tag", "verdict", "sweep", "search"]) {
  if (linked.get(name)) $(name).value = linked.get(name);
}
state.search = $("search").value;
if (linked.get("sweep")) { state.sort = "best_val_loss"; state.descending = false; }
$("compare").addEventListener("click", () => {
  location.href = `/compare?runs=${[...state.selected].join(",")}`;
});
// For the end-to-end tests: what the page shows, without scraping.
window.strataRuns = {
  rows: () => state.rows,
  loads: () => state.loads,
  /** The ids of the rows shown (after the search), in order. */
  shown: () => [...document.querySelectorAll("#rows tr")].map((tr) => tr.dataset.run),
  columns: () => shownColumns().map((c) => c.label),
  offered: () => allColumns().map((c) => c.key),
  selected: () => [...state.selected],
  workers: () => state.workers,
};
load();
loadWorkers();
setInterval(loadWorkers, WORKERS_EVERY_MS);
listen();
