// GRPO training page: headline cards, live charts, outcomes, error classes, config.
import {
  $, api, clear, el, fillRunPicker, fmtDur, fmtNum, fmtPct, fmtTime, getParam, initTheme, isNum, kvTable,
  LineChart, LiveStream, PALETTE, SeriesBuffer, setLive, setParams, STAGE_COLORS, STAGE_LABELS, STAGES, statusBadge, toast,
} from "./common.js";

const KIND = "grpo";
const state = {
  run: null,
  follow: true,
  meta: {},
  metrics: new SeriesBuffer(),
  batch: new SeriesBuffer(),
  corrupt: { metrics: 0, batch: 0 },
  histogram: null,
  errorTotals: {},
  errorLast: {},
  stream: null,
  smoothing: 0.6,
  charts: {},
  built: false,
  renderTimer: null,
  loading: null,
};

// ------------------------------------------------------------------ chart definitions
function ser(buf, key) { return buf.get(key); }
function line(buf, key, label, color, extra = {}) {
  const s = ser(buf, key);
  if (!s) return null;
  return Object.assign({ label, color, x: s.x, y: s.y, lo: s.lo, hi: s.hi }, extra);
}
/** mean ± std band for series that share steps. */
function withStd(buf, key, stdKey, label, color) {
  const m = ser(buf, key), s = ser(buf, stdKey);
  if (!m) return null;
  const l = { label, color, x: m.x, y: m.y };
  if (s) {
    const std = new Map(s.x.map((x, i) => [x, s.y[i]]));
    l.lo = m.x.map((x, i) => (isNum(m.y[i]) && isNum(std.get(x)) ? m.y[i] - std.get(x) : null));
    l.hi = m.x.map((x, i) => (isNum(m.y[i]) && isNum(std.get(x)) ? m.y[i] + std.get(x) : null));
    l.bandAlpha = 0.14;
  }
  return l;
}
function rewardComponents() {
  const names = state.metrics.keys().filter((k) => /^rewards\/.+\/mean$/.test(k));
  return names.map((k, i) => line(state.metrics, k, k.slice(8, -5), PALETTE[(i + 1) % PALETTE.length], { lo: null, hi: null }));
}
// Multi-turn runs (GRPO_ENVIRONMENT=ocaml): metrics.jsonl's env/* keys (doc/metrics.md).
function hasEnvironment() { return state.metrics.keys().some((k) => k.startsWith("env/")); }
function rewardByCalls() {
  const keys = state.metrics.keys().filter((k) => /^env\/reward_by_calls\/\d+$/.test(k));
  keys.sort((a, b) => Number(a.split("/")[2]) - Number(b.split("/")[2]));
  return keys.map((k, i) => {
    const n = Number(k.split("/")[2]);
    return line(state.metrics, k, `${n} call${n === 1 ? "" : "s"}`, PALETTE[i % PALETTE.length], { lo: null, hi: null });
  });
}
function funnelLines() {
  const b = state.batch;
  const cnt = {};
  for (const s of STAGES) cnt[s] = b.get(`stage_counts/${s}`);
  const anyS = STAGES.map((s) => cnt[s]).find(Boolean);
  if (!anyS) return [];
  const xs = anyS.x;
  const at = (series) => (series ? new Map(series.x.map((x, i) => [x, series.y[i]])) : new Map());
  const m = {};
  for (const s of STAGES) m[s] = at(cnt[s]);
  const partial = at(b.get("partial_tests"));
  const v = (s, x) => (isNum(m[s].get(x)) ? m[s].get(x) : 0);
  const levels = [
    ["parses", (x) => v("pass", x) + v("test_failure", x) + v("compile_error", x) + v("type_error", x) + v("timeout", x)],
    ["type-checks", (x) => v("pass", x) + v("test_failure", x) + v("compile_error", x) + v("timeout", x)],
    ["compiles", (x) => v("pass", x) + v("test_failure", x) + v("timeout", x)],
    ["passes some tests", (x) => v("pass", x) + (isNum(partial.get(x)) ? partial.get(x) : 0)],
    ["passes all tests", (x) => v("pass", x)],
  ];
  const colors = ["#adb5bd", "#ae3ec9", "#d6336c", "#f59f00", "#2f9e44"];
  return levels.map(([label, f], i) => {
    const y = xs.map((x) => {
      // denominator: every completion except infrastructure errors (not the model's fault)
      let total = 0;
      for (const s of STAGES) if (s !== "infra_error") total += v(s, x);
      return total > 0 ? f(x) / total : null;
    });
    return { label, color: colors[i], x: xs, y };
  });
}

