"""Compare two eval runs: `python -m eval.compare A B [--out DIR]` (`make eval-compare a=A b=B`).

A and B are run directories (or names under EVAL_OUTPUT_DIR, default eval_runs). Both are measured on
the problems they have in common (valid and scored in both), with the same code as the runs' own
summaries (eval.metrics), at every k both can estimate. Prints, and writes compare.json and
compare.html to DIR (default <eval_runs>/compare_<A>__<B>/):
- side-by-side rates with deltas: pass@k, mean reward, each funnel level, each final stage; for
  pass@1, mean reward and the funnel, the 95 % paired bootstrap interval of B - A over the problems
  (and of B / A for the mean reward);
- per-problem lists: improved (B passes more of its samples than A, or as many with a mean reward
  higher by at least 0.01) and regressed (the reverse);
- a stage-transition matrix: A's majority stage of a problem -> B's;
- for two self-repair runs (--repair N), their curves: per k repairs, pass@1 and mean reward of A and
  B and the paired interval of B - A (eval/repair.py); when only one of them repaired, a note says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from rlvr.settings import run_root
from rlvr.verifier import STAGES

from .metrics import ROW_VALUES, is_scored, majority_stage, per_problem_values, summarize
from .outputs import LoadedRun, RunNotFound, load_run, write_json
from .repair import compare_curves
from .report import render_compare
from .stats import paired_bootstrap, ratio_interval

REWARD_EPS = 0.01


def _scored_ids(run: LoadedRun) -> list[str]:
    seen: dict[str, None] = {}
    for r in run.rows:
        if is_scored(r):
            seen.setdefault(r["problem_id"], None)
    return list(seen)


def _per_problem(run: LoadedRun, ids: set[str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in run.rows:
        if r["problem_id"] in ids and is_scored(r):
            groups[r["problem_id"]].append(r)
    out = {}
    for pid, rows in groups.items():
        rewards = [r["total_reward"] for r in rows if r.get("total_reward") is not None]
        out[pid] = {
            "n": len(rows),
            "passed": sum(r["stage"] == "pass" for r in rows),
            "reward": sum(rewards) / len(rewards) if rewards else None,
            "stage": majority_stage([r["stage"] for r in rows]),
        }
    return out


def _settings_warnings(a: LoadedRun, b: LoadedRun) -> list[str]:
    warnings = []
    for run in (a, b):
        status = run.summary.get("status")
        if status != "complete":
            warnings.append(f"{run.name} is not a complete run (status {status!r}): compared on what it has")
    sa, sb = a.summary.get("settings") or {}, b.summary.get("settings") or {}
    for key in ("data", "split", "n", "temperature", "top_p", "max_tokens"):
        if sa.get(key) != sb.get(key):
            warnings.append(f"settings differ: {key} = {sa.get(key)!r} in A, {sb.get(key)!r} in B")
    return warnings


def compare(a: LoadedRun, b: LoadedRun) -> dict[str, Any]:
    """The comparison of two loaded runs as a JSON-ready dict (what compare.json holds)."""
    ids_a, ids_b = _scored_ids(a), _scored_ids(b)
    common = [pid for pid in ids_a if pid in set(ids_b)]
    common_set = set(common)
    if not common:
        raise ValueError(f"{a.name} and {b.name} have no scored problem in common: nothing to compare")
    rows_a = [r for r in a.rows if r["problem_id"] in common_set]
    rows_b = [r for r in b.rows if r["problem_id"] in common_set]
    pa, pb = _per_problem(a, common_set), _per_problem(b, common_set)
    n_min = min(x["n"] for x in (*pa.values(), *pb.values()))
    requested = {k for run in (a, b) for k in (run.summary.get("settings") or {}).get("ks") or [1]}
    ks = [k for k in sorted(requested) if k <= n_min] or [1]
    ma = summarize(rows_a, a.problem_meta, ks, problem_order=common)
    mb = summarize(rows_b, b.problem_meta, ks, problem_order=common)
    values_a, values_b = per_problem_values(rows_a), per_problem_values(rows_b)
    rates: list[dict[str, Any]] = []

    def add(
        metric: str,
        va: float | None,
        vb: float | None,
        kind: str = "rate",
        better: bool = True,
        paired: str | None = None,
    ) -> None:
        """`better`: a rise is an improvement (False for final stages other than pass: ambiguous).
        `paired`: the ROW_VALUES name whose per-problem B - A gets a bootstrap interval."""
        delta = vb - va if va is not None and vb is not None else None
        row = {"metric": metric, "a": va, "b": vb, "delta": delta, "kind": kind, "higher_is_better": better}
        if paired:
            row["delta_interval"] = paired_bootstrap(
                [values_a[p][paired] for p in common], [values_b[p][paired] for p in common]
            ).to_dict()
        rates.append(row)

    for k in ks:
        add(f"pass@{k}", ma.get(f"pass@{k}"), mb.get(f"pass@{k}"), paired="pass@1" if k == 1 else None)
    add("mean reward", ma["mean_reward"], mb["mean_reward"], "value", paired="mean_reward")
    for fa, fb in zip(ma["funnel"], mb["funnel"]):
        add(
            f"funnel: {fa['level']}",
            fa["rate"],
            fb["rate"],
            paired=fa["level"] if fa["level"] in ROW_VALUES else None,
        )
    for stage in STAGES:
        ca, cb = ma["stages"].get(stage, 0), mb["stages"].get(stage, 0)
        if ca or cb:
            add(
                f"stage: {stage}",
                ca / max(1, sum(ma["stages"].values())),
                cb / max(1, sum(mb["stages"].values())),
                better=stage == "pass",
            )

    improved, regressed = [], []
    transitions: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pid in common:
        x, y = pa[pid], pb[pid]
        transitions[x["stage"]][y["stage"]] += 1
        entry = {
            "id": pid,
            "a_passed": x["passed"],
            "a_n": x["n"],
            "b_passed": y["passed"],
            "b_n": y["n"],
            "a_reward": x["reward"],
            "b_reward": y["reward"],
            "a_stage": x["stage"],
            "b_stage": y["stage"],
        }
        fa, fb = x["passed"] / x["n"], y["passed"] / y["n"]
        dr = (y["reward"] or 0.0) - (x["reward"] or 0.0)
        if fb > fa or (fb == fa and dr >= REWARD_EPS):
            improved.append(entry)
        elif fb < fa or (fb == fa and dr <= -REWARD_EPS):
            regressed.append(entry)
    ratio = ratio_interval(
        [values_a[p]["mean_reward"] for p in common], [values_b[p]["mean_reward"] for p in common]
    )
    used = {s for s in transitions} | {t for row in transitions.values() for t in row}
    return {
        "a": _describe(a),
        "b": _describe(b),
        "common_problems": len(common),
        "only_a": [pid for pid in ids_a if pid not in common_set],
        "only_b": [pid for pid in ids_b if pid not in common_set],
        "ks": ks,
        "samples_per_problem": {"a": pa[common[0]]["n"], "b": pb[common[0]]["n"]},
        "warnings": _settings_warnings(a, b),
        "rates": rates,
        "reward_ratio": ratio.to_dict() if ratio else None,
        "improved": improved,
        "regressed": regressed,
        "transition_stages": [s for s in STAGES if s in used],
        "transitions": {s: dict(row) for s, row in transitions.items()},
        "repair": compare_curves(a, b, common),
        "metrics_a": {k: v for k, v in ma.items() if k != "per_problem"},
        "metrics_b": {k: v for k, v in mb.items() if k != "per_problem"},
    }


def _describe(run: LoadedRun) -> dict[str, Any]:
    s = run.summary
    return {
        "name": run.name,
        "path": str(run.path),
        "model": (s.get("model") or {}).get("spec") or (s.get("settings") or {}).get("model"),
        "status": s.get("status"),
        "settings": s.get("settings"),
    }


# -- printing ---------------------------------------------------------------------------------------


def _cell(value: float | None, kind: str, delta: bool = False) -> str:
    if value is None:
        return "–"
    if kind == "rate":
        return f"{100 * value:+.1f} pp" if delta else f"{100 * value:.1f}%"
    return f"{value:+.3f}" if delta else f"{value:.3f}"


def format_table(c: dict[str, Any]) -> str:
    """The comparison as plain-text tables."""
    lines = [
        f"A: {c['a']['name']} ({c['a']['model']})",
        f"B: {c['b']['name']} ({c['b']['model']})",
        f"{c['common_problems']} problems in common"
        + (
            f"; left out: {len(c['only_a'])} only in A, {len(c['only_b'])} only in B"
            if c["only_a"] or c["only_b"]
            else ""
        ),
    ]
    lines += [f"warning: {w}" for w in c["warnings"]]
    width = max(len(r["metric"]) for r in c["rates"]) + 2
    lines.append("")
    lines.append(f"{'metric':<{width}}{'A':>10}{'B':>10}{'B - A':>12}   95% interval of B - A")
    for r in c["rates"]:
        ci = r.get("delta_interval")
        interval = (
            f"   [{_cell(ci['low'], r['kind'], True)}, {_cell(ci['high'], r['kind'], True)}]" if ci else ""
        )
        lines.append(
            f"{r['metric']:<{width}}{_cell(r['a'], r['kind']):>10}{_cell(r['b'], r['kind']):>10}"
            f"{_cell(r['delta'], r['kind'], True):>12}{interval}"
        )
    spp = c.get("samples_per_problem") or {}
    lines.append(
        f"intervals: paired bootstrap over the {c['common_problems']} problems "
        f"({spp.get('a')} sample(s) per problem in A, {spp.get('b')} in B)"
    )
    ratio = c.get("reward_ratio")
    if ratio:
        lines.append(
            f"mean reward B / A: {ratio['estimate']:.2f}x, 95% interval [{ratio['low']:.2f}x, {ratio['high']:.2f}x]"
        )
    lines += format_repair(c.get("repair"))
    stages = c["transition_stages"]
    if stages:
        lines.append("")
        lines.append("stage transitions (rows: A's majority stage, columns: B's)")
        w = max(len(s) for s in stages) + 2
        lines.append(" " * w + "".join(f"{s:>{w}}" for s in stages))
        for s in stages:
            row = c["transitions"].get(s, {})
            lines.append(f"{s:<{w}}" + "".join(f"{row.get(t, 0) or '.':>{w}}" for t in stages))
    for title, items in (("improved in B", c["improved"]), ("regressed in B", c["regressed"])):
        lines.append("")
        lines.append(f"{title}: {len(items)}")
        for p in items[:50]:
            lines.append(
                f"  {p['id']}: passed {p['a_passed']}/{p['a_n']} -> {p['b_passed']}/{p['b_n']}, "
                f"reward {_cell(p['a_reward'], 'value')} -> {_cell(p['b_reward'], 'value')}, "
                f"{p['a_stage']} -> {p['b_stage']}"
            )
        if len(items) > 50:
            lines.append(f"  ... {len(items) - 50} more in compare.json")
    return "\n".join(lines)


def format_repair(repair: dict[str, Any] | None) -> list[str]:
    """The self-repair part of the table: per k, pass@1 and mean reward of A and B, B - A and its
    paired 95 % interval (nothing when neither run repaired; the note when only one did)."""
    if not repair:
        return []
    if repair.get("note"):
        return ["", f"self-repair: {repair['note']}"]
    lines = [
        "",
        f"self-repair curves (feedback A: {repair['feedback']['a']}, B: {repair['feedback']['b']}; "
        f"k = repairs, each sample's latest answer after k)",
    ]
    lines += [f"warning: {note}" for note in repair.get("notes") or []]
    lines.append(
        f"{'k':<4}{'pass@1 A':>10}{'B':>9}{'B - A':>11}   {'95% interval':<22}"
        f"{'reward A':>9}{'B':>8}{'B - A':>9}   95% interval"
    )
    for p in repair["curve"]:
        p1, mr = p["pass@1"], p["mean_reward"]
        ci1, cir = p1["delta_interval"], mr["delta_interval"]
        interval = f"[{_cell(ci1[0], 'rate', True)}, {_cell(ci1[1], 'rate', True)}]"
        lines.append(
            f"{p['repairs']:<4}{_cell(p1['a'], 'rate'):>10}{_cell(p1['b'], 'rate'):>9}"
            f"{_cell(p1['delta'], 'rate', True):>11}   {interval:<22}{_cell(mr['a'], 'value'):>9}"
            f"{_cell(mr['b'], 'value'):>8}{_cell(mr['delta'], 'value', True):>9}"
            f"   [{_cell(cir[0], 'value', True)}, {_cell(cir[1], 'value', True)}]"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="baseline run (directory or name under EVAL_OUTPUT_DIR)")
    ap.add_argument("b", help="run compared with it")
    ap.add_argument("--out", type=Path, default=None, help="directory for compare.json and compare.html")
    args = ap.parse_args(argv)
    root = run_root("eval", os.environ)
    try:
        a, b = load_run(args.a, root), load_run(args.b, root)
    except (RunNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        c = compare(a, b)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or a.path.parent / f"compare_{a.name}__{b.name}"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "compare.json", c)
    (out / "compare.html").write_text(render_compare(c), encoding="utf-8")
    print(format_table(c))
    print(f"\nwrote {out / 'compare.json'} and {out / 'compare.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
