"""The learning report of a pipeline: did the model get better at OCaml? (`report.html` + `summary.json`)

Read from the pipeline's own files (pipeline.json, the SFT and GRPO runs' metrics.jsonl, the eval runs'
results.jsonl), so it can be rebuilt at any time: `python -m eval.learning_report <pipeline dir>`.

Every before/after number comes with a 95 % paired bootstrap interval over problems (eval.stats), and
says how many problems and samples it rests on. Rates are per-problem means (each problem weighs the
same whatever its sample count), which equal the pooled rates when every problem has n samples.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from rlvr.runlog import clean

from .metrics import ROW_VALUES, is_scored, majority_stage, per_problem_values, summarize
from .outputs import LoadedRun, RunNotFound, atomic_write, load_run, write_json
from .passk import pass_at_k
from .report import STAGE_COLORS, _delta, _num, _pct
from .stats import Interval, bootstrap_mean, paired_bootstrap, ratio_interval

MODELS = ("base", "sft", "final")
MODES = ("sampled", "greedy")
# the stretch goals for the held-out split (doc/benchmarks.md "Learning")
GOALS = {"reward_ratio": 3.0, "parsed": 0.60, "type_checked": 0.20}
REWARD_EPS = 0.01


def model_metrics(run: LoadedRun, ids: Sequence[str]) -> dict[str, Any]:
    """One model's numbers on the problems `ids`: rates with intervals, overall and by difficulty."""
    values = per_problem_values(run.rows)
    meta = run.problem_meta
    ks = (run.summary.get("settings") or {}).get("ks") or [1]
    rows = [r for r in run.rows if r["problem_id"] in set(ids)]
    full = summarize(rows, meta, ks, problem_order=list(ids))
    out: dict[str, Any] = {
        "run": str(run.path),
        "problems": len(ids),
        "samples": sum(int(values[p]["n"]) for p in ids),
        "samples_per_problem": (run.summary.get("settings") or {}).get("n"),
        "temperature": (run.summary.get("settings") or {}).get("temperature"),
        "truncated": full["truncated"] / max(1, len(rows)),
        "ks": [f"pass@{k}" for k in ks],
        **{f"pass@{k}": full.get(f"pass@{k}") for k in ks},
        "stages": full["stages"],
        "rates": {name: bootstrap_mean([values[p][name] for p in ids]).to_dict() for name in ROW_VALUES},
        "pass_at_k": pass_at_k_intervals(values, ids, ks),
        "by_difficulty": {},
    }
    by_diff: dict[str, list[str]] = defaultdict(list)
    for pid in ids:
        by_diff[(meta.get(pid) or {}).get("difficulty") or "unknown"].append(pid)
    for diff, pids in sorted(by_diff.items(), key=lambda kv: _difficulty_rank(kv[0])):
        out["by_difficulty"][diff] = {
            "problems": len(pids),
            **{
                name: bootstrap_mean([values[p][name] for p in pids]).to_dict()
                for name in ("pass@1", "mean_reward", "type_checked")
            },
            "pass_at_k": pass_at_k_intervals(values, pids, ks),
        }
    return out