const SECTIONS = {
  "grid-reward": [
    { id: "reward", title: "Reward", hint: "mean ± std", lines: () => [withStd(state.metrics, "reward", "reward_std", "reward", PALETTE[0])] },
    { id: "reward-components", title: "Reward components", hint: "rewards/<name>/mean", lines: rewardComponents },
    { id: "pass", title: "pass@1 / pass@k", hint: "per generation batch", yMin: 0, yMax: 1, fmt: fmtPct, lines: () => [line(state.batch, "pass@1", "pass@1", PALETTE[2]), line(state.batch, "pass@k", `pass@${state.batch.last.k ?? "k"}`, PALETTE[1])] },
    { id: "zero-std", title: "frac_reward_zero_std", hint: "groups with no learning signal", yMin: 0, yMax: 1, fmt: fmtPct, lines: () => [line(state.metrics, "frac_reward_zero_std", "frac_reward_zero_std", PALETTE[4])] },
  ],
  "grid-outcomes": [
    { id: "funnel", title: "Compile funnel", hint: "share of completions reaching each stage", yMin: 0, yMax: 1, fmt: fmtPct, lines: funnelLines },
    { id: "outcomes", title: "Outcomes", hint: "latest batch", dom: renderOutcomes },
    { id: "histogram", title: "Reward histogram", hint: "latest batch", dom: renderHistogram },
    { id: "errors", title: "Most frequent compiler errors", hint: "all batches", dom: renderErrors },
  ],
  "grid-env": [
    {
      id: "env-calls", title: "Tool calls per episode", hint: "env/tool_calls_mean · env/checks_mean (ran in the sandbox)", yMin: 0,
      lines: () => [line(state.metrics, "env/tool_calls_mean", "tool calls", PALETTE[1]), line(state.metrics, "env/checks_mean", "checks", PALETTE[2], { dash: [5, 4] })],
    },
    { id: "env-reward-by-calls", title: "Reward by number of tool calls", hint: "env/reward_by_calls/<n>: mean episode reward", lines: rewardByCalls },
  ],
  "grid-opt": [
    { id: "loss", title: "Loss", lines: () => [line(state.metrics, "loss", "loss", PALETTE[0])] },
    { id: "grad-norm", title: "Grad norm", lines: () => [line(state.metrics, "grad_norm", "grad_norm", PALETTE[1])] },
    { id: "lr", title: "Learning rate", smooth: false, lines: () => [line(state.metrics, "learning_rate", "learning_rate", PALETTE[5], { smooth: false })] },
    { id: "kl", title: "KL", hint: "logged only when beta ≠ 0", empty: () => (state.meta.config && state.meta.config.beta === 0 ? "not logged: beta = 0 (no reference model)" : "no data yet"), lines: () => [line(state.metrics, "kl", "kl", PALETTE[3])] },
    { id: "entropy", title: "Entropy", lines: () => [line(state.metrics, "entropy", "entropy", PALETTE[7])] },
  ],
  "grid-gen": [
    {
      id: "length", title: "Completion length", hint: "tokens",
      lines: () => [
        line(state.metrics, "completions/max_length", "max", PALETTE[6], { lo: null, hi: null, dash: [5, 4] }),
        line(state.metrics, "completions/mean_length", "mean", PALETTE[0], { lo: null, hi: null }),
        line(state.metrics, "completions/min_length", "min", PALETTE[1], { lo: null, hi: null, dash: [5, 4] }),
      ],
    },
    { id: "clipped", title: "Clipped ratio", hint: "hit max_completion_length", yMin: 0, fmt: fmtPct, lines: () => [line(state.metrics, "completions/clipped_ratio", "clipped_ratio", PALETTE[6])] },
    { id: "step-time", title: "Step time", hint: "seconds", lines: () => [line(state.metrics, "step_time", "step_time", PALETTE[4])] },
    { id: "throughput", title: "Throughput", hint: "tokens / s", lines: () => [line(state.metrics, "tokens_per_second", "tokens/s", PALETTE[5])] },
  ],
  "grid-run": [
    { id: "config", title: "Config", hint: "run.json", dom: renderConfig },
    { id: "details", title: "Run", dom: renderDetails },
  ],
};

