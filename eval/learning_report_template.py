"""The Jinja2 template of a pipeline's report.html (eval.learning_report renders it, autoescaped).

Self-contained: inline CSS and inline SVG charts, no script and no external asset.
"""

from .report_template import CSS

TEMPLATE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>learning report {{ s.pipeline }}</title>
<style>"""
    + CSS
    + """
.goal-met { color: #2e7d32; font-weight: 600; } .goal-missed { color: #b3261e; font-weight: 600; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
.panel { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 10px 14px; }
.legend i { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 4px; }
td.up { color: #2e7d32; } td.down { color: #b3261e; }
</style></head>
<body>
<h1>Learning report: {{ s.pipeline }}</h1>
<p class="muted">base model {{ s.model }} · pipeline status <b>{{ s.status }}</b> ·
{% for p in s.phases %}{{ p.name }} <b>{{ p.status }}</b>{% if p.seconds %} ({{ (p.seconds / 60) | round(1) }} min){% endif %}{% if not loop.last %} → {% endif %}{% endfor %}</p>

{% set main = s.eval.sampled or s.eval.greedy %}
{% set cmp = main.compare.final_vs_base if main else None %}
{% if main and cmp %}
<div class="cards">
  <div class="card"><b>{{ cmp.diff.mean_reward | ci_delta(False) }}</b><span>mean reward, final − base (95% CI)</span></div>
  <div class="card"><b>{% if cmp.reward_ratio %}{{ "%.2f" | format(cmp.reward_ratio.estimate) }}×{% else %}–{% endif %}</b>
    <span>reward ratio{% if cmp.reward_ratio %} [{{ "%.2f" | format(cmp.reward_ratio.low) }}, {{ "%.2f" | format(cmp.reward_ratio.high) }}]{% endif %}</span></div>
  <div class="card"><b>{{ main.models.final.rates["pass@1"] | ci }}</b><span>pass@1 after (base {{ main.models.base.rates["pass@1"].estimate | pct }})</span></div>
  <div class="card"><b>{{ main.models.final.rates.parsed.estimate | pct }}</b><span>parse rate after (base {{ main.models.base.rates.parsed.estimate | pct }})</span></div>
  <div class="card"><b>{{ main.models.final.rates.type_checked.estimate | pct }}</b><span>type-check rate after (base {{ main.models.base.rates.type_checked.estimate | pct }})</span></div>
</div>
<p class="muted">{{ cmp.problems }} held-out problems, {{ main.models.final.samples_per_problem }} sample(s) each at temperature
{{ main.models.final.temperature }}; intervals: paired bootstrap over problems, {{ cmp.diff.mean_reward.resamples }} resamples.</p>
{% endif %}

{% if s.goals %}
<h2>Goals</h2>
<table><tr><th>goal</th><th class="r">reached</th><th class="r">95% CI</th><th></th></tr>
{% for g in s.goals %}<tr><td>{{ g.goal }}</td><td class="r">{{ g.value | num }}</td>
<td class="r">{% if g.interval %}[{{ g.interval[0] | num }}, {{ g.interval[1] | num }}]{% else %}–{% endif %}</td>
<td class="{{ 'goal-met' if g.met else 'goal-missed' }}">{{ 'met' if g.met else 'not met' }}</td></tr>{% endfor %}
</table>
{% endif %}

<h2>Training</h2>
<div class="grid2">
{% if charts.sft %}<div class="panel"><b>SFT loss</b>
 <span class="legend muted"><i style="background:#3b6fb6"></i>train (smoothed) <i style="background:#d4522a"></i>held-out</span>
 {{ charts.sft | safe }}
 {% set t = s.training.sft %}<p class="muted">{{ t.steps }} steps · loss {{ t.loss_first | num }} → {{ t.loss_last | num }}
 {% if t.eval_loss_first is not none %}· held-out loss {{ t.eval_loss_first | num }} → {{ t.eval_loss_last | num }}{% endif %}</p></div>{% endif %}
{% if charts.grpo_reward %}<div class="panel"><b>GRPO reward</b>
 <span class="legend muted"><i style="background:#c9d6ea"></i>per step <i style="background:#2e9d4f"></i>smoothed</span>
 {{ charts.grpo_reward | safe }}
 {% set t = s.training.grpo %}<p class="muted">{{ t.steps }} steps · reward {{ t.reward_first5 | num }} (first 5) → {{ t.reward_last5 | num }} (last 5)
 · {{ t.step_time_mean | num(1) }} s / step</p></div>
<div class="panel"><b>GRPO groups with zero reward variance</b> (no gradient from them)
 {{ charts.grpo_zero | safe }}
 <p class="muted">mean frac_reward_zero_std {{ s.training.grpo.frac_reward_zero_std_mean | num }}
 {% if s.training.grpo.no_signal_warnings %}· <b>{{ s.training.grpo.no_signal_warnings }} no-signal warning(s)</b>{% endif %}</p></div>{% endif %}
</div>

{% for mode in modes %}{% set block = s.eval[mode] %}{% if block %}
{% set first = block.models[(block.models | list)[0]] %}
<h2>Held-out evaluation, {{ mode }}{% if mode == "sampled" %} ({{ first.samples_per_problem }} samples per problem at temperature {{ first.temperature }}){% else %} (one greedy answer per problem){% endif %}</h2>
<h3>Stage funnel</h3>
<table><tr><th>level</th>{% for m in models %}{% if block.models[m] %}<th class="r">{{ m }}</th>{% endif %}{% endfor %}
{% if block.compare.final_vs_base %}<th class="r">final − base (95% CI)</th>{% endif %}</tr>
{% for level in ["parsed", "type_checked", "compiled", "some_tests", "pass@1"] %}<tr><td>{{ level }}</td>
{% for m in models %}{% if block.models[m] %}<td class="r">{{ block.models[m].rates[level].estimate | pct }}
<div class="bar"><i style="width: {{ 100 * block.models[m].rates[level].estimate }}%; background: #3b6fb6"></i></div></td>{% endif %}{% endfor %}
{% if block.compare.final_vs_base %}{% set d = block.compare.final_vs_base.diff[level] %}
<td class="r {{ 'up' if d.low > 0 else ('down' if d.high < 0 else '') }}">{{ d | ci_delta }}</td>{% endif %}</tr>{% endfor %}
<tr><td>mean reward</td>{% for m in models %}{% if block.models[m] %}<td class="r">{{ block.models[m].rates.mean_reward | ci(False) }}</td>{% endif %}{% endfor %}
{% if block.compare.final_vs_base %}{% set d = block.compare.final_vs_base.diff.mean_reward %}
<td class="r {{ 'up' if d.low > 0 else ('down' if d.high < 0 else '') }}">{{ d | ci_delta(False) }}</td>{% endif %}</tr>
<tr><td>truncated at max tokens</td>{% for m in models %}{% if block.models[m] %}<td class="r">{{ block.models[m].truncated | pct }}</td>{% endif %}{% endfor %}</tr>
</table>

<h3>By difficulty</h3>
{% set kmax = (first.pass_at_k | list | last) if first.pass_at_k else None %}
<table><tr><th>difficulty</th><th class="r">problems</th>{% for m in models %}{% if block.models[m] %}<th class="r">{{ m }} pass@1</th>{% if kmax %}<th class="r">{{ m }} {{ kmax }}</th>{% endif %}<th class="r">{{ m }} mean reward</th>{% endif %}{% endfor %}</tr>
{% for diff, row in first.by_difficulty.items() %}<tr><td>{{ diff }}</td><td class="r">{{ row.problems }}</td>
{% for m in models %}{% if block.models[m] %}{% set r = block.models[m].by_difficulty[diff] %}
<td class="r">{{ r["pass@1"] | ci }}</td>{% if kmax %}<td class="r">{{ r.pass_at_k[kmax] | ci }}</td>{% endif %}<td class="r">{{ r.mean_reward | ci(False) }}</td>{% endif %}{% endfor %}</tr>{% endfor %}
<tr><td><b>all</b></td><td class="r">{{ first.problems }}</td>
{% for m in models %}{% if block.models[m] %}{% set r = block.models[m] %}
<td class="r">{{ r.rates["pass@1"] | ci }}</td>{% if kmax %}<td class="r">{{ r.pass_at_k[kmax] | ci }}</td>{% endif %}<td class="r">{{ r.rates.mean_reward | ci(False) }}</td>{% endif %}{% endfor %}</tr>
</table>
{% set ks = first.ks %}
<p class="muted">pass@k (unbiased estimator):
{% for m in models %}{% if block.models[m] %}{{ m }}: {% for k in ks %}{{ k }} {{ block.models[m][k] | pct }}{% if not loop.last %}, {% endif %}{% endfor %}{% if not loop.last %} · {% endif %}{% endif %}{% endfor %}</p>

{% for name, c in block.compare.items() %}
<h3>{{ name | replace("_vs_", " vs ") }}: {{ c.improved | length }} improved, {{ c.regressed | length }} regressed (of {{ c.problems }})</h3>
<div class="grid2">
{% for title, items in [("improved", c.improved), ("regressed", c.regressed)] %}<div>
<b>{{ title }}</b>
<table><tr><th>problem</th><th>difficulty</th><th class="r">pass before → after</th><th class="r">reward before → after</th><th>majority stage</th></tr>
{% for e in items[:25] %}<tr><td>{{ e.id }}</td><td>{{ e.difficulty or "" }}</td>
<td class="r">{{ e.before_pass | pct(0) }} → {{ e.after_pass | pct(0) }}</td><td class="r">{{ e.before_reward | num }} → {{ e.after_reward | num }}</td>
<td><span class="chip" style="background: {{ stage_colors.get(e.before_stage, '#999') }}">{{ e.before_stage }}</span> → <span class="chip" style="background: {{ stage_colors.get(e.after_stage, '#999') }}">{{ e.after_stage }}</span></td></tr>
{% else %}<tr><td colspan="5" class="muted">none</td></tr>{% endfor %}
{% if items | length > 25 %}<tr><td colspan="5" class="muted">… and {{ items | length - 25 }} more (summary.json)</td></tr>{% endif %}
</table></div>{% endfor %}
</div>
{% endfor %}
{% endif %}{% endfor %}

<h2>Runs</h2>
<table class="kv">{% for p in s.phases %}{% for k, v in (p.runs or {}).items() %}<tr><td>{{ p.name }} {{ k }}</td><td>{{ v }}</td></tr>{% endfor %}{% endfor %}</table>
</body></html>
"""
)
