// The dashboard's charts: uPlot with what a practitioner reaches for in TensorBoard or W&B —
// a log/linear toggle per chart (log first for a loss spanning more than a decade), one
// exponential-moving-average smoothing slider for the page (the raw line faint behind), a cursor
// linked across the page's charts, drag-to-zoom with a visible reset, legend entries that hide a
// series (click), show it alone (Ctrl+click) or make it stand out (pointing at it), marked
// epochs, and CSV and PNG downloads. Each chart
// names its unit on its axes ("per epoch", "per step").
"use strict";

const charts = {
  /** Smoothing weight, 0 (none) to 0.99, TensorBoard's: shared by every chart of the page. */
  smoothing: 0,
  /** Every chart of the page, by id. */
  all: new Map(),

  /** Sets the smoothing weight and redraws the charts that smooth. */
  setSmoothing(weight) {
    charts.smoothing = Math.min(0.99, Math.max(0, Number(weight) || 0));
    const [slider, shown] = [document.getElementById("smoothing"), document.getElementById("smoothing-value")];
    if (slider) slider.value = String(charts.smoothing);
    if (shown) shown.textContent = charts.smoothing.toFixed(2);
    try { localStorage.setItem("strata.smoothing", String(charts.smoothing)); } catch (_) { /* private mode */ }
    for (const chart of charts.all.values()) if (chart.spec.smooth) chart.refresh();
  },

  /**
   * The page's smoothing slider, in `where`: 0 to 0.99 as TensorBoard's; remembered.
   * Returns the input (tests move it).
   */
  smoothingControl(where) {
    let saved = 0;
    try { saved = Number(localStorage.getItem("strata.smoothing")) || 0; } catch (_) { /* private mode */ }
    charts.smoothing = Math.min(0.99, Math.max(0, saved));
    const value = strata.el("span", { class: "muted", id: "smoothing-value" }, charts.smoothing.toFixed(2));
    const input = strata.el("input", {
      type: "range", min: "0", max: "0.99", step: "0.01", value: String(charts.smoothing), id: "smoothing",
      oninput: (e) => charts.setSmoothing(e.target.value),
    });
    where.replaceChildren(strata.el("label", { title: "Exponential moving average of each line (as TensorBoard's); the raw line stays faint behind" },
      "Smoothing ", input, " ", value));
    return input;
  },

  /**
   * A chart in the element `container` (a toolbar is put before it). `spec`:
   * - `id`: names it (tests, downloads, its remembered scale);
   * - `xLabel`, `yLabel`: the axes, with their units;
   * - `series`: uPlot series (label, stroke, width, dash, spanGaps);
   * - `data()`: the x column then each series' column (null where missing);
   * - `logDefault(data)`: whether it starts on a log scale (else `charts.spansDecade`);
   * - `smooth`: whether the page's smoothing applies;
   * - `marks()`: `[{x, label, color}]`, vertical lines at those x (the verdict's epochs);
   * - `underlay()`: `{xs, ys, color}` drawn faint under the series (per-step loss);
   * - `sync`: the key of the charts whose cursors move together;
   * - `bands`, `legend`, `height`, `file` (the download's name without extension).
   */
  create(container, spec) {
    const chart = new Chart(container, spec);
    charts.all.set(spec.id, chart);
    return chart;
  },

  /** Whether the positive values of `columns` span more than a decade (a loss that fell 10×). */
  spansDecade(columns) {
    let low = Infinity, high = 0;
    for (const column of columns) {
      for (const v of column) if (v > 0 && Number.isFinite(v)) { low = Math.min(low, v); high = Math.max(high, v); }
    }
    return high > 0 && high / low > 10;
  },

  /** TensorBoard's smoothing: an exponential moving average, debiased at the start; gaps kept. */
  ema(column, weight) {
    if (!(weight > 0)) return column;
    let last = 0, count = 0;
    return column.map((v) => {
      if (v === null || !Number.isFinite(v)) return v;
      last = last * weight + (1 - weight) * v;
      count += 1;
      return last / (1 - weight ** count);
    });
  },
};

/** Tick labels of a log axis: 1e-4 rather than uPlot's "0". */
function logTicks(_plot, splits) {
  return splits.map((v) => (v == null ? "" : v >= 0.01 && v < 1000 ? String(+v.toPrecision(3)) : v.toExponential(0)));
}

