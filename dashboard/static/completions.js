// Completions browser: groups of G answers per (step, problem), filters, server-side paging.
import {
  $, api, clear, el, fillRunPicker, fmtNum, getParam, initTheme, isNum, LiveStream, setLive, setParams,
  STAGE_LABELS, STAGES, statusBadge,
} from "./common.js";
import { highlightInto } from "./ocaml.js";

const KIND = "grpo";
const state = {
  run: null,
  follow: true,
  meta: {},
  facets: null,
  result: null,
  newLines: 0,
  stream: null,
  indexTimer: null,
  liveTimer: null,
  reqSeq: 0,
  f: { stages: new Set(), rmin: "", rmax: "", step: "", problem: "", q: "", calls: "", page: 0, pageSize: 10, layout: "cols" },
};

function readFiltersFromUrl() {
  const p = new URLSearchParams(location.search);
  const f = state.f;
  f.stages = new Set((p.get("stage") || "").split(",").filter(Boolean));
  f.rmin = p.get("reward_min") || "";
  f.rmax = p.get("reward_max") || "";
  f.step = p.get("step") || "";
  f.problem = p.get("problem") || "";
  f.q = p.get("q") || "";
  f.calls = p.get("tool_calls_min") ? `${p.get("tool_calls_min")}+` : (p.get("tool_calls") || "");
  f.page = Math.max(0, parseInt(p.get("page") || "1", 10) - 1) || 0;
  f.layout = p.get("layout") === "rows" ? "rows" : "cols";
  $("#f-rmin").value = f.rmin;
  $("#f-rmax").value = f.rmax;
  $("#f-step").value = f.step;
  $("#f-problem").value = f.problem;
  $("#f-q").value = f.q;
  $("#f-layout").value = f.layout;
}

function writeFiltersToUrl() {
  const f = state.f;
  setParams({
    run: state.follow ? null : state.run,
    stage: [...f.stages].join(",") || null,
    reward_min: f.rmin || null,
    reward_max: f.rmax || null,
    step: f.step || null,
    problem: f.problem || null,
    q: f.q || null,
    tool_calls: f.calls && !f.calls.endsWith("+") ? f.calls : null,
    tool_calls_min: f.calls.endsWith("+") ? f.calls.slice(0, -1) : null,
    page: f.page ? String(f.page + 1) : null,
    layout: f.layout === "rows" ? "rows" : null,
  });
}

function filtersActive() {
  const f = state.f;
  return f.stages.size || f.rmin !== "" || f.rmax !== "" || f.step !== "" || f.problem || f.q || f.calls;
}

function queryString() {
  const f = state.f;
  const q = new URLSearchParams();
  if (f.stages.size) q.set("stage", [...f.stages].join(","));
  if (f.rmin !== "") q.set("reward_min", f.rmin);
  if (f.rmax !== "") q.set("reward_max", f.rmax);
  if (f.step !== "") q.set("step", f.step);
  if (f.problem) q.set("problem", f.problem);
  if (f.q) q.set("q", f.q);
  if (f.calls.endsWith("+")) q.set("tool_calls_min", f.calls.slice(0, -1));
  else if (f.calls) q.set("tool_calls", f.calls);
  q.set("page", String(f.page));
  q.set("page_size", String(f.pageSize));
  return q.toString();
}

// ------------------------------------------------------------------ rendering
function renderChips() {
  const box = clear($("#stage-chips"));
  const counts = (state.facets && state.facets.stages) || {};
  for (const s of STAGES) {
    const on = state.f.stages.has(s);
    box.append(
      el("span", {
        class: `st st-${s} chip${on ? " on" : ""}`,
        role: "button",
        tabindex: "0",
        dataset: { stage: s },
        title: on ? "click to remove this filter" : "click to show only groups with this outcome",
        onclick: () => {
          if (state.f.stages.has(s)) state.f.stages.delete(s); else state.f.stages.add(s);
          state.f.page = 0;
          renderChips();
          runQuery();
        },
      }, STAGE_LABELS[s], el("span", { class: "n", text: isNum(counts[s]) ? fmtNum(counts[s]) : "" })),
    );
  }
  if (state.f.stages.size === 0) for (const c of box.children) c.classList.add("on");
}