function buildLayout() {
  for (const chart of Object.values(state.charts)) if (chart.destroy) chart.destroy();
  state.charts = {};
  for (const [gridId, defs] of Object.entries(SECTIONS)) {
    const grid = clear($("#" + gridId));
    for (const d of defs) {
      const body = el("div", { class: d.dom ? "" : "chart", id: "chart-" + d.id });
      grid.append(el("div", { class: "panel", dataset: { chart: d.id } }, el("h3", null, d.title, d.hint ? el("span", { class: "hint", text: d.hint }) : null), body));
      if (!d.dom) {
        state.charts[d.id] = new LineChart(body, { id: d.id, yMin: d.yMin ?? null, yMax: d.yMax ?? null, yFormat: d.fmt, events: state.metrics.events });
      }
    }
  }
  state.built = true;
}

function renderCharts() {
  const env = hasEnvironment();
  $("#env-title").classList.toggle("hidden", !env);
  $("#grid-env").classList.toggle("hidden", !env);
  for (const defs of Object.values(SECTIONS)) {
    for (const d of defs) {
      if (d.dom) { d.dom(clear($("#chart-" + d.id))); continue; }
      const c = state.charts[d.id];
      c.events = state.metrics.events;
      const empty = typeof d.empty === "function" ? d.empty() : d.empty;
      c.update(d.lines().filter(Boolean), d.smooth === false ? 0 : state.smoothing, empty || "no data yet");
    }
  }
}

// ------------------------------------------------------------------ DOM panels
function renderOutcomes(node) {
  const rec = state.batch.lastRecord || {};
  const counts = rec.stage_counts || {};
  const total = STAGES.reduce((a, s) => a + (isNum(counts[s]) ? counts[s] : 0), 0);
  if (!total) { node.append(el("div", { class: "nodata", text: "no batch metrics yet" })); return; }
  const bar = el("div", { class: "stackbar" });
  const legend = el("div", { class: "hbars" });
  for (const s of STAGES) {
    const n = isNum(counts[s]) ? counts[s] : 0;
    if (n) bar.append(el("div", { title: `${STAGE_LABELS[s]}: ${n}`, style: { width: (100 * n) / total + "%", background: STAGE_COLORS[s] } }));
    legend.append(
      el("div", { class: "hbar", dataset: { stage: s } },
        el("span", { class: "nm" }, el("span", { class: `st st-${s}`, text: STAGE_LABELS[s] })),
        el("div", { class: "track" }, el("div", { class: "fill", style: { width: (100 * n) / total + "%", background: STAGE_COLORS[s] } })),
        el("span", { class: "num", text: `${n} · ${fmtPct(n / total)}` })),
    );
  }
  node.append(el("div", { class: "legend-row" }, `step ${fmtNum(rec.step)} · ${total} completions`,
    isNum(rec.partial_tests) ? ` · ${rec.partial_tests} passed some tests` : "",
    isNum(rec.infra_errors) && rec.infra_errors ? ` · ${rec.infra_errors} infra errors` : ""), bar, legend);
}

function renderHistogram(node) {
  const h = state.histogram;
  if (!h || !Array.isArray(h.counts) || !h.counts.length) { node.append(el("div", { class: "nodata", text: "no histogram yet" })); return; }
  const max = Math.max(1, ...h.counts.filter(isNum));
  const bars = el("div", { class: "hist" });
  const axis = el("div", { class: "hist-axis" });
  h.counts.forEach((c, i) => {
    const lo = h.edges?.[i], hi = h.edges?.[i + 1];
    bars.append(el("div", { class: "bar", title: `[${fmtNum(lo)}, ${fmtNum(hi)}): ${c}`, style: { height: `${(100 * (isNum(c) ? c : 0)) / max}%` } }));
    axis.append(el("span", { text: fmtNum(lo, 2) }));
  });
  node.append(bars, axis, el("div", { class: "legend-row", style: { marginTop: "6px" } }, `step ${fmtNum(h.step)} · ${h.counts.reduce((a, b) => a + (isNum(b) ? b : 0), 0)} completions · bins by reward`));
}

