// Shared helpers for every dashboard page: DOM building (text only, never HTML from data),
// formatting, debiased EMA smoothing, uPlot charts, and the live stream (SSE with polling fallback).
/* global uPlot */

import { STAGES, STAGE_LABELS as LABELS } from "./stages.js"; // generated from the verifier's stages

export { STAGES };
export const STAGE_LABELS = { ...LABELS, unknown: "unknown" };
export const STAGE_COLORS = {
  pass: "#2f9e44",
  test_failure: "#f76707",
  compile_error: "#d6336c",
  type_error: "#ae3ec9",
  syntax_error: "#e03131",
  timeout: "#f59f00",
  empty: "#868e96",
  infra_error: "#495057",
  unknown: "#adb5bd",
};
for (const s of STAGES) STAGE_COLORS[s] ??= STAGE_COLORS.unknown; // a stage added in Python still shows
export const PALETTE = ["#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f59f00", "#0ca678", "#d6336c", "#7048e8", "#3bc9db", "#94d82d"];

// ------------------------------------------------------------------ DOM
/** Create an element; children may be nodes or strings (always inserted as text). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style" && typeof v === "object") Object.assign(node.style, v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
export const $ = (sel, root = document) => root.querySelector(sel);
export function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

let toastTimer = null;
/** Show a short message in the corner. */
export function toast(msg, ms = 4000) {
  let t = $("#toast");
  if (!t) { t = el("div", { id: "toast", class: "toast" }); document.body.append(t); }
  t.textContent = msg;
  t.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.add("hidden"), ms);
}