function renderFacets() {
  const fc = state.facets;
  if (!fc) return;
  const dl = clear($("#problem-list"));
  for (const p of fc.problems || []) dl.append(el("option", { value: p }));
  const step = $("#f-step");
  if (isNum(fc.step_min)) { step.min = fc.step_min; step.max = fc.step_max; step.placeholder = `${fc.step_min}–${fc.step_max}`; }
  // episodes of a multi-turn run (GRPO_ENVIRONMENT): filter by number of tool calls
  const calls = fc.tool_calls || {};
  const box = $("#f-calls-box");
  box.classList.toggle("hidden", Object.keys(calls).length === 0 && !state.f.calls);
  const sel = clear($("#f-calls"));
  sel.append(el("option", { value: "", text: "any" }), el("option", { value: "1+", text: "at least one" }));
  const values = Object.keys(calls).sort((a, b) => a - b);
  for (const n of values) sel.append(el("option", { value: n, text: `${n} (${fmtNum(calls[n])})` }));
  const cur = state.f.calls;
  if (cur && cur !== "1+" && !values.includes(cur)) sel.append(el("option", { value: cur, text: cur.endsWith("+") ? `at least ${cur.slice(0, -1)}` : `${cur} (0)` }));
  sel.value = state.f.calls;
  renderChips();
}

function renderStatus() {
  const line = clear($("#statusline"));
  line.append(el("span", { class: "name", text: state.run }), statusBadge(state.meta.status));
  const idx = state.result && state.result.index;
  if (idx) {
    line.append(el("span", { text: `${fmtNum(idx.rows)} completions indexed` }));
    if (idx.corrupt) line.append(el("span", { class: "badge warn", id: "corrupt-badge" }, `${idx.corrupt} corrupt line${idx.corrupt > 1 ? "s" : ""} skipped`));
  }
}

function renderPager(node) {
  clear(node);
  const r = state.result;
  if (!r) return;
  const pages = Math.max(1, Math.ceil(r.total / r.page_size));
  const go = (p) => { state.f.page = p; runQuery(); window.scrollTo({ top: 0 }); };
  const totalTxt = r.total_exact ? `${fmtNum(r.total)} group${r.total === 1 ? "" : "s"}` : `≥ ${fmtNum(r.total)} groups (searched ${Math.round(100 * (r.search_scanned || 0))}%)`;
  node.append(
    el("span", { class: "count", text: totalTxt }),
    el("span", { text: `page ${r.page + 1} of ${r.total_exact ? fmtNum(pages) : "≥ " + fmtNum(pages)}` }),
    el("button", { type: "button", disabled: r.page === 0, onclick: () => go(0), title: "newest" }, "« newest"),
    el("button", { type: "button", disabled: r.page === 0, onclick: () => go(r.page - 1) }, "‹ prev"),
    el("button", { type: "button", disabled: r.total_exact && r.page + 1 >= pages, onclick: () => go(r.page + 1) }, "next ›"),
    r.total_exact ? el("button", { type: "button", disabled: r.page + 1 >= pages, onclick: () => go(pages - 1), title: "oldest" }, "oldest »") : null,
  );
  if (!r.total_exact) node.append(el("button", { type: "button", onclick: () => runQuery() }, "search further"));
}

function codeBlock(text, cls = "code") {
  const pre = el("pre", { class: cls });
  highlightInto(pre, typeof text === "string" ? text : "");
  return pre;
}

function renderMember(c, dimUnmatched) {
  const stage = typeof c.stage === "string" ? c.stage : "unknown";
  const tests = isNum(c.tests_total) ? `${isNum(c.tests_passed) ? c.tests_passed : 0}/${c.tests_total} tests` : "";
  const node = el("div", { class: `member${dimUnmatched && !c.match ? " dim" : ""}`, dataset: { stage, group: c.group_index ?? "" } },
    el("div", { class: "member-head" },
      el("span", { class: "g", text: `#${c.group_index ?? "?"}` }),
      el("span", { class: `st st-${STAGE_LABELS[stage] ? stage : "unknown"}`, text: STAGE_LABELS[stage] || stage }),
      el("span", { class: "t", text: tests }),
      el("span", { class: "r", title: "reward", text: `r = ${fmtNum(c.reward, 3)}` })),
  );
  if (isNum(c.tool_calls) || Array.isArray(c.conversation)) {
    const n = isNum(c.tool_calls) ? c.tool_calls : 0;
    node.querySelector(".member-head").append(el("span", { class: "calls", title: "tool calls in this episode", text: `${n} tool call${n === 1 ? "" : "s"}` }));
  }
  if (Array.isArray(c.conversation)) {
    const conv = renderConversation(c.conversation, c.completion);
    if (conv.firstChild) node.append(conv);
    const cost = isNum(c.check_cost) && c.check_cost > 0 ? ` (its reward includes −${fmtNum(c.check_cost, 3)} for the checks)` : "";
    node.append(el("div", { class: "turn-label final", text: `final answer${cost}` }));
  }
  const body = codeBlock(c.completion);
  body.classList.add("completion");
  if (!c.completion) body.append(el("span", { class: "tk-com", text: "(empty completion)" }));
  node.append(body);
  const err = c.error;
  node.append(el("pre", { class: err ? "err" : "err none", text: err ? String(err) : "no compiler error" }));
  return node;
}

