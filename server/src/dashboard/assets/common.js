// Shared helpers of the dashboard's pages: fetching the API, building elements, formatting.
"use strict";

const strata = {
  /** GET an API path; throws an Error with the daemon's message on a non-2xx answer. */
  async api(path) {
    const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
    return body;
  },

  /** An element with attributes (`class`, `href`, `on*` handlers, others) and children. */
  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  badge(kind, label) {
    return strata.el("span", { class: `badge ${kind}-${label}` }, label);
  },

  /** A loss or rate: 4 significant digits, exponent when tiny or huge; "—" when missing. */
  num(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    const abs = Math.abs(value);
    if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(2);
    return Number(value.toPrecision(4)).toString();
  },

  /** A learning rate as people write it: `1e-4`, `2.5e-4`, `0.01`. */
  rate(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    const abs = Math.abs(value);
    if (abs !== 0 && abs < 1e-3) return Number(value.toPrecision(3)).toExponential();
    return strata.num(value);
  },

  time(ms) {
    return ms ? new Date(ms).toLocaleString() : "—";
  },

  /** Colours for series, distinct enough for a dozen lines. */
  color(i) {
    const palette = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4",
      "#cf222e", "#6e7781", "#e16f24", "#2da44e", "#a475f9", "#57606a"];
    return palette[i % palette.length];
  },

  /** Width for a chart in `container`, at least 300px. */
  width(container) {
    return Math.max(300, container.clientWidth - 4);
  },

  showError(where, err) {
    where.replaceChildren(strata.el("p", { class: "error" }, err.message || String(err)));
  },
};
