// SFT page: train/eval loss, learning rate, grad norm, progress.
import {
  $, api, clear, el, fillRunPicker, fmtDur, fmtNum, fmtPct, fmtTime, getParam, initTheme, isNum, kvTable,
  LineChart, LiveStream, PALETTE, SeriesBuffer, setLive, setParams, statusBadge, toast,
} from "./common.js";

const KIND = "sft";
const state = { run: null, follow: true, meta: {}, metrics: new SeriesBuffer(), corrupt: 0, stream: null, smoothing: 0.6, charts: {}, built: false, renderTimer: null };

function line(key, label, color, extra = {}) {
  const s = state.metrics.get(key);
  return s ? Object.assign({ label, color, x: s.x, y: s.y, lo: s.lo, hi: s.hi }, extra) : null;
}

const CHARTS = [
  { id: "sft-loss", title: "Loss", hint: "train and eval", lines: () => [line("loss", "train loss", PALETTE[0]), line("eval_loss", "eval loss", PALETTE[1], { smooth: false, lo: null, hi: null })] },
  { id: "sft-lr", title: "Learning rate", smooth: false, lines: () => [line("learning_rate", "learning_rate", PALETTE[5], { smooth: false })] },
  { id: "sft-grad-norm", title: "Grad norm", lines: () => [line("grad_norm", "grad_norm", PALETTE[3])] },
  { id: "sft-epoch", title: "Epoch", smooth: false, lines: () => [line("epoch", "epoch", PALETTE[4], { smooth: false, lo: null, hi: null })] },
];

function build() {
  for (const c of Object.values(state.charts)) c.destroy();
  const grid = clear($("#grid"));
  for (const d of CHARTS) {
    const body = el("div", { class: "chart", id: "chart-" + d.id });
    grid.append(el("div", { class: "panel", dataset: { chart: d.id } }, el("h3", null, d.title, d.hint ? el("span", { class: "hint", text: d.hint }) : null), body));
    state.charts[d.id] = new LineChart(body, { id: d.id, events: state.metrics.events });
  }
  const run = clear($("#grid-run"));
  run.append(el("div", { class: "panel" }, el("h3", null, "Config", el("span", { class: "hint", text: "run.json" })), el("div", { id: "cfg" })));
  run.append(el("div", { class: "panel" }, el("h3", null, "Run"), el("div", { id: "details" })));
  state.built = true;
}

function card(label, value, sub, progress) {
  const c = el("div", { class: "card", dataset: { card: label } }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value }), el("div", { class: "sub", text: sub || "\u00a0" }));
  if (progress != null) c.append(el("div", { class: "progress" }, el("div", { style: { width: `${Math.min(100, Math.max(0, progress * 100))}%` } })));
  return c;
}

function lastOf(key) {
  const s = state.metrics.get(key);
  if (!s) return null;
  for (let i = s.y.length - 1; i >= 0; i--) if (isNum(s.y[i])) return { x: s.x[i], y: s.y[i] };
  return null;
}

function render() {
  if (!state.built) build();
  const m = state.meta, cfg = m.config || {};
  const last = state.metrics.last;
  const st = clear($("#statusline"));
  st.append(el("span", { class: "name", text: state.run }), statusBadge(m.status));
  if (m.model) st.append(el("span", { text: m.model }));
  if (m.started_at) st.append(el("span", { text: "started " + fmtTime(m.started_at) }));
  if (state.corrupt) st.append(el("span", { class: "badge warn", id: "corrupt-badge" }, `${state.corrupt} corrupt line${state.corrupt > 1 ? "s" : ""} skipped`));

  let progress = null, progSub = "";
  if (isNum(cfg.max_steps) && cfg.max_steps > 0 && isNum(last.step)) { progress = last.step / cfg.max_steps; progSub = `step ${fmtNum(last.step)} of ${fmtNum(cfg.max_steps)}`; }
  else {
    // run.json's config is sft.config.SFTTrainConfig (`epochs`); TRL's own name is num_train_epochs
    const epochs = isNum(cfg.epochs) ? cfg.epochs : cfg.num_train_epochs;
    if (isNum(epochs) && epochs > 0 && isNum(last.epoch)) { progress = last.epoch / epochs; progSub = `epoch ${last.epoch.toFixed(2)} of ${epochs}`; }
  }
  const t = state.metrics.get("time");
  let elapsed = null, eta = "";
  if (t && t.y.length) {
    const ys = t.y.filter(isNum);
    if (ys.length) elapsed = m.started_at ? ys[ys.length - 1] - Date.parse(m.started_at) / 1000 : ys[ys.length - 1] - ys[0];
    if (progress && progress > 0 && progress < 1 && elapsed > 0 && m.status === "running") eta = "ETA " + fmtDur((elapsed * (1 - progress)) / progress);
  }
  const tl = lastOf("loss"), el2 = lastOf("eval_loss");
  clear($("#cards")).append(
    card("Progress", progress != null ? fmtPct(progress) : "—", progSub || "max_steps / num_train_epochs unknown", progress),
    card("Step", isNum(last.step) ? fmtNum(last.step) : "—", isNum(last.epoch) ? `epoch ${last.epoch.toFixed(3)}` : ""),
    card("Train loss", tl ? fmtNum(tl.y, 4) : "—", tl ? `at step ${fmtNum(tl.x)}` : ""),
    card("Eval loss", el2 ? fmtNum(el2.y, 4) : "—", el2 ? `at step ${fmtNum(el2.x)}` : "no eval yet"),
    card("Learning rate", fmtNum(last.learning_rate), isNum(last.grad_norm) ? `grad norm ${fmtNum(last.grad_norm, 3)}` : ""),
    card("Elapsed", fmtDur(elapsed), eta || (m.status && m.status !== "running" ? m.status : "")),
  );
  for (const d of CHARTS) {
    const c = state.charts[d.id];
    c.events = state.metrics.events;
    c.update(d.lines().filter(Boolean), d.smooth === false ? 0 : state.smoothing);
  }
  const cfgBox = clear($("#cfg"));
  cfgBox.append(Object.keys(cfg).length ? el("div", { class: "scroll" }, kvTable(cfg)) : el("div", { class: "nodata", text: "no config in run.json" }));
  clear($("#details")).append(el("div", { class: "scroll" }, kvTable({
    run_name: m.run_name ?? state.run, status: m.status, model: m.model, dataset: m.dataset, started_at: fmtTime(m.started_at),
    finished_at: m.finished_at ? fmtTime(m.finished_at) : null, git_commit: m.git_commit, "corrupt lines skipped": state.corrupt,
  })));
}
function scheduleRender() {
  if (state.renderTimer) return;
  state.renderTimer = setTimeout(() => { state.renderTimer = null; render(); }, 120);
}

