"""report.html: one self-contained page per eval run (inline CSS and a few lines of inline JS; no CDN,
no external assets). Every piece of model or data text goes through Jinja2's autoescaping, so a
completion holding `<script>` or `</pre>` is shown, never run.

Rendered from the run's own files (summary.json + results.jsonl), so it can be rebuilt at any time:
`python -m eval.report <run dir>`.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

import jinja2
from markupsafe import Markup

from .outputs import LoadedRun, load_run
from .report_template import COMPARE_TEMPLATE, RUN_TEMPLATE

STAGE_COLORS = {
    "pass": "#2e9d4f",
    "test_failure": "#e0a100",
    "compile_error": "#e07b00",
    "type_error": "#d4522a",
    "syntax_error": "#b3261e",
    "timeout": "#7b5ea7",
    "empty": "#8a8a8a",
    "infra_error": "#3b6fb6",
}


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _delta(value: float | None, digits: int = 1, percent: bool = True) -> str:
    if value is None:
        return "–"
    v = 100 * value if percent else value
    return f"{v:+.{digits}f}{' pp' if percent else ''}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, trim_blocks=True)
    env.filters.update(pct=_pct, num=_num, delta=_delta)
    env.globals["stage_colors"] = STAGE_COLORS
    return env


def render_report(run: LoadedRun) -> str:
    """The report of a run (finished or not) as one HTML string."""
    summary = run.summary
    metrics = summary.get("metrics") or {}
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in run.rows:
        samples[row["problem_id"]].append(row)
    for rows in samples.values():
        rows.sort(key=lambda r: r.get("sample", 0))
    prompts = {p["id"]: p.get("prompt", "") for p in summary.get("problems", [])}
    ks = (summary.get("settings") or {}).get("ks") or [1]
    repairs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in run.repairs:
        repairs[(row["problem_id"], row["sample"])].append(row)
    for turns in repairs.values():
        turns.sort(key=lambda r: r["turn"])
    curve = (summary.get("repair") or {}).get("curve") or []
    return (
        _environment()
        .from_string(RUN_TEMPLATE)
        .render(
            name=run.name,
            summary=summary,
            settings=summary.get("settings") or {},
            model=summary.get("model") or {},
            data=summary.get("data") or {},
            counts=summary.get("counts") or {},
            timing=summary.get("timing") or {},
            metrics=metrics,
            ks=ks,
            per_problem=metrics.get("per_problem") or [],
            samples=samples,
            prompts=prompts,
            invalid=summary.get("invalid_problems") or [],
            repairs=dict(repairs),
            repair_chart=repair_chart(curve) if curve else "",
        )
    )


CHART_SERIES = (("pass@1", "pass@1", "#2e7dba"), ("mean_reward", "mean reward", "#e07b00"))


def repair_chart(curve: list[dict[str, Any]], width: int = 520, height: int = 240) -> Markup:
    """The self-repair curve as an inline SVG: pass@1 and mean reward (both in [0, 1]) against the
    number of repairs, each point with its 95 % interval as a bar. Built from numbers only."""
    left, right, top, bottom = 44, 130, 14, 34
    w, h = width - left - right, height - top - bottom
    last = max(1, len(curve) - 1)

    def x(k: float) -> float:
        return left + w * k / last

    def y(v: float) -> float:
        return top + h * (1 - max(0.0, min(1.0, v)))

    parts = [
        f'<svg width="{width}" height="{height}" role="img" '
        f'aria-label="pass@1 and mean reward after 0 to {last} repairs">'
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    for i, point in enumerate(curve):
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + h + 16}" text-anchor="middle">{int(point.get("repairs", i))}</text>'
        )
    parts.append(f'<text x="{left + w / 2:.1f}" y="{height - 4}" text-anchor="middle">repairs</text>')
    for n, (key, label, color) in enumerate(CHART_SERIES):
        pts = [(i, float(p[key])) for i, p in enumerate(curve) if p.get(key) is not None]
        if pts:
            line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pts)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in pts:
            ci = curve[i].get(f"{key}_ci")
            if ci and ci[0] is not None and ci[1] is not None:
                parts.append(
                    f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(float(ci[0])):.1f}" '
                    f'y2="{y(float(ci[1])):.1f}" stroke="{color}" stroke-opacity="0.45" stroke-width="5"/>'
                )
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}"/>')
        ly = top + 10 + 18 * n
        parts.append(
            f'<line x1="{left + w + 14}" x2="{left + w + 32}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/>'
            f'<text x="{left + w + 38}" y="{ly + 4}">{label}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def render_compare(comparison: dict[str, Any]) -> str:
    """compare.html from the dict that eval.compare writes as compare.json."""
    return _environment().from_string(COMPARE_TEMPLATE).render(c=comparison)


def main(argv: list[str] | None = None) -> int:
    """Rebuild report.html of the runs given on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m eval.report <eval run dir> [...]", file=sys.stderr)
        return 2
    for spec in args:
        run = load_run(spec)
        (run.path / "report.html").write_text(render_report(run), encoding="utf-8")
        print(run.path / "report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