function renderErrors(node) {
  const rows = Object.entries(state.errorTotals).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 12);
  if (!rows.length) { node.append(el("div", { class: "nodata", text: "no compiler errors recorded" })); return; }
  const max = rows[0][1] || 1;
  const list = el("div", { class: "hbars" });
  for (const [name, n] of rows) {
    const last = state.errorLast[name];
    list.append(el("div", { class: "hbar", title: name },
      el("span", { class: "nm", text: name }),
      el("div", { class: "track" }, el("div", { class: "fill", style: { width: `${(100 * n) / max}%` } })),
      el("span", { class: "num", text: fmtNum(n) + (isNum(last) ? ` (+${last})` : "") })));
  }
  node.append(list, el("div", { class: "legend-row", style: { marginTop: "6px" } }, "total over all batches (last batch in brackets)"));
}

function renderConfig(node) {
  const cfg = state.meta.config;
  if (!cfg || !Object.keys(cfg).length) { node.append(el("div", { class: "nodata", text: "no config in run.json" })); return; }
  node.append(el("div", { class: "scroll" }, kvTable(cfg)));
}

function renderDetails(node) {
  const m = state.meta;
  const o = {
    run_name: m.run_name ?? state.run, status: m.status, model: m.model, dataset: m.dataset, started_at: fmtTime(m.started_at),
    finished_at: m.finished_at ? fmtTime(m.finished_at) : null, pid: m.pid, git_commit: m.git_commit,
    resumes: (m.resumes || []).map((r) => `step ${r.from_step} at ${fmtTime(r.at)}`).join("; ") || null,
    "metrics.jsonl lines": state.metrics.lines, "corrupt lines skipped": `metrics ${state.corrupt.metrics}, batch_metrics ${state.corrupt.batch}`,
  };
  if (m.versions) o.versions = m.versions;
  node.append(el("div", { class: "scroll" }, kvTable(o)));
}

// ------------------------------------------------------------------ cards & status
function card(label, value, sub, progress) {
  const c = el("div", { class: "card", dataset: { card: label } }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value }), el("div", { class: "sub", text: sub || "\u00a0" }));
  if (progress != null) c.append(el("div", { class: "progress" }, el("div", { style: { width: `${Math.min(100, Math.max(0, progress * 100))}%` } })));
  return c;
}

function secondsPerStep() {
  const t = state.metrics.get("time");
  if (t && t.x.length >= 2) {
    const n = t.x.length, k = Math.max(0, n - 50);
    const dx = t.x[n - 1] - t.x[k], dt = t.y[n - 1] - t.y[k];
    if (dx > 0 && isNum(dt) && dt > 0) return dt / dx;
  }
  const st = state.metrics.get("step_time");
  if (st && st.y.length) {
    const vals = st.y.slice(-20).filter(isNum);
    if (vals.length) return vals.reduce((a, b) => a + b, 0) / vals.length;
  }
  return null;
}

function renderCards() {
  const last = state.metrics.last;
  const blast = state.batch.lastRecord || {};
  const cfg = state.meta.config || {};
  const maxSteps = isNum(cfg.max_steps) && cfg.max_steps > 0 ? cfg.max_steps : null;
  const step = last.step;
  const sps = secondsPerStep();
  let elapsed = last.elapsed_s;
  if (!isNum(elapsed) && state.meta.started_at && isNum(last.time)) elapsed = last.time - Date.parse(state.meta.started_at) / 1000;
  let eta = "—";
  if (state.meta.status && state.meta.status !== "running") eta = state.meta.status;
  else if (maxSteps && isNum(step) && sps) eta = "ETA " + fmtDur((maxSteps - step) * sps);
  let tput = last.tokens_per_second;
  if (!isNum(tput)) {
    const nt = state.metrics.get("num_tokens"), t = state.metrics.get("time");
    if (nt && t && nt.y.length > 1 && t.y.length > 1) {
      const n = Math.min(nt.y.length, t.y.length), k = Math.max(0, n - 20);
      const dt = t.y[n - 1] - t.y[k];
      if (dt > 0) tput = (nt.y[n - 1] - nt.y[k]) / dt;
    }
  }
  const cards = clear($("#cards"));
  cards.append(
    card("Step", isNum(step) ? fmtNum(step) : "—", maxSteps ? `of ${fmtNum(maxSteps)} · ${fmtPct(step / maxSteps)}` : "max_steps unknown", maxSteps && isNum(step) ? step / maxSteps : null),
    card("Epoch", isNum(last.epoch) ? last.epoch.toFixed(3) : "—", isNum(last.num_tokens) ? `${fmtNum(last.num_tokens)} tokens` : ""),
    card("Mean reward", fmtNum(last.reward, 3), isNum(last.reward_std) ? `std ${fmtNum(last.reward_std, 3)}` : ""),
    card("pass@1", fmtPct(blast["pass@1"]), isNum(blast["pass@k"]) ? `pass@${blast.k ?? "k"} ${fmtPct(blast["pass@k"])}` : "no batch metrics yet"),
    card("Throughput", isNum(tput) ? `${fmtNum(Math.round(tput))} tok/s` : "—", sps ? `${fmtNum(sps, 3)} s / step` : ""),
    card("Elapsed", fmtDur(elapsed), eta),
  );
}