function showEmpty(msg) {
  $("#content").classList.add("hidden");
  $("#empty").classList.remove("hidden");
  $("#empty-msg").textContent = msg;
}

async function loadRun(name) {
  if (state.stream) { state.stream.stop(); state.stream = null; }
  let info, m;
  try {
    [info, m] = await Promise.all([api(`/api/${KIND}/runs/${encodeURIComponent(name)}`), api(`/api/${KIND}/runs/${encodeURIComponent(name)}/metrics`)]);
  } catch (e) {
    showEmpty(`Could not load run “${name}”: ${e.message}`);
    startStream(state.follow ? "latest" : name, {});
    return;
  }
  state.run = info.run;
  state.meta = info.meta || {};
  state.metrics.load(m);
  state.corrupt = m.corrupt;
  $("#empty").classList.add("hidden");
  $("#content").classList.remove("hidden");
  render();
  clearTimeout(state.sampleTimer);
  if (m.sampled) state.sampleTimer = setTimeout(() => { if (state.run === info.run) loadRun(info.run); }, 1500);
  startStream(state.follow ? "latest" : info.run, { [`${info.run}/metrics`]: [m.pos.ino, m.pos.offset] });
}

function startStream(run, positions) {
  if (state.stream) state.stream.stop();
  state.stream = new LiveStream({
    kind: KIND, runs: [run], files: ["metrics"], positions,
    onLines: (d) => {
      if (d.run !== state.run) return;
      for (const r of d.records || []) state.metrics.append(r);
      state.corrupt = Math.max(state.corrupt, d.corrupt || 0);
      scheduleRender();
    },
    onReset: (d) => { if (d.run === state.run) { toast(`metrics.jsonl was ${d.reason} — reloaded`); loadRun(state.run); } },
    onRuns: (d, hello) => {
      fillRunPicker($("#run-select"), d.runs, d.latest, state.run, state.follow);
      const cur = d.runs.find((r) => r.name === state.run);
      if (cur && !hello && cur.status !== state.meta.status) api(`/api/${KIND}/runs/${encodeURIComponent(state.run)}`).then((i) => { state.meta = i.meta || {}; scheduleRender(); });
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
    render();
  });
  window.addEventListener("themechange", () => { state.built = false; render(); });
  const param = getParam("run");
  state.follow = !param;
  const picker = $("#run-select");
  picker.addEventListener("change", () => {
    state.follow = !picker.value;
    setParams({ run: picker.value || null });
    api(`/api/${KIND}/runs`).then((r) => loadRun(picker.value || r.latest)).catch(() => {});
  });
  let runs;
  try { runs = await api(`/api/${KIND}/runs`); } catch (e) { setLive("", "offline"); showEmpty(e.message); return; }
  fillRunPicker(picker, runs.runs, runs.latest, param, state.follow);
  const target = param || runs.latest;
  if (!target) { showEmpty(`Waiting for a run to appear in ${runs.runs_dir} …`); startStream("latest", {}); return; }
  await loadRun(target);
}

init();
