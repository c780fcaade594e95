"""Jinja2 templates of report.html and compare.html (kept in Python so they ship with the package).

Autoescaping is on (eval.report builds the environment): model text is always escaped. No external
asset is referenced: the pages open from disk, offline, years later.
"""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.muted { color: #666; } .warn { background: #fff3cd; border: 1px solid #e0c36c; padding: 8px 12px; border-radius: 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 10px 14px; min-width: 120px; }
.card b { display: block; font-size: 22px; } .card span { color: #666; font-size: 12px; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #e2e2e2; padding: 3px 8px; text-align: left; }
th { background: #f0f0f0; font-weight: 600; } td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
.bar { height: 14px; background: #eee; border-radius: 3px; min-width: 220px; position: relative; }
.bar > i { display: block; height: 100%; border-radius: 3px; }
.chip { display: inline-block; min-width: 12px; height: 14px; border-radius: 3px; margin-right: 2px; color: #fff;
        font-size: 10px; line-height: 14px; padding: 0 3px; vertical-align: middle; }
details.problem { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; margin: 4px 0; }
details.problem > summary { cursor: pointer; padding: 5px 10px; display: grid; align-items: center;
        grid-template-columns: minmax(220px, 2fr) 80px 70px 80px 90px 3fr; gap: 8px; }
details.problem[open] > summary { border-bottom: 1px solid #e2e2e2; }
.problem-body { padding: 8px 12px; } .sample { border-left: 4px solid #ccc; margin: 10px 0; padding: 2px 10px; }
pre { background: #f6f8fa; border: 1px solid #e2e2e2; padding: 8px; overflow-x: auto; white-space: pre-wrap;
      word-break: break-word; max-height: 420px; margin: 4px 0; font-size: 12.5px; }
pre.error { background: #fff5f5; border-color: #f1c0c0; }
.kv td:first-child { color: #555; } .legend span { margin-right: 12px; }
.filters { margin: 8px 0; } .filters input, .filters select { font: inherit; padding: 2px 6px; }
.chart svg { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 6px 0; }
.chart text { font-size: 11px; fill: #555; }
"""

RUN_TEMPLATE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>eval {{ name }}</title>
<style>"""
    + CSS
    + """</style></head>
<body>
<h1>Evaluation {{ name }}</h1>
<div class="muted">model <b>{{ model.spec or settings.model }}</b> ({{ model.backend or settings.backend }})
 · data {{ data.source }} ({{ data.split }}) · {{ summary.started }}{% if summary.finished %} → {{ summary.finished }}{% endif %}</div>
{% if summary.status != "complete" %}
<p class="warn">Status: <b>{{ summary.status }}</b>{% if summary.error %}: {{ summary.error }}{% endif %}.
 The numbers below cover the {{ counts.problems_done or 0 }} problems finished so far.</p>
{% endif %}

<div class="cards">
{% for k in ks %}<div class="card"><b>{{ metrics.get("pass@" ~ k) | pct }}</b><span>pass@{{ k }}</span></div>{% endfor %}
<div class="card"><b>{{ metrics.mean_reward | num }}</b><span>mean reward</span></div>
<div class="card"><b>{{ metrics.problems or 0 }}</b><span>problems scored</span></div>
<div class="card"><b>{{ metrics.samples or 0 }}</b><span>samples (n={{ settings.n }})</span></div>
<div class="card"><b>{{ invalid | length }}</b><span>invalid problems (excluded)</span></div>
<div class="card"><b>{{ metrics.infra_errors or 0 }}</b><span>infrastructure errors</span></div>
<div class="card"><b>{{ metrics.truncated or 0 }}</b><span>hit max tokens</span></div>
</div>

<h2>Funnel</h2>
<table>
<tr><th>level</th><th>meaning</th><th class="r">samples</th><th class="r">rate</th><th class="r">lost here</th><th></th></tr>
{% for f in metrics.funnel or [] %}
<tr><td>{{ f.level }}</td><td class="muted">{{ f.meaning }}</td><td class="r">{{ f.reached }}</td>
<td class="r">{{ f.rate | pct }}</td><td class="r">{{ f.dropped }}</td>
<td><div class="bar"><i style="width: {{ '%.2f' % (100 * (f.rate or 0)) }}%; background: #2e7dba"></i></div></td></tr>
{% endfor %}
</table>

{% if summary.repair %}
{% set rep = summary.repair %}
<h2 id="self-repair">Self-repair ({{ rep.max_repairs }} round{{ "s" if rep.max_repairs != 1 }}, feedback: {{ rep.feedback }})</h2>
<p class="muted">After a failing answer the model read the check's verdict on it (the compiler's error{% if rep.feedback == "examples" %}, or which of
the prompt's visible examples failed{% endif %}; never the hidden tests) and tried again, up to {{ rep.max_repairs }} time(s); a
sample that passed stopped. After k repairs each sample counts with its latest answer at turn ≤ k. pass@1 and mean
reward are means over problems; intervals are 95 % bootstrap over problems. The metrics above are turn 0's.</p>
<div class="chart">{{ repair_chart }}</div>
<table>
<tr><th class="r">repairs</th><th class="r">pass@1</th><th>95% interval</th><th class="r">mean reward</th><th>95% interval</th>
<th class="r">passing</th><th class="r">samples repaired</th><th class="r">newly passing</th><th></th></tr>
{% for c in rep.curve %}
<tr><td class="r">{{ c.repairs }}</td><td class="r">{{ c["pass@1"] | pct }}</td>
<td class="muted">{% if c["pass@1_ci"] %}{{ c["pass@1_ci"][0] | pct }} – {{ c["pass@1_ci"][1] | pct }}{% endif %}</td>
<td class="r">{{ c.mean_reward | num }}</td>
<td class="muted">{% if c.mean_reward_ci %}{{ c.mean_reward_ci[0] | num }} – {{ c.mean_reward_ci[1] | num }}{% endif %}</td>
<td class="r">{{ c.passing if c.passing is defined else "–" }}/{{ c.samples if c.samples is defined else "–" }}</td>
<td class="r">{{ c.samples_repaired }}</td><td class="r">{{ c.newly_passing }}</td>
<td><div class="bar"><i style="width: {{ '%.2f' % (100 * (c["pass@1"] or 0)) }}%; background: #2e7dba"></i></div></td></tr>
{% endfor %}
</table>
<h3>Funnel after each round</h3>
<table>
<tr><th class="r">repairs</th>{% for f in rep.curve[0].funnel %}<th class="r">{{ f.level }}</th>{% endfor %}</tr>
{% for c in rep.curve %}
<tr><td class="r">{{ c.repairs }}</td>{% for f in c.funnel %}<td class="r">{{ f.reached }} ({{ f.rate | pct }})</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}

<h2>Final stage of each sample</h2>
<table>
<tr><th>stage</th><th class="r">samples</th><th></th></tr>
{% set total = (metrics.stages or {}).values() | sum %}
{% for stage, count in (metrics.stages or {}).items() %}
<tr><td><span class="chip" style="background: {{ stage_colors.get(stage, '#999') }}">&nbsp;</span>{{ stage }}</td>
<td class="r">{{ count }}</td>
<td><div class="bar"><i style="width: {{ '%.2f' % (100 * count / (total or 1)) }}%; background: {{ stage_colors.get(stage, '#999') }}"></i></div></td></tr>
{% endfor %}
</table>

{% macro rates_table(title, groups) %}
<h2>{{ title }}</h2>
<table>
<tr><th></th><th class="r">problems</th><th class="r">samples</th>{% for k in ks %}<th class="r">pass@{{ k }}</th>{% endfor %}<th class="r">mean reward</th></tr>
{% for name, g in groups.items() %}
<tr><td>{{ name }}</td><td class="r">{{ g.problems }}</td><td class="r">{{ g.samples }}</td>
{% for k in ks %}<td class="r">{{ g.get("pass@" ~ k) | pct }}</td>{% endfor %}<td class="r">{{ g.mean_reward | num }}</td></tr>
{% endfor %}
</table>
{% endmacro %}
{{ rates_table("By difficulty", metrics.by_difficulty or {}) }}
{% if metrics.by_tag %}{{ rates_table("By tag", metrics.by_tag) }}{% endif %}

<h2>Error classes (samples that did not pass)</h2>
{% if metrics.error_classes %}
<table>
<tr><th>class</th><th class="r">samples</th></tr>
{% for name, count in metrics.error_classes.items() %}<tr><td>{{ name }}</td><td class="r">{{ count }}</td></tr>{% endfor %}
</table>
{% else %}<p class="muted">none</p>{% endif %}

<h2>Invalid problems ({{ invalid | length }})</h2>
{% if invalid %}
<p class="muted">No answer can pass these (their tests do not compile against their own signature). They were not
generated for and are excluded from every rate: they are not model failures.</p>
<table><tr><th>problem</th><th>why</th></tr>
{% for p in invalid %}<tr><td>{{ p.id }}</td><td>{{ p.reason }}</td></tr>{% endfor %}
</table>
{% else %}<p class="muted">none</p>{% endif %}

<h2>Problems</h2>
<div class="filters">filter: <input id="q" placeholder="problem id or tag">
<select id="st"><option value="">any majority stage</option>
{% for stage in stage_colors %}<option>{{ stage }}</option>{% endfor %}</select>
<span class="legend">{% for stage, color in stage_colors.items() %}<span><span class="chip" style="background: {{ color }}">&nbsp;</span>{{ stage }}</span>{% endfor %}</span></div>
<div class="muted" style="display: grid; grid-template-columns: minmax(220px, 2fr) 80px 70px 80px 90px 3fr; gap: 8px; padding: 0 22px;">
<span>problem</span><span>difficulty</span><span>passed</span><span>pass@1</span><span>mean reward</span><span>samples</span></div>
{% for p in per_problem %}
<details class="problem" id="p-{{ p.id }}" data-key="{{ p.id }} {{ p.tags | join(' ') }}" data-stage="{{ p.majority_stage }}">
<summary><span><b>{{ p.id }}</b>{% if p.tags %} <span class="muted">{{ p.tags | join(', ') }}</span>{% endif %}</span>
<span>{{ p.difficulty or "–" }}</span><span>{{ p.passed }}/{{ p.n }}</span><span>{{ p.get("pass@1") | pct(0) }}</span>
<span>{{ p.mean_reward | num }}</span>
<span>{% for s in samples.get(p.id, []) %}<span class="chip" title="sample {{ s.sample }}: {{ s.stage }}" style="background: {{ stage_colors.get(s.stage, '#999') }}">{{ s.sample }}</span>{% for t in repairs.get((p.id, s.sample), []) %}<span class="chip" title="sample {{ s.sample }}, repair {{ t.turn }}: {{ t.stage }}" style="background: {{ stage_colors.get(t.stage, '#999') }}">↻{{ t.turn }}</span>{% endfor %}{% endfor %}</span>
</summary>
<div class="problem-body">
<div class="muted">prompt</div><pre>{{ prompts.get(p.id, "") }}</pre>
{% for s in samples.get(p.id, []) %}
<div class="sample" style="border-left-color: {{ stage_colors.get(s.stage, '#999') }}">
<b>sample {{ s.sample }}</b>: {{ s.stage }} · reward {{ s.total_reward | num }} · tests {{ s.tests_passed }}/{{ s.tests_total }}
 · {{ s.completion_tokens if s.completion_tokens is not none else "?" }} tokens ({{ s.finish_reason or "?" }}) · {{ s.gen_seconds | num(2) }} s
{% if s.is_degenerate %} · degenerate: {{ s.degenerate_reasons | join(", ") }}{% endif %}
{% if s.style_penalty %} · style −{{ s.style_penalty }} ({{ s.style_reasons | join(", ") }}){% endif %}
{% if s.error %}<pre class="error">{{ s.error }}</pre>{% endif %}
<details><summary>completion ({{ s.completion | length }} characters)</summary><pre>{{ s.completion }}</pre>
{% if s.scored_text is defined and s.scored_text is not none %}<div class="muted">scored after the MultiPL-E stop tokens:</div><pre>{{ s.scored_text }}</pre>{% endif %}
</details>
{% for t in repairs.get((p.id, s.sample), []) %}
<div class="sample" style="border-left-color: {{ stage_colors.get(t.stage, '#999') }}">
<b>repair {{ t.turn }}</b>: {{ t.stage }} · reward {{ t.total_reward | num }} · tests {{ t.tests_passed }}/{{ t.tests_total }}
 · {{ t.completion_tokens if t.completion_tokens is not none else "?" }} tokens ({{ t.finish_reason or "?" }})
<div class="muted">the feedback it was shown on its previous answer:</div><pre>{{ t.feedback }}</pre>
{% if t.error %}<pre class="error">{{ t.error }}</pre>{% endif %}
<details><summary>completion ({{ t.completion | length }} characters)</summary><pre>{{ t.completion }}</pre></details>
</div>
{% endfor %}
</div>
{% endfor %}
</div>
</details>
{% endfor %}

<h2>Settings</h2>
<table class="kv">
{% for key, value in settings.items() %}<tr><td>{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
{% for key, value in model.items() %}<tr><td>model.{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
{% for key, value in data.items() %}<tr><td>data.{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
{% for key, value in timing.items() %}<tr><td>timing.{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
{% for key, value in (summary.versions or {}).items() %}<tr><td>version.{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}
<tr><td>git commit</td><td>{{ summary.git_commit or "–" }}</td></tr>
</table>

<script>
(function () {
  var q = document.getElementById("q"), st = document.getElementById("st");
  function apply() {
    var text = q.value.toLowerCase(), stage = st.value;
    document.querySelectorAll("details.problem").forEach(function (d) {
      var ok = d.dataset.key.toLowerCase().indexOf(text) >= 0 && (!stage || d.dataset.stage === stage);
      d.style.display = ok ? "" : "none";
    });
  }
  q.addEventListener("input", apply); st.addEventListener("change", apply);
})();
</script>
</body></html>
"""
)

COMPARE_TEMPLATE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>compare {{ c.a.name }} vs {{ c.b.name }}</title>
<style>"""
    + CSS
    + """ td.up { color: #1e7b3a; } td.down { color: #b3261e; }</style></head>
<body>
<h1>A: {{ c.a.name }} &nbsp;vs&nbsp; B: {{ c.b.name }}</h1>
<div class="muted">A = {{ c.a.model }} · B = {{ c.b.model }} · {{ c.common_problems }} problems in common
{% if c.only_a or c.only_b %}({{ c.only_a | length }} only in A, {{ c.only_b | length }} only in B: left out){% endif %}</div>
{% for w in c.warnings %}<p class="warn">{{ w }}</p>{% endfor %}

{% macro trend(r) %}{% if r.higher_is_better and r.delta %}{{ 'up' if r.delta > 0 else 'down' }}{% endif %}{% endmacro %}
<h2>Rates</h2>
<table>
<tr><th>metric</th><th class="r">A</th><th class="r">B</th><th class="r">B − A</th><th class="r">95 % interval of B − A</th></tr>
{% for r in c.rates %}{% set ci = r.delta_interval %}
<tr><td>{{ r.metric }}</td>
{% if r.kind == "rate" %}<td class="r">{{ r.a | pct }}</td><td class="r">{{ r.b | pct }}</td>
<td class="r {{ trend(r) }}">{{ r.delta | delta }}</td>
<td class="r muted">{% if ci %}[{{ ci.low | delta }}, {{ ci.high | delta }}]{% endif %}</td>
{% else %}<td class="r">{{ r.a | num }}</td><td class="r">{{ r.b | num }}</td>
<td class="r {{ trend(r) }}">{{ r.delta | delta(3, false) }}</td>
<td class="r muted">{% if ci %}[{{ ci.low | delta(3, false) }}, {{ ci.high | delta(3, false) }}]{% endif %}</td>{% endif %}
</tr>
{% endfor %}
</table>
<p class="muted">Intervals: paired bootstrap over the {{ c.common_problems }} common problems
({{ c.samples_per_problem.a }} sample(s) per problem in A, {{ c.samples_per_problem.b }} in B).
{% if c.reward_ratio %}Mean reward B / A: {{ "%.2f" | format(c.reward_ratio.estimate) }}×, 95 % interval
[{{ "%.2f" | format(c.reward_ratio.low) }}×, {{ "%.2f" | format(c.reward_ratio.high) }}×].{% endif %}</p>

{% if c.repair %}
<h2>Self-repair curves</h2>
{% if c.repair.note %}<p class="muted">{{ c.repair.note }}</p>
{% else %}
<p class="muted">Feedback A: {{ c.repair.feedback.a }}, B: {{ c.repair.feedback.b }}. After k repairs each sample counts
with its latest answer; B − A with a 95 % paired bootstrap interval over the common problems.</p>
{% for n in c.repair.notes or [] %}<p class="warn">{{ n }}</p>{% endfor %}
<table>
<tr><th class="r">repairs</th><th class="r">pass@1 A</th><th class="r">B</th><th class="r">B − A</th><th class="r">95 % interval</th>
<th class="r">mean reward A</th><th class="r">B</th><th class="r">B − A</th><th class="r">95 % interval</th></tr>
{% for p in c.repair.curve %}{% set p1 = p["pass@1"] %}{% set mr = p.mean_reward %}
<tr><td class="r">{{ p.repairs }}</td><td class="r">{{ p1.a | pct }}</td><td class="r">{{ p1.b | pct }}</td>
<td class="r">{{ p1.delta | delta }}</td><td class="r muted">[{{ p1.delta_interval[0] | delta }}, {{ p1.delta_interval[1] | delta }}]</td>
<td class="r">{{ mr.a | num }}</td><td class="r">{{ mr.b | num }}</td><td class="r">{{ mr.delta | delta(3, false) }}</td>
<td class="r muted">[{{ mr.delta_interval[0] | delta(3, false) }}, {{ mr.delta_interval[1] | delta(3, false) }}]</td></tr>
{% endfor %}
</table>
{% endif %}
{% endif %}

<h2>Stage transitions (A's majority stage → B's)</h2>
<table>
<tr><th>A \\ B</th>{% for s in c.transition_stages %}<th class="r">{{ s }}</th>{% endfor %}</tr>
{% for a in c.transition_stages %}
<tr><th>{{ a }}</th>{% for b in c.transition_stages %}<td class="r"{% if a == b %} style="background: #f3f3f3"{% endif %}>{{ c.transitions.get(a, {}).get(b, 0) or "" }}</td>{% endfor %}</tr>
{% endfor %}
</table>

{% for title, items in [("Improved in B", c.improved), ("Regressed in B", c.regressed)] %}
<h2>{{ title }} ({{ items | length }})</h2>
{% if items %}
<table><tr><th>problem</th><th class="r">A passed</th><th class="r">B passed</th><th class="r">A reward</th><th class="r">B reward</th><th>A stage</th><th>B stage</th></tr>
{% for p in items %}
<tr><td>{{ p.id }}</td><td class="r">{{ p.a_passed }}/{{ p.a_n }}</td><td class="r">{{ p.b_passed }}/{{ p.b_n }}</td>
<td class="r">{{ p.a_reward | num }}</td><td class="r">{{ p.b_reward | num }}</td><td>{{ p.a_stage }}</td><td>{{ p.b_stage }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="muted">none</p>{% endif %}
{% endfor %}
</body></html>
"""
)