function renderStatus() {
  const m = state.meta;
  const line = clear($("#statusline"));
  line.append(el("span", { class: "name", text: state.run }), statusBadge(m.status));
  if (m.model) line.append(el("span", { text: m.model }));
  if (m.started_at) line.append(el("span", { text: "started " + fmtTime(m.started_at) }));
  const corrupt = state.corrupt.metrics + state.corrupt.batch;
  if (corrupt) line.append(el("span", { class: "badge warn", id: "corrupt-badge", title: "lines that were not valid JSON were skipped" }, `${corrupt} corrupt line${corrupt > 1 ? "s" : ""} skipped`));
  const n = state.metrics.lines;
  if (isNum(n)) line.append(el("span", { text: `${fmtNum(n)} metric lines` }));
}

const NO_SIGNAL_FIXES = [
  "SFT first (make pipeline, or make sft-train then BASE_MODEL_ID=sft_runs/latest/final)",
  "more generations (GRPO_NUM_GENERATIONS=8 or 16)",
  "easier problems",
  "a higher temperature (GRPO_TEMPERATURE)",
];

/** The signal guard's verdict (rlvr.grpo.callbacks.SignalGuardCallback): the latest no_signal / signal_restored event. */
function renderSignal() {
  const node = $("#signal-banner");
  if (!node) return;
  const last = [...state.metrics.events].reverse().find((e) => e.event === "no_signal" || e.event === "signal_restored");
  clear(node);
  if (!last || last.event !== "no_signal") { node.classList.add("hidden"); return; }
  node.classList.remove("hidden");
  node.append(
    el("strong", { text: "No gradient: the model is not learning." }),
    el("span", { text: ` Since step ${fmtNum(last.step)}, at least 90% of the groups of the last 10 steps had zero reward variance (every completion of a prompt scored the same). Fixes: ${NO_SIGNAL_FIXES.join("; ")}.` }),
  );
}

function renderAll() {
  if (!state.built) buildLayout();
  renderStatus();
  renderSignal();
  renderCards();
  renderCharts();
}
function scheduleRender() {
  if (state.renderTimer) return;
  state.renderTimer = setTimeout(() => { state.renderTimer = null; renderAll(); }, 120);
}

// ------------------------------------------------------------------ loading & live
function showEmpty(runsDir, msg) {
  $("#content").classList.add("hidden");
  $("#empty").classList.remove("hidden");
  $("#empty-msg").textContent = msg || `Waiting for a run to appear in ${runsDir} …`;
}

// Returns whether the run loaded.  `quiet`: on failure show nothing (the caller decides).
async function loadRun(name, { quiet = false } = {}) {
  const token = {};
  state.loading = token;
  if (state.stream) { state.stream.stop(); state.stream = null; }
  let info, m, b;
  try {
    [info, m, b] = await Promise.all([
      api(`/api/${KIND}/runs/${encodeURIComponent(name)}`),
      api(`/api/${KIND}/runs/${encodeURIComponent(name)}/metrics`),
      api(`/api/${KIND}/runs/${encodeURIComponent(name)}/batch`),
    ]);
  } catch (e) {
    if (state.loading !== token || quiet) return false;
    showEmpty("", `Could not load run “${name}”: ${e.message}`);
    startStream(state.follow ? "latest" : name, {});
    return false;
  }
  if (state.loading !== token) return false;
  state.run = info.run;
  state.meta = info.meta || {};
  state.metrics.load(m);
  state.metrics.lines = m.lines;
  state.batch.load(b);
  state.corrupt = { metrics: m.corrupt, batch: b.corrupt };
  state.histogram = b.histogram;
  state.errorTotals = Object.fromEntries((b.error_classes || []).map((e) => [e.name, e.count]));
  state.errorLast = b.error_classes_last || {};
  $("#empty").classList.add("hidden");
  $("#content").classList.remove("hidden");
  const long = Object.values(m.series || {}).find((s) => s.n > s.x.length);
  $("#points-note").textContent = m.sampled || b.sampled
    ? `loading the full history… ${Math.round(100 * Math.min(m.progress ?? 1, b.progress ?? 1))}% (showing evenly spaced samples meanwhile)`
    : long ? `${fmtNum(long.n)} points per series, shown as ${long.x.length} buckets (mean, min–max band)` : "";
  renderAll();
  clearTimeout(state.sampleTimer);
  if (m.sampled || b.sampled) state.sampleTimer = setTimeout(() => { if (state.run === info.run) loadRun(info.run); }, 1500);
  startStream(state.follow ? "latest" : info.run, {
    [`${info.run}/metrics`]: [m.pos.ino, m.pos.offset],
    [`${info.run}/batch`]: [b.pos.ino, b.pos.offset],
  });
  return true;
}