/** A file download of `blob` named `name`. */
function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = strata.el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

class Chart {
  constructor(container, spec) {
    this.spec = { height: 240, smooth: true, legend: true, ...spec };
    this.container = container;
    this.hidden = new Set();
    // Each chart starts on the scale its data asks for (a toggle is not carried to other runs:
    // a loss that fell 100× wants a log axis whatever the last run's chart was set to).
    const raw = this.spec.data();
    this.log = this.spec.logDefault ? this.spec.logDefault(raw) : charts.spansDecade(raw.slice(1));
    this.logButton = strata.el("button", { class: "tool", title: "Switch the y axis between a log and a linear scale", onclick: () => this.setLog(!this.log) });
    this.resetButton = strata.el("button", { class: "tool", hidden: true, title: "Back to every epoch (or double-click the chart)", onclick: () => this.resetZoom() });
    this.resetButton.textContent = "Reset zoom";
    const tools = strata.el("div", { class: "chart-tools" },
      this.logButton, this.resetButton,
      strata.el("span", { class: "muted hint", title: "Drag across the chart to zoom in; double-click or Reset zoom to go back. In the legend: click hides a line, Ctrl+click shows it alone, pointing at it makes it stand out." }, "drag to zoom · legend: click hides, Ctrl+click isolates"),
      strata.el("button", { class: "tool", "data-download": "csv", title: "The chart's data (raw, not smoothed) as CSV", onclick: () => download(`${this.fileName()}.csv`, new Blob([this.csv()], { type: "text/csv" })) }, "CSV"),
      strata.el("button", { class: "tool", "data-download": "png", title: "The chart as a PNG image", onclick: () => this.pngBlob().then((b) => download(`${this.fileName()}.png`, b)) }, "PNG"));
    container.before(tools);
    this.tools = tools;
    this.build();
  }

  fileName() {
    return (this.spec.file || this.spec.id).replace(/[^A-Za-z0-9._-]+/g, "-");
  }

  /** The data as drawn: smoothed when the page smooths, nulls for what a log scale cannot show. */
  shown(raw) {
    const weight = this.spec.smooth ? charts.smoothing : 0;
    return raw.map((column, i) => {
      if (i === 0) return column;
      let values = charts.ema(column, weight);
      if (this.log) values = values.map((v) => (v > 0 ? v : null));
      return values;
    });
  }

  build() {
    const spec = this.spec;
    const raw = spec.data();
    this.raw = raw;
    this.logButton.textContent = this.log ? "log" : "linear";
    this.logButton.classList.toggle("on", this.log);
    const options = {
      width: strata.width(this.container), height: spec.height,
      scales: { x: { time: false }, y: this.log ? { distr: 3 } : {} },
      axes: [{ label: spec.xLabel }, { label: spec.yLabel, size: 70, ...(this.log ? { values: logTicks } : {}) }],
      series: [{ label: spec.xLabel }, ...spec.series.map((s, i) => ({
        points: { show: false }, width: 2, ...s, show: !this.hidden.has(i + 1),
      }))],
      legend: { show: spec.legend },
      cursor: { sync: spec.sync ? { key: spec.sync } : undefined, focus: { prox: 16 } },
      focus: { alpha: 0.25 },
      bands: spec.bands,
      hooks: {
        drawAxes: [(u) => this.drawBehind(u)],
        draw: [(u) => this.drawMarks(u), ...(spec.onDraw ? [spec.onDraw] : [])],
        setScale: [(u, key) => { if (key === "x") this.resetButton.hidden = !this.zoomed(); }],
        setSeries: [(u, i, opts) => {
          if (i !== null && opts && "show" in opts) opts.show ? this.hidden.delete(i) : this.hidden.add(i);
        }],
      },
    };
    this.plot = new uPlot(options, this.shown(raw), this.container);
  }

  /** New data (an epoch arrived): drawn again, a zoom kept. */
  refresh() {
    const raw = this.spec.data();
    this.raw = raw;
    const x = this.plot.scales.x;
    const zoomed = this.zoomed();
    const [min, max] = [x.min, x.max];
    this.plot.setData(this.shown(raw), !zoomed);
    if (zoomed) this.plot.setScale("x", { min, max });
  }

