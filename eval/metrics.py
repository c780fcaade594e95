"""Metrics of an evaluation from its per-sample rows (results.jsonl): pass@k, mean reward, the stage
funnel, results by difficulty and by tag, error classes, and per-problem summaries.

Rows are plain dicts (an Outcome plus problem_id, sample, ...), so a finished run, a crashed one and
`eval.compare` all compute the same numbers the same way. Samples whose verification failed for
infrastructure reasons (stage `infra_error`) are counted but left out of every rate: they say nothing
about the model. Invalid problems never reach here (they are not generated for).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rlvr.verifier import STAGES, error_class
from rlvr.verifier.scoring import COMPILE_OK, TYPE_CHECK_MAX

from .passk import mean_pass_at_k

# The funnel: each level is reached by the samples that got past the one before (doc/eval.md).
FUNNEL: tuple[tuple[str, str], ...] = (
    ("parsed", "no syntax error (the code reached the type checker)"),
    ("type_checked", "no type error"),
    ("compiled", "built into a program"),
    ("some_tests", "passed at least one test"),
    ("all_tests", "passed every test"),
)
STAGE_RANK = {s: i for i, s in enumerate(STAGES)}  # best first: pass, test_failure, ...


def funnel_level(row: Mapping[str, Any]) -> int:
    """How far a sample got: 0 = syntax error/empty, 1 = parsed, ..., 5 = passed every test.

    Read from the reward components, which the verifier sets per stage: any type-check credit means the
    code parsed; full credit (0.25) that it type-checked; compile credit 0.10 that it built.
    """
    if row.get("stage") == "pass":
        return 5
    if (row.get("tests_passed") or 0) > 0:
        return 4
    if (row.get("compile") or 0) >= COMPILE_OK:
        return 3
    type_check = row.get("type_check") or 0
    if type_check >= TYPE_CHECK_MAX:
        return 2
    return 1 if type_check > 0 else 0


def majority_stage(stages: Sequence[str]) -> str | None:
    """The most frequent stage; ties go to the better stage (pass before test_failure before ...)."""
    if not stages:
        return None
    counts = Counter(stages)
    return min(counts, key=lambda s: (-counts[s], STAGE_RANK.get(s, len(STAGE_RANK))))


def is_scored(row: Mapping[str, Any]) -> bool:
    return row.get("stage") != "infra_error"


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


def group_rates(by_problem: Mapping[str, Sequence[Mapping[str, Any]]], ks: Sequence[int]) -> dict[str, Any]:
    """pass@k (mean over problems with >= k scored samples) and mean reward (over scored samples)."""
    counts = []
    rewards = []
    for rows in by_problem.values():
        scored = [r for r in rows if is_scored(r)]
        if scored:
            counts.append((len(scored), sum(r["stage"] == "pass" for r in scored)))
            rewards.extend(r["total_reward"] for r in scored if r.get("total_reward") is not None)
    out: dict[str, Any] = {"problems": len(counts), "samples": sum(n for n, _ in counts)}
    for k in ks:
        out[f"pass@{k}"] = mean_pass_at_k(counts, k)[0]
    out["mean_reward"] = _mean(rewards)
    return out


def per_problem(
    by_problem: Mapping[str, Sequence[Mapping[str, Any]]],
    meta: Mapping[str, Mapping[str, Any]],
    ks: Sequence[int],
) -> list[dict[str, Any]]:
    """One summary per problem: samples, passes, pass@k, mean reward, majority stage, per-sample stages."""
    out = []
    for pid, rows in by_problem.items():
        rows = sorted(rows, key=lambda r: r.get("sample", 0))
        rates = group_rates({pid: rows}, ks)
        scored = [r for r in rows if is_scored(r)]
        info = meta.get(pid, {})
        out.append(
            {
                "id": pid,
                "difficulty": info.get("difficulty"),
                "tags": list(info.get("tags") or []),
                "n": len(scored),
                "passed": sum(r["stage"] == "pass" for r in scored),
                **{k: v for k, v in rates.items() if k.startswith("pass@")},
                "mean_reward": rates["mean_reward"],
                "majority_stage": majority_stage([r["stage"] for r in scored]),
                "best_level": max((funnel_level(r) for r in scored), default=None),
                "stages": [r["stage"] for r in rows],
            }
        )
    return out


def funnel(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For each funnel level: samples that reached it, their share of the scored samples, and how many
    stopped just before it (the drop)."""
    levels = [funnel_level(r) for r in rows if is_scored(r)]
    total = len(levels)
    out, previous = [], total
    for i, (name, meaning) in enumerate(FUNNEL, start=1):
        reached = sum(level >= i for level in levels)
        out.append(
            {
                "level": name,
                "meaning": meaning,
                "reached": reached,
                "rate": reached / total if total else None,
                "dropped": previous - reached,
            }
        )
        previous = reached
    return out


def summarize(
    rows: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Mapping[str, Any]],
    ks: Sequence[int],
    problem_order: Sequence[str] | None = None,
) -> dict[str, Any]:
    """All metrics of an evaluation from its rows; `meta` maps problem id -> {difficulty, tags}."""
    by_problem: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_problem[r["problem_id"]].append(r)
    if problem_order is not None:
        order = {pid: i for i, pid in enumerate(problem_order)}
        by_problem = dict(sorted(by_problem.items(), key=lambda kv: order.get(kv[0], len(order))))
    scored = [r for r in rows if is_scored(r)]
    by_difficulty: dict[str, dict] = defaultdict(dict)
    by_tag: dict[str, dict] = defaultdict(dict)
    for pid, prow in by_problem.items():
        info = meta.get(pid, {})
        by_difficulty[info.get("difficulty") or "unknown"][pid] = prow
        for tag in info.get("tags") or ():
            by_tag[tag][pid] = prow
    return {
        **group_rates(by_problem, ks),
        "infra_errors": len(rows) - len(scored),
        "truncated": sum(r.get("finish_reason") == "length" for r in rows),
        "stages": {s: n for s in STAGES if (n := sum(r["stage"] == s for r in rows))},
        "funnel": funnel(rows),
        "by_difficulty": {d: group_rates(g, ks) for d, g in sorted(by_difficulty.items())},
        "by_tag": {
            t: group_rates(g, ks) for t, g in sorted(by_tag.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        },
        "error_classes": dict(
            Counter(
                error_class(r.get("error")) or "Other" for r in scored if r["stage"] != "pass"
            ).most_common()
        ),
        "per_problem": per_problem(by_problem, meta, ks),
    }


# per-problem values that reports bootstrap over problems: name -> value of one scored row
ROW_VALUES = {
    "pass@1": lambda r: 1.0 if r["stage"] == "pass" else 0.0,
    "mean_reward": lambda r: float(r.get("total_reward") or 0.0),
    "parsed": lambda r: 1.0 if funnel_level(r) >= 1 else 0.0,
    "type_checked": lambda r: 1.0 if funnel_level(r) >= 2 else 0.0,
    "compiled": lambda r: 1.0 if funnel_level(r) >= 3 else 0.0,
    "some_tests": lambda r: 1.0 if funnel_level(r) >= 4 else 0.0,
}


def per_problem_values(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """problem id -> {value name: mean over its scored samples}."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if is_scored(r):
            groups[r["problem_id"]].append(r)
    return {
        pid: {name: sum(f(r) for r in rs) / len(rs) for name, f in ROW_VALUES.items()} | {"n": len(rs)}
        for pid, rs in groups.items()
    }
