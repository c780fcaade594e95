// Compare page: several runs' curves of one metric overlaid, live.
import {
  $, api, clear, el, fmtNum, getParam, initTheme, isNum, LineChart, LiveStream, PALETTE, SeriesBuffer, setLive, setParams,
} from "./common.js";

const state = {
  kind: "grpo",
  runs: [],
  selected: [],
  metric: null,
  keys: new Set(),
  buffers: {},
  positions: {},
  stream: null,
  smoothing: 0.6,
  chart: null,
  renderTimer: null,
};
const DEFAULT_METRIC = { grpo: "reward", sft: "loss" };

function colorOf(name) {
  const i = state.runs.findIndex((r) => r.name === name);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function renderRunList() {
  const box = clear($("#runlist"));
  if (!state.runs.length) { box.append(el("div", { class: "nodata", text: "no runs yet" })); return; }
  for (const r of state.runs) {
    const cb = el("input", { type: "checkbox", value: r.name });
    cb.checked = state.selected.includes(r.name);
    cb.addEventListener("change", () => {
      state.selected = state.runs.map((x) => x.name).filter((n) => (n === r.name ? cb.checked : state.selected.includes(n)));
      loadAll();
    });
    box.append(el("label", { title: r.name }, cb, el("span", { class: "sw", style: { background: colorOf(r.name) } }), el("span", { class: "nm", text: r.name }), el("span", { class: "hint", style: { marginLeft: "auto", color: "var(--muted)", fontSize: "12px" }, text: r.status || "" })));
  }
}

function renderMetricSelect() {
  const sel = clear($("#metric"));
  const keys = [...state.keys].filter((k) => !["time", "elapsed_s", "epoch"].includes(k)).sort();
  if (state.metric && !keys.includes(state.metric)) keys.unshift(state.metric);
  for (const k of keys) sel.append(el("option", { value: k }, k));
  sel.value = state.metric || "";
}

function render() {
  const lines = [];
  for (const name of state.selected) {
    const b = state.buffers[name];
    const s = b && b.get(state.metric);
    if (s) lines.push({ label: name, color: colorOf(name), x: s.x, y: s.y });
  }
  $("#cmp-title").textContent = `${state.metric || "—"} · ${state.selected.length} run${state.selected.length === 1 ? "" : "s"}`;
  state.chart.update(lines, state.smoothing, state.selected.length ? `no “${state.metric}” in the selected runs` : "select runs on the left");
  const tb = clear($("#cmp-table").tBodies[0]);
  for (const name of state.selected) {
    const s = state.buffers[name] && state.buffers[name].get(state.metric);
    let v = null, x = null;
    if (s) for (let i = s.y.length - 1; i >= 0; i--) if (isNum(s.y[i])) { v = s.y[i]; x = s.x[i]; break; }
    tb.append(el("tr", null, el("td", null, el("span", { class: "sw", style: { display: "inline-block", width: "10px", height: "10px", borderRadius: "2px", marginRight: "6px", background: colorOf(name) } }), name), el("td", { text: v == null ? "—" : `${fmtNum(v)} at step ${fmtNum(x)}` })));
  }
}
function scheduleRender() {
  if (state.renderTimer) return;
  state.renderTimer = setTimeout(() => { state.renderTimer = null; render(); }, 150);
}

async function loadAll() {
  setParams({ kind: state.kind, runs: state.selected.join(",") || null, metric: state.metric });
  if (state.stream) { state.stream.stop(); state.stream = null; }
  const results = await Promise.all(state.selected.map((name) =>
    api(`/api/${state.kind}/runs/${encodeURIComponent(name)}/metrics?keys=${encodeURIComponent(state.metric || "")}`).then((m) => [name, m]).catch(() => [name, null])));
  state.keys = new Set();
  state.positions = {};
  for (const [name, m] of results) {
    if (!m) continue;
    const b = new SeriesBuffer();
    b.load(m);
    state.buffers[name] = b;
    for (const k of m.keys) state.keys.add(k);
    state.positions[`${name}/metrics`] = [m.pos.ino, m.pos.offset];
  }
  if (!state.metric || (state.keys.size && !state.keys.has(state.metric))) {
    const fallback = state.keys.has(DEFAULT_METRIC[state.kind]) ? DEFAULT_METRIC[state.kind] : [...state.keys].sort()[0];
    if (fallback && fallback !== state.metric) { state.metric = fallback; return loadAll(); }
  }
  renderMetricSelect();
  render();
  clearTimeout(state.sampleTimer);
  if (results.some(([, m]) => m && m.sampled)) state.sampleTimer = setTimeout(loadAll, 1500);
  state.stream = new LiveStream({
    kind: state.kind,
    runs: state.selected.length ? state.selected : ["latest"],
    files: ["metrics"],
    positions: state.positions,
    onLines: (d) => {
      const b = state.buffers[d.run];
      if (!b || !state.selected.includes(d.run)) return;
      for (const r of d.records || []) b.append(r);
      scheduleRender();
    },
    onReset: () => loadAll(),
    onRuns: (d, hello) => {
      const known = state.runs.map((r) => r.name).join();
      state.runs = d.runs;
      if (!hello && known !== d.runs.map((r) => r.name).join()) renderRunList();
    },
  });
  state.stream.start();
}

async function loadKind() {
  let r;
  try { r = await api(`/api/${state.kind}/runs`); } catch (e) { setLive("", "offline"); return; }
  state.runs = r.runs;
  const names = r.runs.map((x) => x.name);
  state.selected = state.selected.filter((n) => names.includes(n));
  if (!state.selected.length) state.selected = names.slice(0, 3);
  renderRunList();
  await loadAll();
}

async function init() {
  initTheme();
  state.chart = new LineChart($("#cmp-chart"), { id: "compare", height: 380, syncKey: null });
  state.kind = getParam("kind") === "sft" ? "sft" : "grpo";
  state.selected = (getParam("runs") || "").split(",").filter(Boolean);
  state.metric = getParam("metric") || DEFAULT_METRIC[state.kind];
  $("#kind").value = state.kind;
  $("#kind").addEventListener("change", () => {
    state.kind = $("#kind").value;
    state.selected = [];
    state.metric = DEFAULT_METRIC[state.kind];
    loadKind();
  });
  $("#metric").addEventListener("change", () => { state.metric = $("#metric").value; loadAll(); });
  const slider = $("#smoothing");
  const saved = localStorage.getItem("dash-smoothing");
  if (saved !== null) slider.value = saved;
  state.smoothing = parseFloat(slider.value);
  $("#smoothing-val").textContent = state.smoothing.toFixed(2);
  slider.addEventListener("input", () => {
    state.smoothing = parseFloat(slider.value);
    $("#smoothing-val").textContent = state.smoothing.toFixed(2);
    localStorage.setItem("dash-smoothing", slider.value);
    render();
  });
  window.addEventListener("themechange", () => { state.chart.destroy(); render(); });
  await loadKind();
}

init();
