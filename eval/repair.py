"""Self-repair evaluation (`make eval ... repair=N`): after a failing answer, the model reads what a
check of it says and tries again, up to N times.

The feedback is the OCaml environment's (rlvr.environment.Checker): the compiler's first error with
lines counted from the answer, or which of the prompt's visible examples failed (ENV_FEEDBACK). It is
never the hidden tests, which only score each new answer, as they score the first. A repair turn is the
conversation so far + the answer + one user message holding the feedback, generated once per failing
sample through the run's backend (local transformers, OpenAI-compatible server or llama-server).

results.jsonl keeps the first answers (turn 0) exactly as without repairs, so every other metric and
comparison is unchanged; repairs.jsonl holds one row per repair (`turn` 1..N, the `feedback` shown).
The curve: after k repairs, each sample's answer is its latest one at turn <= k (a sample that passed
stops repairing and keeps its passing answer); pass@1 and mean reward per problem, bootstrapped over
problems, and the stage funnel.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlvr.environment import Checker
from rlvr.problems import Problem

from .metrics import funnel, is_scored
from .outputs import REPAIRS
from .stats import bootstrap_mean, paired_bootstrap

REPAIR_REQUEST = "I checked your answer:\n\n{feedback}\n\nFix it. Reply with the whole corrected function in one ```ocaml block."
SEED_STRIDE = 7919  # a repair turn's seeds: far from the first turn's (seed + problem offset * n)


def needs_repair(row: Mapping[str, Any]) -> bool:
    """A scored answer that did not pass (an infrastructure failure is not the model's to repair)."""
    return row["stage"] not in ("pass", "infra_error")


def repair_batch(
    chunk: Sequence[Problem],
    rows: Sequence[dict[str, Any]],
    prompts: Mapping[str, list[dict[str, str]]],
    rounds: int,
    generate: Callable[[list[list[dict[str, str]]], int], list],
    score: Callable[[Problem, list], list[dict[str, Any]]],
    checker: Checker,
    seed: int,
) -> list[dict[str, Any]]:
    """The repair rows of one batch: up to `rounds` turns for each failing row of `rows` (turn 0).

    `generate(conversations, seed)` returns one Generation list per conversation; `score(problem,
    generations)` returns their result rows (eval.run.sample_rows)."""
    by_id = {p.id: p for p in chunk}
    # (problem id, sample) -> the conversation so far and the latest row
    open_: dict[tuple[str, int], tuple[list[dict[str, str]], dict[str, Any]]] = {
        (r["problem_id"], r["sample"]): (list(prompts[r["problem_id"]]), r) for r in rows if needs_repair(r)
    }
    out: list[dict[str, Any]] = []
    for turn in range(1, rounds + 1):
        if not open_:
            break
        keys = list(open_)
        conversations = []
        shown = []
        for key in keys:
            history, last = open_[key]
            problem = by_id[key[0]]
            answer = last["scored_text"] if last.get("scored_text") is not None else last["completion"]
            feedback = checker.check(problem, answer).text
            shown.append(feedback)
            conversations.append(
                [
                    *history,
                    {"role": "assistant", "content": last["completion"]},
                    {"role": "user", "content": REPAIR_REQUEST.format(feedback=feedback)},
                ]
            )
        generations = generate(conversations, seed + SEED_STRIDE * turn)
        next_open = {}
        for key, conversation, gens, feedback in zip(keys, conversations, generations, shown):
            [row] = score(by_id[key[0]], gens[:1])
            row.update(sample=key[1], turn=turn, feedback=feedback)
            out.append(row)
            if needs_repair(row):
                next_open[key] = (conversation, row)
        open_ = next_open
    return out


def latest_answers(
    first: Sequence[Mapping[str, Any]], repairs: Sequence[Mapping[str, Any]], k: int
) -> list[Mapping[str, Any]]:
    """Each sample's row after `k` repairs: its latest at turn <= k."""
    latest = {(r["problem_id"], r["sample"]): r for r in first}
    for r in sorted((r for r in repairs if r["turn"] <= k), key=lambda r: r["turn"]):
        latest[(r["problem_id"], r["sample"])] = r
    return list(latest.values())


def per_problem_after(
    first: Sequence[Mapping[str, Any]], repairs: Sequence[Mapping[str, Any]], k: int
) -> dict[str, dict[str, float]]:
    """problem id -> its pass@1 and mean reward over its scored samples after `k` repairs."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in latest_answers(first, repairs, k):
        if is_scored(r):
            groups.setdefault(r["problem_id"], []).append(r)
    return {
        pid: {
            "pass@1": sum(r["stage"] == "pass" for r in rows) / len(rows),
            "mean_reward": sum(r["total_reward"] for r in rows) / len(rows),
        }
        for pid, rows in groups.items()
    }


def curve(
    first: Sequence[Mapping[str, Any]],
    repairs: Sequence[Mapping[str, Any]],
    rounds: int,
    problem_order: Sequence[str],
) -> list[dict[str, Any]]:
    """pass@1, mean reward (with bootstrap intervals over problems) and the funnel after 0..rounds repairs."""
    points = []
    for k in range(rounds + 1):
        at_k = [r for r in repairs if r["turn"] == k]
        values = per_problem_after(first, repairs, k)
        ids = [pid for pid in problem_order if pid in values]
        point: dict[str, Any] = {
            "repairs": k,
            "samples_repaired": len(at_k),
            "newly_passing": sum(r["stage"] == "pass" for r in at_k),
        }
        if ids:
            p1 = bootstrap_mean([values[p]["pass@1"] for p in ids])
            mr = bootstrap_mean([values[p]["mean_reward"] for p in ids])
            point.update(
                {
                    "pass@1": p1.estimate,
                    "pass@1_ci": [p1.low, p1.high],
                    "mean_reward": mr.estimate,
                    "mean_reward_ci": [mr.low, mr.high],
                }
            )
        point["funnel"] = funnel(latest_answers(first, repairs, k))
        points.append(point)
    return points


def load_repairs(run_dir: Path) -> list[dict[str, Any]]:
    """A run's repairs.jsonl rows ([] when it has none; a torn last line is ignored)."""
    path = run_dir / REPAIRS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n") and line.strip():
            rows.append(json.loads(line))
    return rows


def compare_curves(a, b, common: Sequence[str]) -> dict[str, Any] | None:
    """Two runs' repair curves side by side on their common problems: per k up to the smaller number
    of rounds, A, B and B - A with a paired bootstrap interval. None when neither has repairs; a note
    when only one has."""
    ra, rb = a.summary.get("repair"), b.summary.get("repair")
    if not ra and not rb:
        return None
    if not ra or not rb:
        who = a.name if not ra else b.name
        return {"note": f"{who} has no self-repair curve (run it with --repair N to compare curves)"}
    rep_a, rep_b = load_repairs(a.path), load_repairs(b.path)
    rounds = min(ra["max_repairs"], rb["max_repairs"])
    points = []
    for k in range(rounds + 1):
        va, vb = per_problem_after(a.rows, rep_a, k), per_problem_after(b.rows, rep_b, k)
        ids = [p for p in common if p in va and p in vb]
        if not ids:
            continue
        point: dict[str, Any] = {"repairs": k}
        for metric in ("pass@1", "mean_reward"):
            xa, xb = [va[p][metric] for p in ids], [vb[p][metric] for p in ids]
            d = paired_bootstrap(xa, xb)
            point[metric] = {"a": sum(xa) / len(xa), "b": sum(xb) / len(xb), "delta": d.estimate,
                             "delta_interval": [d.low, d.high]}  # fmt: skip
        points.append(point)
    return {"rounds": rounds, "feedback": {"a": ra["feedback"], "b": rb["feedback"]}, "curve": points}