// ------------------------------------------------------------------ formatting
export function isNum(v) { return typeof v === "number" && Number.isFinite(v); }
export function fmtNum(v, digits = 4) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return "NaN";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return Number(v.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 6 });
}
export function fmtPct(v) { return isNum(v) ? (v * 100).toFixed(1) + "%" : "—"; }
export function fmtDur(s) {
  if (!isNum(s) || s < 0) return "—";
  s = Math.round(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

// ------------------------------------------------------------------ data
export async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (_) { /* not json */ }
    const err = new Error(`${r.status}: ${detail}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

/**
 * Debiased exponential moving average, as TensorBoard does it: the running average
 * starts at 0 and is divided by (1 - w^n), so early points are not pulled towards 0
 * (or towards the first value).  Null/NaN points stay gaps and do not advance it.
 */
export function smoothEMA(ys, w) {
  if (!(w > 0)) return ys.slice();
  const out = new Array(ys.length);
  let last = 0, n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (!isNum(y)) { out[i] = null; continue; }
    last = last * w + (1 - w) * y;
    n++;
    out[i] = last / (1 - Math.pow(w, n));
  }
  return out;
}

/** Client-side copy of server series: key -> {x, y, lo?, hi?}; live records are appended. */
export class SeriesBuffer {
  constructor() { this.s = {}; this.last = {}; this.events = []; this.version = 0; }
  load(payload) {
    this.s = {};
    for (const [k, v] of Object.entries(payload.series || {})) {
      this.s[k] = { x: v.x.slice(), y: v.y.slice(), lo: v.lo ? v.lo.slice() : null, hi: v.hi ? v.hi.slice() : null };
    }
    this.last = Object.assign({}, payload.last || {});
    this.lastRecord = payload.last_record || {};
    this.events = (payload.events || []).slice();
    this.version++;
  }
  _push(key, x, y) {
    let s = this.s[key];
    if (!s) s = this.s[key] = { x: [], y: [], lo: null, hi: null };
    // A step at or before the last one replaces the tail (resume / same-step lines).
    while (s.x.length && s.x[s.x.length - 1] >= x) {
      s.x.pop(); s.y.pop();
      if (s.lo) { s.lo.pop(); s.hi.pop(); }
    }
    s.x.push(x); s.y.push(y);
    if (s.lo) { s.lo.push(y); s.hi.push(y); }
  }
  /** Append one raw JSONL record; `flatten` lists dict keys whose members become key/member. */
  append(rec, flatten = []) {
    if (rec.event !== undefined) { this.events.push({ event: String(rec.event), step: isNum(rec.step) ? rec.step : null }); this.version++; return; }
    const x = rec.step;
    if (!isNum(x)) return;
    for (const [k, v] of Object.entries(rec)) {
      if (k === "step") continue;
      if (v === null) { this._push(k, x, null); this.last[k] = null; continue; }
      if (typeof v === "number") { this._push(k, x, v); this.last[k] = v; continue; }
      if (flatten.includes(k) && v && typeof v === "object") {
        for (const [sk, sv] of Object.entries(v)) if (typeof sv === "number") this._push(`${k}/${sk}`, x, sv);
      }
    }
    this.last.step = x;
    this.lastRecord = rec;
    this.version++;
  }
  get(key) { return this.s[key]; }
  keys() { return Object.keys(this.s).sort(); }
}

/** Merge several {x, y} series onto one sorted x axis (null where a series has no point). */
export function align(list) {
  if (list.length === 1) return [list[0].x, ...list[0].ys];
  const xsSet = new Set();
  for (const s of list) for (const x of s.x) xsSet.add(x);
  const xs = Array.from(xsSet).sort((a, b) => a - b);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const out = [xs];
  for (const s of list) {
    for (const ys of s.ys) {
      const col = new Array(xs.length).fill(null);
      for (let i = 0; i < s.x.length; i++) col[idx.get(s.x[i])] = ys[i];
      out.push(col);
    }
  }
  return out;
}

// ------------------------------------------------------------------ charts
function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
function withAlpha(hex, a) {
  const h = hex.replace("#", "");
  const n = parseInt(h.length === 3 ? h.split("").map((c) => c + c).join("") : h, 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

export const charts = {};
window.__dash = window.__dash || {};
window.__dash.charts = charts;

/**
 * A line chart over steps.  `lines`: [{label, color, x, y, lo?, hi?, smooth?}] where lo/hi draw
 * a shaded band.  When `smoothing` > 0 a smoothed line is drawn over a faint raw one.
 */
export class LineChart {
  constructor(container, { id, yFormat, syncKey = "steps", height = 210, yMin = null, yMax = null, events = null, logY = false } = {}) {
    this.container = container;
    this.id = id;
    this.yFormat = yFormat || ((v) => fmtNum(v));
    this.syncKey = syncKey;
    this.height = height;
    this.yMin = yMin;
    this.yMax = yMax;
    this.logY = logY;
    this.events = events || [];
    this.u = null;
    this.sig = "";
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(container);
    if (id) charts[id] = this;
  }
  resize() {
    if (!this.u) return;
    const w = Math.max(200, this.container.clientWidth);
    if (Math.abs(w - this.u.width) > 2) this.u.setSize({ width: w, height: this.height });
  }
  destroy() { if (this.u) { this.u.destroy(); this.u = null; } this.sig = ""; }
  /** Number of points in the first data series (for tests and empty states). */
  points() { return this.u ? this.u.data[0].length : 0; }

  update(lines, smoothing = 0, emptyText = "no data yet") {
    lines = lines.filter((l) => l && l.x && l.x.length);
    if (!lines.length) {
      this.destroy();
      clear(this.container).append(el("div", { class: "nodata", text: emptyText }));
      return;
    }
    // Build series: per line [band hi, band lo]? , raw, smoothed.
    const specs = [];
    const seriesIn = [];
    for (const l of lines) {
      const ys = [];
      const hasBand = l.lo && l.hi;
      const sm = l.smooth !== false && smoothing > 0;
      if (hasBand) {
        ys.push(sm ? smoothEMA(l.hi, smoothing) : l.hi, sm ? smoothEMA(l.lo, smoothing) : l.lo);
        specs.push({ kind: "hi", line: l }, { kind: "lo", line: l });
      }
      ys.push(l.y);
      specs.push({ kind: "raw", line: l, faded: sm });
      ys.push(sm ? smoothEMA(l.y, smoothing) : l.y);
      specs.push({ kind: "smooth", line: l, hidden: !sm });
      seriesIn.push({ x: l.x, ys });
    }
    const data = align(seriesIn);
    const nAligned = data[0].length;
    for (const s of specs) s.sparse = s.line.x.length < nAligned;
    const sig = specs.map((s) => `${s.kind}:${s.line.label}:${s.line.color}:${s.faded ? 1 : 0}:${s.sparse ? 1 : 0}`).join("|") + `|${cssVar("--text")}`;
    if (this.u && sig === this.sig) {
      this.u.setData(data);
      return;
    }
    this.destroy();
    this.sig = sig;
    clear(this.container);
    const text = cssVar("--muted") || "#666";
    const grid = cssVar("--grid") || "rgba(0,0,0,.07)";
    const series = [{ label: "step", value: (u, v) => (v == null ? "—" : fmtNum(v)) }];
    const bands = [];
    specs.forEach((s, i) => {
      const c = s.line.color;
      const idx = i + 1;
      if (s.kind === "hi" || s.kind === "lo") {
        series.push({ label: `${s.line.label} ${s.kind}`, stroke: "transparent", width: 0, points: { show: false }, value: (u, v) => this.yFormat(v) });
        if (s.kind === "hi") bands.push({ series: [idx, idx + 1], fill: withAlpha(c, s.line.bandAlpha || 0.12) });
      } else if (s.kind === "raw") {
        series.push({
          label: s.faded ? `${s.line.label} (raw)` : s.line.label,
          stroke: s.faded ? withAlpha(c, 0.28) : c,
          width: s.faded ? 1 : 1.6,
          dash: s.line.dash,
          points: { show: s.sparse && s.line.x.length < 200 && !s.faded, size: 6 },
          spanGaps: s.sparse,
          value: (u, v) => this.yFormat(v),
        });
      } else {
        series.push({ label: s.line.label, stroke: c, width: 2, dash: s.line.dash, points: { show: s.sparse && s.line.x.length < 200, size: 6 }, spanGaps: s.sparse, show: !s.hidden, value: (u, v) => this.yFormat(v) });
      }
    });
    const yRange = (u, min, max) => {
      let lo = this.yMin != null ? this.yMin : min;
      let hi = this.yMax != null ? this.yMax : max;
      if (lo == null || hi == null || !isFinite(lo) || !isFinite(hi)) return [0, 1];
      if (this.yMin == null || this.yMax == null) {
        // A constant series smoothed by the EMA differs from itself by a few ulps: treat a span that
        // small as none, or uPlot's tick splitter runs out of memory on a 1e-16 wide axis.
        const span = hi - lo, scale = Math.max(Math.abs(hi), Math.abs(lo));
        const pad = span > scale * 1e-9 ? span * 0.06 : scale * 0.1 || 1;
        if (this.yMin == null) lo -= pad;
        if (this.yMax == null) hi += pad;
      }
      return [lo, hi];
    };
    const self = this;
    const opts = {
      width: Math.max(200, this.container.clientWidth),
      height: this.height,
      cursor: this.syncKey ? { sync: { key: this.syncKey }, drag: { x: true, y: false } } : { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: this.logY ? { distr: 3 } : { range: yRange } },
      axes: [
        { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 34 },
        {
          stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid },
          values: (u, vals) => vals.map((v) => self.yFormat(v)),
          size: (u, values) => {
            if (!values) return 40;
            u.ctx.font = "12px " + (cssVar("--sans") || "sans-serif");
            const w = Math.max(...values.map((v) => u.ctx.measureText(String(v)).width));
            return Math.ceil(w) + 16;
          },
        },
      ],
      series,
      bands,
      legend: { live: true },
      hooks: {
        draw: [
          (u) => {
            if (!self.events.length) return;
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = cssVar("--warn") || "#e67700";
            ctx.setLineDash([4, 4]);
            ctx.lineWidth = 1.5;
            for (const ev of self.events) {
              if (!isNum(ev.step)) continue;
              const x = u.valToPos(ev.step, "x", true);
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
    this.u = new uPlot(opts, data, this.container);
    // Hide helper series (band edges, faded raw) from the legend.
    const rows = this.u.root.querySelectorAll(".u-legend .u-series");
    specs.forEach((s, i) => {
      const row = rows[i + 1];
      if (!row) return;
      if (s.kind === "hi" || s.kind === "lo" || s.faded || s.hidden) row.classList.add("hidden");
    });
  }
}

// ------------------------------------------------------------------ theme, nav, run picker
export function initTheme() {
  const saved = localStorage.getItem("dash-theme");
  const dark = saved ? saved === "dark" : window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  const btn = $("#theme-btn");
  if (btn) {
    btn.textContent = dark ? "☀" : "☾";
    btn.title = "Toggle light/dark";
    btn.addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("dash-theme", next);
      btn.textContent = next === "dark" ? "☀" : "☾";
      window.dispatchEvent(new Event("themechange"));
    });
  }
  const path = location.pathname.replace(/\/+$/, "") || "/";
  for (const a of document.querySelectorAll(".nav a")) {
    if ((a.getAttribute("href") || "") === path) a.classList.add("active");
  }
  followPipeline();
}

/** The page of a pipeline phase's run: SFT and GRPO runs have theirs; evaluations have none. */
function phasePage(phase) {
  const run = (phase.runs || {}).train;
  const name = run ? run.split("/").pop() : null;
  if (phase.name === "sft" && name) return "/sft?run=" + encodeURIComponent(name);
  if (phase.name === "grpo" && name) return "/?run=" + encodeURIComponent(name);
  return null;
}

/** A banner on every page while a pipeline (make pipeline) runs: its phase, and a link to that phase's page. */
export async function followPipeline(intervalMs = 10000) {
  let p = null;
  try { p = await api("/api/pipeline"); } catch (_) { /* an older server, or none yet */ }
  let banner = $("#pipeline-banner");
  const main = $("main");
  if (p && p.pipeline && main) {
    if (!banner) { banner = el("div", { id: "pipeline-banner", class: "banner" }); main.prepend(banner); }
    clear(banner);
    const phases = p.phases || [];
    const i = phases.findIndex((x) => x.name === p.current);
    const cur = i >= 0 ? phases[i] : null;
    banner.append(el("strong", { text: "Pipeline " + p.pipeline }), " ", statusBadge(p.status));
    if (cur && p.status === "running") {
      banner.append(el("span", { text: `phase ${cur.name} (${i + 1}/${phases.length})` }));
      const href = phasePage(cur);
      if (href) banner.append(el("a", { href, text: "follow it →" }));
    } else {
      banner.append(el("span", { text: phases.map((x) => `${x.name}: ${x.status}`).join(" · ") }));
    }
    if (p.status === "finished") banner.append(el("span", { class: "hint", text: "report: " + p.report }));
  } else if (banner) {
    banner.remove();
  }
  setTimeout(() => followPipeline(intervalMs), intervalMs);
}

export function setLive(state, text) {
  const n = $("#live");
  if (!n) return;
  n.className = "live " + state;
  $(".txt", n).textContent = text;
}

/** Fill the run <select>; the first option follows the latest run. */
export function fillRunPicker(select, runs, latest, current, follow) {
  clear(select);
  select.append(el("option", { value: "" }, latest ? `latest (${latest})` : "latest"));
  for (const r of runs) {
    select.append(el("option", { value: r.name }, r.name + (r.status ? ` · ${r.status}` : "")));
  }
  select.value = follow ? "" : current || "";
}

export function statusBadge(status) {
  const s = status || "unknown";
  const known = ["running", "finished", "failed", "stopped", "died", "stalled"];
  const title = { died: "recorded as running, but its process is gone", stalled: "recorded as running, but nothing written for much longer than a step takes" }[s];
  return el("span", { class: `badge ${known.includes(s) ? s : "unknown"}`, title: title || "" }, s);
}

export function getParam(name) { return new URLSearchParams(location.search).get(name); }
export function setParams(obj) {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined || v === "") p.delete(k);
    else p.set(k, v);
  }
  const qs = p.toString();
  history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
}

// ------------------------------------------------------------------ live stream
/**
 * One Server-Sent-Events stream per page.  `positions` maps "run/file" to [ino, offset];
 * the server resumes from them (and, after a reconnect, from Last-Event-ID).  Falls back to
 * polling the `?since=` endpoint when EventSource keeps failing or is unavailable.
 */
export class LiveStream {
  constructor({ kind, runs, files, positions, onLines, onReset, onRuns }) {
    this.kind = kind;
    this.runs = runs;
    this.files = files;
    this.positions = Object.assign({}, positions || {});
    this.onLines = onLines || (() => {});
    this.onReset = onReset || (() => {});
    this.onRuns = onRuns || (() => {});
    this.es = null;
    this.failures = 0;
    this.pollTimer = null;
    this.stopped = false;
  }
  encodePos() {
    const p = new URLSearchParams();
    for (const [k, [ino, off]] of Object.entries(this.positions)) p.set(k, `${ino}:${off}`);
    return p.toString();
  }
  start() {
    if (!window.EventSource) { this.startPolling(); return; }
    const q = new URLSearchParams();
    for (const r of this.runs) q.append("run", r);
    q.set("files", this.files.join(","));
    q.set("pos", this.encodePos());
    const es = (this.es = new EventSource(`/api/${this.kind}/stream?${q}`));
    es.onopen = () => { this.failures = 0; setLive("on", "live"); };
    es.onerror = () => {
      this.failures++;
      setLive("retry", "reconnecting…");
      if (this.failures >= 4 && !this.stopped) { es.close(); this.es = null; this.startPolling(); }
    };
    es.addEventListener("hello", (e) => { const d = JSON.parse(e.data); this.showLive(d); this.onRuns(d, true); });
    es.addEventListener("runs", (e) => { const d = JSON.parse(e.data); this.showLive(d); this.onRuns(d, false); });
    es.addEventListener("reset", (e) => {
      const d = JSON.parse(e.data);
      this.positions[`${d.run}/${d.file}`] = [0, 0];
      this.onReset(d);
    });
    es.addEventListener("lines", (e) => {
      const d = JSON.parse(e.data);
      this.positions[`${d.run}/${d.file}`] = [d.ino || 0, d.end];
      this.onLines(d);
    });
  }
  /** "live" only while a followed run's process is really writing; else what the run is. */
  showLive(payload) {
    const runs = (payload && payload.runs) || [];
    const resolved = payload.resolved || {};
    const names = this.runs.map((r) => resolved[r] || (r === "latest" || r === "" ? payload.latest : r));
    const followed = runs.filter((r) => names.includes(r.name));
    if (!followed.length || followed.some((r) => r.status === "running")) setLive("on", "live");
    else setLive("idle", `connected · run ${followed.map((r) => r.status || "unknown").join(", ")}`);
  }
  startPolling() {
    setLive("poll", "polling");
    const tick = async () => {
      if (this.stopped) return;
      for (const run of this.runs) {
        for (const file of this.files) {
          const key = `${run}/${file}`;
          const [ino, off] = this.positions[key] || [0, 0];
          try {
            const d = await api(`/api/${this.kind}/runs/${encodeURIComponent(run)}/tail/${file}?since=${off}&ino=${ino}`);
            if (d.reset) { this.positions[key] = [d.ino, 0]; this.onReset({ run, file, reason: d.reset }); return; }
            this.positions[key] = [d.ino, d.next];
            if (d.next > d.start) this.onLines({ run, file, start: d.start, end: d.next, records: d.records, new_lines: d.new_lines, corrupt: d.corrupt });
          } catch (_) { /* run not there yet */ }
        }
      }
      this.pollTimer = setTimeout(tick, 1000);
    };
    tick();
  }
  stop() {
    this.stopped = true;
    if (this.es) this.es.close();
    clearTimeout(this.pollTimer);
  }
}

/** Render a key/value table of a (possibly nested) object, flattened with dotted keys. */
export function kvTable(obj) {
  const rows = [];
  const walk = (o, prefix) => {
    for (const [k, v] of Object.entries(o || {})) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) walk(v, key);
      else rows.push(el("tr", null, el("td", { text: key }), el("td", { text: typeof v === "string" ? v : JSON.stringify(v) })));
    }
  };
  walk(obj, "");
  return el("table", { class: "kv" }, el("tbody", null, rows));
}