// A tool call's arguments: an object (TRL's messages), or a JSON string of one (OpenAI style).
function callArguments(call) {
  let args = call && typeof call === "object" ? call.arguments : null;
  if (typeof args === "string") {
    try { args = JSON.parse(args); } catch (_) { return { raw: args }; }
  }
  return args && typeof args === "object" && !Array.isArray(args) ? args : {};
}

// An episode turn by turn: the model's text and tool calls (their code highlighted), then each tool's
// result as the model read it (the compiler's excerpt and carets kept). Everything is text nodes:
// model output never becomes markup. The last turn is left out when it is just the final answer,
// which follows with its verdict.
function renderConversation(turns, completion) {
  const box = el("div", { class: "conversation" });
  const shown = turns.filter((t) => t && typeof t === "object");
  const last = shown[shown.length - 1];
  if (last && last.role !== "tool" && !(Array.isArray(last.tool_calls) && last.tool_calls.length)
      && typeof completion === "string" && String(last.content || "").trim() === completion.trim()) shown.pop();
  let turn = 0;
  for (const t of shown) {
    if (t.role === "tool") {
      box.append(el("div", { class: "turn-label", text: `tool result${t.name ? ` (${t.name})` : ""}` }),
        el("pre", { class: "tool-result", text: typeof t.content === "string" ? t.content : JSON.stringify(t.content) }));
      continue;
    }
    turn += 1;
    box.append(el("div", { class: "turn-label", text: `${t.role === "assistant" || !t.role ? "model" : String(t.role)}, turn ${turn}` }));
    if (t.content) box.append(el("pre", { class: "turn-text", text: typeof t.content === "string" ? t.content : JSON.stringify(t.content) }));
    for (const call of Array.isArray(t.tool_calls) ? t.tool_calls : []) {
      const args = callArguments(call);
      const name = call && typeof call === "object" && call.name ? String(call.name) : "?";
      box.append(el("div", { class: "tool-call", text: `calls ${name}(${Object.keys(args).join(", ")})` }));
      if (typeof args.code === "string") box.append(codeBlock(args.code, "code call-code"));
      const rest = Object.fromEntries(Object.entries(args).filter(([k]) => k !== "code"));
      if (Object.keys(rest).length) box.append(el("pre", { class: "turn-text", text: JSON.stringify(rest) }));
    }
  }
  return box;
}

function renderGroups() {
  const box = clear($("#groups"));
  const r = state.result;
  if (!r) return;
  if (!r.groups.length) {
    box.append(el("div", { class: "empty" }, el("strong", { text: r.index && r.index.rows ? "No groups match these filters" : "No completions yet" }), r.index && r.index.rows ? "Try widening the filters." : "completions.jsonl is empty or missing; new completions appear here live."));
    return;
  }
  const dim = filtersActive();
  for (const g of r.groups) {
    const stageCounts = {};
    for (const c of g.completions) stageCounts[c.stage] = (stageCounts[c.stage] || 0) + 1;
    const head = el("div", { class: "group-head" },
      el("span", { class: "meta", text: `step ${fmtNum(g.step)}` }),
      el("span", { class: "pid", text: String(g.problem_id ?? "?") }),
      el("span", { class: "meta", text: `${g.n} completion${g.n === 1 ? "" : "s"} · mean reward ${fmtNum(g.reward_mean, 3)} · max ${fmtNum(g.reward_max, 3)}` }),
      ...Object.entries(stageCounts).map(([s, n]) => el("span", { class: `st st-${STAGE_LABELS[s] ? s : "unknown"}`, text: `${n}× ${STAGE_LABELS[s] || s}` })),
    );
    const prompt = el("details", { class: "prompt" }, el("summary", { text: "Prompt" }), codeBlock(g.prompt));
    const members = el("div", { class: `members${state.f.layout === "rows" ? " rows" : ""}` });
    for (const c of g.completions) members.append(renderMember(c, dim));
    box.append(el("section", { class: "group", dataset: { step: g.step, problem: g.problem_id } }, head, prompt, members));
  }
}

function renderIndexBanner() {
  const b = $("#banner-index");
  const idx = state.result && state.result.index;
  if (idx && !idx.complete) {
    const pct = idx.total_bytes ? Math.round((100 * idx.indexed_bytes) / idx.total_bytes) : 0;
    b.textContent = `Indexing older completions… ${pct}% (newest steps are ready; totals grow as indexing proceeds)`;
    b.classList.remove("hidden");
  } else b.classList.add("hidden");
}

function renderNewBanner() {
  const b = $("#banner-new");
  if (state.newLines > 0) {
    $("#banner-new-txt").textContent = `${fmtNum(state.newLines)} new completion${state.newLines === 1 ? "" : "s"} since this page loaded`;
    b.classList.remove("hidden");
  } else b.classList.add("hidden");
}