def pass_at_k_intervals(
    values: Mapping[str, Mapping[str, float]], ids: Sequence[str], ks: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """pass@k for k > 1 with an interval: the unbiased per-problem estimate, bootstrapped over problems."""
    out = {}
    for k in ks:
        if k == 1 or not ids or any(values[p]["n"] < k for p in ids):
            continue
        per_problem = [
            pass_at_k(int(values[p]["n"]), round(values[p]["pass@1"] * values[p]["n"]), k) for p in ids
        ]
        out[f"pass@{k}"] = bootstrap_mean(per_problem).to_dict()
    return out


def _difficulty_rank(d: str) -> tuple[int, str]:
    order = {"easy": 0, "medium": 1, "hard": 2}
    return (order.get(d, 3), d)


def comparison(before: LoadedRun, after: LoadedRun, ids: Sequence[str]) -> dict[str, Any]:
    """after - before on the common problems: paired intervals, the reward ratio, per-problem changes."""
    vb, va = per_problem_values(before.rows), per_problem_values(after.rows)
    out: dict[str, Any] = {"problems": len(ids), "diff": {}}
    for name in ROW_VALUES:
        out["diff"][name] = paired_bootstrap([vb[p][name] for p in ids], [va[p][name] for p in ids]).to_dict()
    ratio = ratio_interval([vb[p]["mean_reward"] for p in ids], [va[p]["mean_reward"] for p in ids])
    out["reward_ratio"] = ratio.to_dict() if ratio else None
    meta = after.problem_meta or before.problem_meta
    improved, regressed = [], []
    for pid in ids:
        b, a = vb[pid], va[pid]
        entry = {
            "id": pid,
            "difficulty": (meta.get(pid) or {}).get("difficulty"),
            "before_pass": b["pass@1"],
            "after_pass": a["pass@1"],
            "before_reward": b["mean_reward"],
            "after_reward": a["mean_reward"],
            "before_stage": _majority(before.rows, pid),
            "after_stage": _majority(after.rows, pid),
        }
        delta = a["mean_reward"] - b["mean_reward"]
        if a["pass@1"] > b["pass@1"] or (a["pass@1"] == b["pass@1"] and delta >= REWARD_EPS):
            improved.append(entry)
        elif a["pass@1"] < b["pass@1"] or (a["pass@1"] == b["pass@1"] and delta <= -REWARD_EPS):
            regressed.append(entry)
    key = lambda e: (e["after_pass"] - e["before_pass"], e["after_reward"] - e["before_reward"])  # noqa: E731
    out["improved"] = sorted(improved, key=key, reverse=True)
    out["regressed"] = sorted(regressed, key=key)
    return out


def _majority(rows: Sequence[Mapping[str, Any]], pid: str) -> str | None:
    return majority_stage([r["stage"] for r in rows if r["problem_id"] == pid and is_scored(r)])


def _common_ids(runs: Sequence[LoadedRun]) -> list[str]:
    seen = [list(per_problem_values(r.rows)) for r in runs]
    common = set(seen[0]).intersection(*seen[1:]) if seen else set()
    return [pid for pid in seen[0] if pid in common] if seen else []


def _series(path: Path, keys: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    """(step, value) points of `keys` from a run's metrics.jsonl (events and NaN left out)."""
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "event" in rec or not isinstance(rec.get("step"), int | float):
            continue
        for k in keys:
            v = rec.get(k)
            if isinstance(v, int | float) and math.isfinite(v):
                out[k].append((float(rec["step"]), float(v)))
    return out


def _events(path: Path, name: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("event") == name:
            found.append(rec)
    return found


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def training_summary(state: Mapping[str, Any]) -> dict[str, Any]:
    """What the SFT and GRPO phases did, from their metrics.jsonl."""
    phases = {p["name"]: p for p in state.get("phases", [])}
    out: dict[str, Any] = {}
    sft = (phases.get("sft") or {}).get("runs", {}).get("train")
    if sft:
        s = _series(Path(sft) / "metrics.jsonl", ["loss", "eval_loss", "step_time"])
        out["sft"] = {
            "run": sft,
            "steps": int(s["loss"][-1][0]) if s["loss"] else 0,
            "loss_first": s["loss"][0][1] if s["loss"] else None,
            "loss_last": _mean([v for _, v in s["loss"][-5:]]),
            "eval_loss_first": s["eval_loss"][0][1] if s["eval_loss"] else None,
            "eval_loss_last": s["eval_loss"][-1][1] if s["eval_loss"] else None,
            "seconds": (phases.get("sft") or {}).get("seconds"),
            "series": s,
        }
    grpo = (phases.get("grpo") or {}).get("runs", {}).get("train")
    if grpo:
        metrics = Path(grpo) / "metrics.jsonl"
        keys = ["reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "step_time"]
        s = _series(metrics, keys)
        zero = [v for _, v in s["frac_reward_zero_std"]]
        rewards = [v for _, v in s["reward"]]
        out["grpo"] = {
            "run": grpo,
            "steps": int(s["reward"][-1][0]) if s["reward"] else 0,
            "reward_first5": _mean(rewards[:5]),
            "reward_last5": _mean(rewards[-5:]),
            "frac_reward_zero_std_mean": _mean(zero),
            "step_time_mean": _mean([v for _, v in s["step_time"]]),
            "no_signal_warnings": len(_events(metrics, "no_signal")),
            "seconds": (phases.get("grpo") or {}).get("seconds"),
            "series": s,
        }
    return out


def build_summary(pipeline_dir: Path) -> dict[str, Any]:
    """summary.json of a pipeline: training, each model's held-out numbers, comparisons, goals."""
    state = json.loads((pipeline_dir / "pipeline.json").read_text())
    phases = {p["name"]: p for p in state.get("phases", [])}
    runs: dict[str, dict[str, LoadedRun]] = defaultdict(dict)
    for model in MODELS:
        for mode, path in ((phases.get(f"eval_{model}") or {}).get("runs") or {}).items():
            try:
                runs[mode][model] = load_run(path)
            except (RunNotFound, ValueError):
                continue
    evaluation: dict[str, Any] = {}
    for mode in MODES:
        have = runs.get(mode) or {}
        if not have:
            continue
        ids = _common_ids(list(have.values()))
        if not ids:
            continue
        block: dict[str, Any] = {"models": {m: model_metrics(r, ids) for m, r in have.items()}, "compare": {}}
        for a, b in (("base", "final"), ("base", "sft"), ("sft", "final")):
            if a in have and b in have and not (b == "final" and "grpo" not in phases and a == "sft"):
                block["compare"][f"{b}_vs_{a}"] = comparison(have[a], have[b], ids)
        evaluation[mode] = block
    training = training_summary(state)
    return clean(
        {
            "pipeline": state.get("name"),
            # written by the report phase itself: the pipeline is finished once this file exists
            "status": "finished"
            if all(p["status"] == "done" or p["name"] == "report" for p in state.get("phases", []))
            else state.get("status"),
            "phases": [
                {
                    **{
                        k: p.get(k)
                        for k in ("name", "status", "seconds", "runs", "started_at", "finished_at")
                    },
                    **({"status": "done"} if p["name"] == "report" else {}),  # this file is its result
                }
                for p in state.get("phases", [])
            ],
            "model": (state.get("config") or {}).get("model"),
            "settings": state.get("settings"),
            "training": {k: {kk: vv for kk, vv in v.items() if kk != "series"} for k, v in training.items()},
            "eval": evaluation,
            "goals": goals(evaluation, training),
        }
    )


def goals(evaluation: Mapping[str, Any], training: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stretch goals, each with its target, the value reached and whether it was met."""
    out: list[dict[str, Any]] = []
    block = evaluation.get("sampled") or evaluation.get("greedy")
    if not block or "final" not in block["models"]:
        return out
    final, cmp = block["models"]["final"], block["compare"].get("final_vs_base")
    if cmp:
        ratio = cmp.get("reward_ratio")
        out.append(
            {
                "goal": "mean reward >= 3x the base model's",
                "value": ratio["estimate"] if ratio else None,
                "interval": [ratio["low"], ratio["high"]] if ratio else None,
                "met": bool(ratio and ratio["estimate"] >= GOALS["reward_ratio"]),
            }
        )
        diff = cmp["diff"]["mean_reward"]
        out.append(
            {
                "goal": "95% interval of the mean-reward gain excludes 0",
                "value": diff["estimate"],
                "interval": [diff["low"], diff["high"]],
                "met": diff["low"] > 0,
            }
        )
    for name in ("parsed", "type_checked"):
        rate = final["rates"][name]
        out.append(
            {
                "goal": f"{name.replace('_', '-')} rate >= {GOALS[name]:.0%}",
                "value": rate["estimate"],
                "interval": [rate["low"], rate["high"]],
                "met": rate["estimate"] >= GOALS[name],
            }
        )
    easy = final["by_difficulty"].get("easy")
    if easy:
        out.append(
            {
                "goal": "pass@1 above 0 on the easy problems",
                "value": easy["pass@1"]["estimate"],
                "interval": [easy["pass@1"]["low"], easy["pass@1"]["high"]],
                "met": easy["pass@1"]["estimate"] > 0,
            }
        )
    grpo = training.get("grpo")
    if grpo and grpo.get("frac_reward_zero_std_mean") is not None:
        out.append(
            {
                "goal": "GRPO learning signal: frac_reward_zero_std <= 0.5 averaged over the run",
                "value": grpo["frac_reward_zero_std_mean"],
                "interval": None,
                "met": grpo["frac_reward_zero_std_mean"] <= 0.5,
            }
        )
    return out


# -- HTML -------------------------------------------------------------------------------------------


def svg_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    colors: Mapping[str, str],
    width: int = 520,
    height: int = 200,
    y_min: float | None = None,
    y_max: float | None = None,
) -> str:
    """A small line chart as inline SVG (no script, no external asset): axes, ticks, one polyline a series."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return '<p class="muted">no data</p>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    lo = min(p[1] for p in pts) if y_min is None else y_min
    hi = max(p[1] for p in pts) if y_max is None else y_max
    if hi <= lo:
        hi = lo + 1.0
    if x1 <= x0:
        x1 = x0 + 1.0
    left, right, top, bottom = 46, 10, 10, 24
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + (1 - (y - lo) / (hi - lo)) * h

    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    decimals = max(0, 2 - math.floor(math.log10((hi - lo) / 4)))  # ticks that differ from each other
    for i in range(5):
        y = lo + (hi - lo) * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" font-size="10" text-anchor="end" fill="#666">'
            f"{round(y, decimals):g}</text>"
        )
    for x in sorted({round(x0 + (x1 - x0) * i / 4) for i in range(5)}):  # steps: whole numbers
        parts.append(
            f'<text x="{sx(x):.1f}" y="{height - 6}" font-size="10" text-anchor="middle" fill="#666">{x:.0f}</text>'
        )
    for name, s in series.items():
        if not s:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        color = colors.get(name, "#333")
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path}"/>')
        if len(s) == 1:
            parts.append(f'<circle cx="{sx(s[0][0]):.1f}" cy="{sy(s[0][1]):.1f}" r="3" fill="{color}"/>')
    parts.append("</svg>")
    return "".join(parts)


def smooth(points: Sequence[tuple[float, float]], window: int = 5) -> list[tuple[float, float]]:
    """A centred moving average (the same at both ends: no bias towards early points)."""
    out = []
    for i in range(len(points)):
        lo, hi = max(0, i - window // 2), min(len(points), i + window // 2 + 1)
        out.append((points[i][0], sum(v for _, v in points[lo:hi]) / (hi - lo)))
    return out


def _ci(iv: Mapping[str, Any] | None, percent: bool = True) -> str:
    if not iv:
        return "–"
    if percent:
        return f"{100 * iv['estimate']:.1f}% [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}]"
    return f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def _ci_delta(iv: Mapping[str, Any] | None, percent: bool = True) -> str:
    if not iv:
        return "–"
    if percent:
        return f"{100 * iv['estimate']:+.1f} pp [{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]"
    return f"{iv['estimate']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]"


def render_learning_report(summary: Mapping[str, Any], series: Mapping[str, Any]) -> str:
    from .learning_report_template import TEMPLATE

    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_pct, num=_num, delta=_delta, ci=_ci, ci_delta=_ci_delta)
    env.globals.update(stage_colors=STAGE_COLORS)
    charts = {}
    sft = series.get("sft")
    if sft:
        charts["sft"] = svg_chart(
            {"loss": smooth(sft["loss"]), "eval_loss": sft["eval_loss"]},
            {"loss": "#3b6fb6", "eval_loss": "#d4522a"},
        )
    grpo = series.get("grpo")
    if grpo:
        charts["grpo_reward"] = svg_chart(
            {"raw": grpo["reward"], "smoothed": smooth(grpo["reward"])},
            {"raw": "#c9d6ea", "smoothed": "#2e9d4f"},
            y_min=0.0,
        )
        charts["grpo_zero"] = svg_chart(
            {"frac_reward_zero_std": grpo["frac_reward_zero_std"]},
            {"frac_reward_zero_std": "#b3261e"},
            y_min=0.0,
            y_max=1.0,
        )
    return env.from_string(TEMPLATE).render(s=summary, charts=charts, models=MODELS, modes=MODES)


def write_learning_report(pipeline_dir: Path) -> dict[str, Path]:
    """Write summary.json and report.html into `pipeline_dir`; return their paths."""
    pipeline_dir = Path(pipeline_dir)
    summary = build_summary(pipeline_dir)
    state = json.loads((pipeline_dir / "pipeline.json").read_text())
    series = {k: v["series"] for k, v in training_summary(state).items()}
    write_json(pipeline_dir / "summary.json", summary)
    atomic_write(pipeline_dir / "report.html", render_learning_report(summary, series))
    return {"summary": pipeline_dir / "summary.json", "report": pipeline_dir / "report.html"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m eval.learning_report <pipeline dir>", file=sys.stderr)
        return 2
    path = Path(args[0])
    if not (path / "pipeline.json").exists():
        print(f"error: {path}: not a pipeline directory (no pipeline.json)", file=sys.stderr)
        return 2
    paths = write_learning_report(path)
    print(paths["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Interval", "build_summary", "render_learning_report", "svg_chart", "write_learning_report"]
