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
        )
    )


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