  /** Whether the x axis shows less than every point. */
  zoomed() {
    const x = this.plot && this.plot.scales.x;
    if (!x || x.min === null || x.max === null) return false;
    let low = Infinity, high = -Infinity;
    for (const v of (this.raw || [[]])[0]) if (v !== null) { low = Math.min(low, v); high = Math.max(high, v); }
    return low <= high && (x.min > low + 1e-9 || x.max < high - 1e-9);
  }

  /** Back to every point, on this chart and on those its cursor is linked to (they zoom together). */
  resetZoom() {
    for (const chart of charts.all.values()) {
      if (chart === this || (this.spec.sync && chart.spec.sync === this.spec.sync)) {
        chart.plot.setData(chart.plot.data, true);
        chart.resetButton.hidden = true;
      }
    }
  }

  setLog(log) {
    this.log = log;
    this.plot.destroy();
    this.build();
  }

  resize() {
    this.plot.setSize({ width: strata.width(this.container), height: this.spec.height });
  }

  destroy() {
    this.plot.destroy();
    this.tools.remove();
    charts.all.delete(this.spec.id);
  }

  /** A faint line through `xs`, `ys` on the plot's canvas (clipped to the plotting area). */
  faintLine(u, xs, ys, color, width) {
    const ctx = u.ctx;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    ctx.globalAlpha = 0.25;
    ctx.strokeStyle = color;
    ctx.lineWidth = width * devicePixelRatio;
    ctx.beginPath();
    let drawing = false;
    for (let i = 0; i < xs.length; i++) {
      const y = ys[i];
      if (y === null || !Number.isFinite(y) || (this.log && y <= 0) || xs[i] === null) { drawing = false; continue; }
      const px = u.valToPos(xs[i], "x", true), py = u.valToPos(y, "y", true);
      drawing ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
      drawing = true;
    }
    ctx.stroke();
    ctx.restore();
  }

  /** Under the series: the per-step underlay, and each raw line when smoothed. */
  drawBehind(u) {
    const spec = this.spec;
    if (spec.underlay) {
      const under = spec.underlay();
      if (under) this.faintLine(u, under.xs, under.ys, under.color, 1);
    }
    if (!(spec.smooth && charts.smoothing > 0)) return;
    u.series.forEach((s, i) => {
      if (i === 0 || !s.show) return;
      const stroke = typeof s.stroke === "function" ? s.stroke(u, i) : s.stroke;
      this.faintLine(u, this.raw[0], this.raw[i], stroke, 1.5);
    });
  }

  /** Vertical lines at the marked x values, each with its label at the top. */
  drawMarks(u) {
    const marks = this.marks();
    if (!marks.length) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    marks.forEach((m, k) => {
      const x = u.valToPos(m.x, "x", true);
      if (x < u.bbox.left - 1 || x > u.bbox.left + u.bbox.width + 1) return;
      ctx.strokeStyle = m.color;
      ctx.fillStyle = m.color;
      ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
      ctx.lineWidth = devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.fillText(m.label, x + 3 * devicePixelRatio, u.bbox.top + (2 + 13 * (k % 3)) * devicePixelRatio);
    });
    ctx.restore();
  }

  marks() {
    return this.spec.marks ? this.spec.marks() : [];
  }