function startStream(run, positions) {
  if (state.stream) state.stream.stop();
  state.stream = new LiveStream({
    kind: KIND,
    runs: [run],
    files: ["metrics", "batch"],
    positions,
    onLines: (d) => {
      if (d.run !== state.run) return;
      if (d.file === "metrics") {
        for (const r of d.records || []) state.metrics.append(r);
        state.metrics.lines = (state.metrics.lines || 0) + (d.records || []).length;
        state.corrupt.metrics = Math.max(state.corrupt.metrics, d.corrupt || 0);
      } else if (d.file === "batch") {
        for (const r of d.records || []) {
          state.batch.append(r, ["stage_counts"]);
          if (r.reward_histogram && Array.isArray(r.reward_histogram.counts)) state.histogram = { step: r.step, edges: r.reward_histogram.edges, counts: r.reward_histogram.counts };
          if (r.error_classes && typeof r.error_classes === "object") {
            for (const [k, v] of Object.entries(r.error_classes)) if (isNum(v)) state.errorTotals[k] = (state.errorTotals[k] || 0) + v;
            state.errorLast = r.error_classes;
          }
        }
        state.corrupt.batch = Math.max(state.corrupt.batch, d.corrupt || 0);
      }
      scheduleRender();
    },
    onReset: (d) => {
      if (d.run !== state.run) return;
      toast(`${d.file === "batch" ? "batch_metrics" : d.file}.jsonl was ${d.reason} — reloaded from the start`);
      loadRun(state.run);
    },
    onRuns: (d, hello) => {
      fillRunPicker($("#run-select"), d.runs, d.latest, state.run, state.follow);
      const cur = d.runs.find((r) => r.name === state.run);
      if (cur && cur.status !== state.meta.status && !hello) {
        api(`/api/${KIND}/runs/${encodeURIComponent(state.run)}`).then((info) => { state.meta = info.meta || {}; scheduleRender(); });
      }
      if (state.follow && d.latest && d.latest !== state.run) loadRun(d.latest);
    },
  });
  state.stream.start();
}

async function init() {
  initTheme();
  const slider = $("#smoothing");
  const saved = localStorage.getItem("dash-smoothing");
  if (saved !== null) slider.value = saved;
  state.smoothing = parseFloat(slider.value);
  $("#smoothing-val").textContent = state.smoothing.toFixed(2);
  slider.addEventListener("input", () => {
    state.smoothing = parseFloat(slider.value);
    $("#smoothing-val").textContent = state.smoothing.toFixed(2);
    localStorage.setItem("dash-smoothing", slider.value);
    renderCharts();
  });
  window.addEventListener("themechange", () => { state.built = false; renderAll(); });
  const param = getParam("run");
  state.follow = !param;
  const picker = $("#run-select");
  picker.addEventListener("change", () => {
    state.follow = !picker.value;
    setParams({ run: picker.value || null });
    api(`/api/${KIND}/runs`).then((r) => loadRun(picker.value || r.latest)).catch(() => {});
  });
  // The run list (for the picker) and the run itself are fetched at once: when
  // following the latest run, its name is not needed to ask for it.
  const runsReq = api(`/api/${KIND}/runs`);
  const loading = loadRun(param || "latest", { quiet: !param });
  let runs;
  try { runs = await runsReq; } catch (e) { setLive("", "offline"); showEmpty("", e.message); return; }
  fillRunPicker(picker, runs.runs, runs.latest, param, state.follow);
  if (!param && !runs.latest) { state.loading = null; showEmpty(runs.runs_dir); startStream("latest", {}); return; }
  if (!(await loading) && !param) await loadRun(runs.latest);
}

init();
