// The runs page: every run with its status and verdict, filtered and sorted here, re-read when
// the daemon says a run changed (server-sent events), never polled.
"use strict";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled", "diverged", "interrupted"];
const VERDICTS = ["good", "plateaued", "overfitting", "unstable", "slow", "not-learning", "diverged", "too-short"];
/** Re-reads of the list at most this often, however many runs change. */
const REFRESH_MIN_GAP_MS = 1000;

const COLUMNS = [
  { key: "select", label: "" },
  { key: "id", label: "Run", sort: (r) => r.id },
  { key: "name", label: "Name", sort: (r) => r.name },
  { key: "status", label: "Status", sort: (r) => r.status },
  { key: "verdict", label: "Verdict", sort: (r) => r.verdict },
  { key: "best_val_loss", label: "Best val loss", sort: (r) => r.best_val_loss ?? Infinity },
  { key: "epochs", label: "Epochs", sort: (r) => r.epochs_done },
  { key: "model", label: "Model", sort: (r) => r.model },
  { key: "dataset", label: "Dataset", sort: (r) => r.dataset },
  { key: "tags", label: "Tags", sort: (r) => r.tags.join(",") },
  { key: "sweep", label: "Sweep trial", sort: (r) => (r.sweep ? `${r.sweep.sweep_id}/${String(r.sweep.trial).padStart(6, "0")}` : "") },
  { key: "created", label: "Created", sort: (r) => r.created_at_ms },
];

const state = { rows: [], more: false, sort: "created", descending: true, selected: new Set(), loads: 0 };
const $ = (id) => document.getElementById(id);

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

function cell(run, key) {
  switch (key) {
    case "select":
      return strata.el("input", {
        type: "checkbox", checked: state.selected.has(run.id),
        onchange: (e) => { e.target.checked ? state.selected.add(run.id) : state.selected.delete(run.id); updateCompare(); },
      });
    case "id": return strata.el("a", { href: `/runs/${run.id}` }, run.id);
    case "status":
      // A queued run says why it waits (no connected worker can serve it, …).
      return run.waiting ? strata.el("span", { title: run.waiting }, strata.badge("status", run.status), " ",
        strata.el("span", { class: "muted" }, run.waiting)) : strata.el("span", {}, strata.badge("status", run.status),
        run.worker ? strata.el("span", { class: "muted" }, ` on ${run.worker}`) : null);
    case "verdict": return run.epochs_done ? strata.badge("verdict", run.verdict) : "—";
    case "best_val_loss": return run.best_epoch ? `${strata.num(run.best_val_loss)} @${run.best_epoch}` : "—";
    case "epochs": return run.epochs ? `${run.epochs_done}/${run.epochs}` : String(run.epochs_done);
    case "tags": return run.tags.join(", ");
    case "sweep":
      // The trial's settings; its sweep id filters the list to the sweep (ranked by best loss).
      return run.sweep ? strata.el("span", {},
        strata.el("a", { href: `?sweep=${encodeURIComponent(run.sweep.sweep_id)}` }, `${run.sweep.sweep_id} #${run.sweep.trial}`),
        " ", strata.el("span", { class: "muted" }, Object.entries(run.sweep.settings).map(([n, v]) => `${n}=${v}`).join(", "))) : "";
    case "created": return strata.time(run.created_at_ms);
    default: return run[key] ?? "";
  }
}

function render() {
  const column = COLUMNS.find((c) => c.key === state.sort);
  const rows = [...state.rows];
  if (column && column.sort) {
    rows.sort((a, b) => {
      const [x, y] = [column.sort(a), column.sort(b)];
      const order = x < y ? -1 : x > y ? 1 : 0;
      return state.descending ? -order : order;
    });
  }
  $("head").replaceChildren(...COLUMNS.map((c) => strata.el("th", {
    class: [c.sort ? "sortable" : "", c.key === state.sort ? (state.descending ? "sorted-desc" : "sorted-asc") : ""].join(" "),
    onclick: c.sort ? () => { state.descending = state.sort === c.key ? !state.descending : false; state.sort = c.key; render(); } : null,
  }, c.label)));
  $("rows").replaceChildren(...rows.map((run) => strata.el("tr", { "data-run": run.id },
    COLUMNS.map((c) => strata.el("td", { class: c.key === "best_val_loss" ? "num" : "" }, cell(run, c.key))))));
  $("count").textContent = `${state.rows.length} run(s)${state.more ? " (more: narrow the filters)" : ""}`;
  updateCompare();
}

function updateCompare() {
  $("compare").disabled = state.selected.size < 1;
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

for (const s of STATUSES) $("status").append(strata.el("option", { value: s }, s));
for (const v of VERDICTS) $("verdict").append(strata.el("option", { value: v }, v));
for (const id of ["status", "verdict"]) $(id).addEventListener("change", load);
for (const id of ["tag", "sweep"]) $(id).addEventListener("change", load);
// `/?sweep=ID` (the CLI's and the run page's links): a sweep's trials, best validation loss first.
const linked = new URLSearchParams(location.search);
for (const name of ["status", "tag", "verdict", "sweep"]) {
  if (linked.get(name)) $(name).value = linked.get(name);
}
if (linked.get("sweep")) { state.sort = "best_val_loss"; state.descending = false; }
$("compare").addEventListener("click", () => {
  location.href = `/compare?runs=${[...state.selected].join(",")}`;
});
// For the end-to-end tests: what the page shows, without scraping.
window.strataRuns = { rows: () => state.rows, loads: () => state.loads, workers: () => state.workers };
load();
loadWorkers();
setInterval(loadWorkers, WORKERS_EVERY_MS);
listen();