  /** The raw data as CSV: the x column, then one column per series, by its label. */
  csv() {
    const quote = (text) => (/[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
    const head = [this.spec.xLabel, ...this.spec.series.map((s) => s.label)].map(quote).join(",");
    const rows = this.raw[0].map((x, r) => this.raw.map((column) => {
      const v = column[r];
      return v === null || v === undefined || !Number.isFinite(v) ? "" : String(v);
    }).join(","));
    return [head, ...rows].join("\n") + "\n";
  }

  /** The chart as a PNG: its title, the plot, and its visible series named below. */
  pngBlob() {
    const plotCanvas = this.plot.ctx.canvas;
    const ratio = devicePixelRatio;
    const title = this.spec.title || this.spec.id;
    const shownSeries = this.plot.series.slice(1).filter((s) => s.show);
    const head = 24 * ratio, foot = 20 * ratio;
    const canvas = document.createElement("canvas");
    canvas.width = plotCanvas.width;
    canvas.height = plotCanvas.height + head + foot;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#1d2330";
    ctx.font = `600 ${13 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    ctx.fillText(title, 8 * ratio, head / 2);
    ctx.drawImage(plotCanvas, 0, head);
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    let x = 8 * ratio;
    for (const s of shownSeries) {
      const stroke = typeof s.stroke === "function" ? s.stroke(this.plot, 1) : s.stroke;
      ctx.fillStyle = stroke || "#000";
      ctx.fillRect(x, canvas.height - foot / 2 - 4 * ratio, 10 * ratio, 8 * ratio);
      ctx.fillStyle = "#1d2330";
      ctx.fillText(s.label, x + 14 * ratio, canvas.height - foot / 2);
      x += ctx.measureText(s.label).width + 28 * ratio;
    }
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  /** For the tests: what the chart draws now. */
  state() {
    const u = this.plot;
    return {
      log: u.scales.y.distr === 3,
      yAxisLabel: this.spec.yLabel,
      xAxisLabel: this.spec.xLabel,
      shown: u.series.slice(1).map((s) => s.show),
      alphas: u.series.slice(1).map((s) => s.alpha ?? 1),
      labels: u.series.slice(1).map((s) => s.label),
      data: u.data.map((c) => Array.from(c)),
      zoomed: this.zoomed(),
      resetVisible: !this.resetButton.hidden,
      cursorX: u.cursor.idx === null || u.cursor.idx === undefined ? null : u.data[0][u.cursor.idx],
      marks: this.marks(),
    };
  }
}

window.addEventListener("resize", () => { for (const chart of charts.all.values()) chart.resize(); });
// For the end-to-end tests: every chart's state, and its CSV and PNG.
window.strataCharts = {
  ids: () => [...charts.all.keys()],
  state: (id) => charts.all.get(id).state(),
  csv: (id) => charts.all.get(id).csv(),
  /** The PNG's size in bytes and its first bytes' signature, once made. */
  png: async (id) => {
    const blob = await charts.all.get(id).pngBlob();
    const bytes = new Uint8Array(await blob.arrayBuffer());
    return { type: blob.type, size: bytes.length, signature: Array.from(bytes.slice(1, 4)).map((b) => String.fromCharCode(b)).join("") };
  },
  smoothing: (w) => charts.setSmoothing(w),
  /** Moves the mouse over chart `id` to x value `x` (as a user's pointer would). */
  hover: (id, x) => {
    const u = charts.all.get(id).plot;
    const over = u.over;
    const rect = over.getBoundingClientRect();
    const left = u.valToPos(x, "x");
    over.dispatchEvent(new MouseEvent("mousemove", { clientX: rect.left + left, clientY: rect.top + rect.height / 2, bubbles: true }));
  },
  /** Where x value `x` of chart `id` is in the window (scrolled into view first), for a pointer. */
  pointAt: (id, x) => {
    const u = charts.all.get(id).plot;
    u.over.scrollIntoView({ block: "center" });
    const rect = u.over.getBoundingClientRect();
    return { x: rect.left + u.valToPos(x, "x"), y: rect.top + rect.height / 2 };
  },
  /** Clicks legend entry `index` (1 = the first series) of chart `id`. */
  clickLegend: (id, index, ctrlKey = false) => {
    const chart = charts.all.get(id);
    const rows = chart.plot.root.querySelectorAll(".u-legend .u-series");
    // uPlot listens on the entry's label cell, where a user's click lands.
    rows[index].querySelector("th").dispatchEvent(new MouseEvent("click", { bubbles: true, ctrlKey }));
  },
  /** Points at legend entry `index` of chart `id`: its series stands out, the others fade. */
  hoverLegend: (id, index) => {
    const rows = charts.all.get(id).plot.root.querySelectorAll(".u-legend .u-series");
    rows[index].querySelector("th").dispatchEvent(new MouseEvent("mouseenter"));
  },
  toggleLog: (id) => charts.all.get(id).logButton.click(),
  /** Clicks chart `id`'s download button of `kind` (csv or png), as a user does. */
  download: (id, kind) => charts.all.get(id).tools.querySelector(`[data-download="${kind}"]`).click(),
  resetZoom: (id) => charts.all.get(id).resetButton.click(),
};