// ------------------------------------------------------------------ loading
async function runQuery() {
  writeFiltersToUrl();
  const seq = ++state.reqSeq;
  let r;
  try {
    r = await api(`/api/${KIND}/runs/${encodeURIComponent(state.run)}/completions?${queryString()}`);
  } catch (e) {
    if (seq !== state.reqSeq) return;
    clear($("#groups")).append(el("div", { class: "empty" }, el("strong", { text: "Could not load completions" }), e.message));
    return;
  }
  if (seq !== state.reqSeq) return;
  state.result = r;
  state.newLines = 0;
  renderStatus();
  renderPager($("#pager-top"));
  renderPager($("#pager-bottom"));
  renderGroups();
  renderIndexBanner();
  renderNewBanner();
  clearTimeout(state.indexTimer);
  if (r.index && !r.index.complete) {
    state.indexTimer = setTimeout(async () => { await loadFacets(); runQuery(); }, 1500);
  }
  return r;
}

async function loadFacets() {
  try {
    state.facets = await api(`/api/${KIND}/runs/${encodeURIComponent(state.run)}/completions/facets`);
    renderFacets();
  } catch (_) { /* shown by runQuery */ }
}

function showEmpty(msg) {
  $("#content").classList.add("hidden");
  $("#empty").classList.remove("hidden");
  $("#empty-msg").textContent = msg;
}

async function loadRun(name) {
  if (state.stream) { state.stream.stop(); state.stream = null; }
  let info;
  try {
    info = await api(`/api/${KIND}/runs/${encodeURIComponent(name)}`);
  } catch (e) {
    showEmpty(`Could not load run “${name}”: ${e.message}`);
    startStream(state.follow ? "latest" : name, {});
    return;
  }
  state.run = info.run;
  state.meta = info.meta || {};
  $("#empty").classList.add("hidden");
  $("#content").classList.remove("hidden");
  const r = await runQuery();
  loadFacets();
  const pos = r && r.pos ? { [`${info.run}/completions`]: [r.pos.ino, r.pos.offset] } : {};
  startStream(state.follow ? "latest" : info.run, pos);
}

function startStream(run, positions) {
  if (state.stream) state.stream.stop();
  state.stream = new LiveStream({
    kind: KIND,
    runs: [run],
    files: ["completions"],
    positions,
    onLines: (d) => {
      if (d.run !== state.run) return;
      state.newLines += d.new_lines || 0;
      renderNewBanner();
      if ($("#follow").checked && state.f.page === 0) {
        clearTimeout(state.liveTimer);
        state.liveTimer = setTimeout(() => { runQuery(); loadFacets(); }, 300);
      }
    },
    onReset: (d) => { if (d.run === state.run) loadRun(state.run); },
    onRuns: (d) => {
      fillRunPicker($("#run-select"), d.runs, d.latest, state.run, state.follow);
      if (state.follow && d.latest && d.latest !== state.run) loadRun(d.latest);
    },
  });
  state.stream.start();
}

function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

async function init() {
  initTheme();
  readFiltersFromUrl();
  renderChips();
  const onInput = debounce(() => {
    const f = state.f;
    f.rmin = $("#f-rmin").value.trim();
    f.rmax = $("#f-rmax").value.trim();
    f.step = $("#f-step").value.trim();
    f.problem = $("#f-problem").value.trim();
    f.q = $("#f-q").value.trim();
    f.page = 0;
    runQuery();
  }, 350);
  for (const id of ["#f-rmin", "#f-rmax", "#f-step", "#f-problem", "#f-q"]) $(id).addEventListener("input", onInput);
  $("#f-calls").addEventListener("change", () => { state.f.calls = $("#f-calls").value; state.f.page = 0; runQuery(); });
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  $("#f-layout").addEventListener("change", () => { state.f.layout = $("#f-layout").value; writeFiltersToUrl(); renderGroups(); });
  $("#f-reset").addEventListener("click", () => {
    Object.assign(state.f, { stages: new Set(), rmin: "", rmax: "", step: "", problem: "", q: "", calls: "", page: 0 });
    $("#f-calls").value = "";
    for (const id of ["#f-rmin", "#f-rmax", "#f-step", "#f-problem", "#f-q"]) $(id).value = "";
    renderChips();
    runQuery();
  });
  $("#btn-refresh").addEventListener("click", () => { state.f.page = 0; runQuery(); loadFacets(); });
  $("#follow").checked = localStorage.getItem("dash-follow-completions") === "1";
  $("#follow").addEventListener("change", () => localStorage.setItem("dash-follow-completions", $("#follow").checked ? "1" : "0"));

  const param = getParam("run");
  state.follow = !param;
  const picker = $("#run-select");
  picker.addEventListener("change", () => {
    state.follow = !picker.value;
    state.f.page = 0;
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
