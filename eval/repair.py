"""Self-repair evaluation (`make eval ... repair=N`): after a failing answer, the model reads what a
check of it says and tries again, up to N times.

The feedback is the OCaml environment's (rlvr.environment.Checker): the compiler's first error with
lines counted from the answer, or which of the prompt's visible examples failed (ENV_FEEDBACK). It is
never the hidden tests, which only score each new answer, as they score the first. A repair turn is
the problem's prompt messages + the previous answer (as generated) + one user message holding the
feedback (REPAIR_REQUEST), generated once per failing sample through the run's backend (local
transformers, OpenAI-compatible server or llama-server). Only the latest answer is in the conversation,
so a repair prompt is bounded whatever N is.

results.jsonl keeps the first answers (turn 0) exactly as without repairs, so every other metric and
comparison is unchanged; repairs.jsonl holds one row per repair (`turn` 1..N, the `feedback` shown,
its `parent`). The curve: after k repairs, each sample's answer is its latest one at turn <= k (a sample
that passed stops repairing and keeps its passing answer); pass@1 and mean reward per problem,
bootstrapped over problems, and the stage funnel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from rlvr.problems import Problem

from .metrics import funnel, is_scored
from .stats import bootstrap_mean, paired_bootstrap

if TYPE_CHECKING:  # rlvr.environment is imported only by runs that repair
    from rlvr.environment import Checker, CheckResult, EnvironmentSettings

REPAIR_REQUEST = "I checked your answer:\n\n{feedback}\n\nFix it. Reply with the whole corrected function in one ```ocaml block."
# the checker's text for an empty answer speaks of the tool's `code` argument; a repair has no tool
NO_CODE = "There is no OCaml code in your answer."
# turn t of the batch whose first turn had seed s asks with seed s + SEED_STRIDE * t (server backends:
# conversation i of the turn gets that + i), far from the first turn's seeds (seed + problem index * n)
SEED_STRIDE = 7919
# what summary.json records of the environment's settings (a resumed run takes them back)
ENVIRONMENT_FIELDS = ("feedback", "max_code_bytes", "max_output_bytes")

Messages = list[dict[str, str]]


def needs_repair(row: Mapping[str, Any]) -> bool:
    """A scored answer that did not pass (an infrastructure failure is not the model's to repair)."""
    return row["stage"] not in ("pass", "infra_error")


def answer_text(row: Mapping[str, Any]) -> str:
    """The text the verifier scored (after MultiPL-E stop tokens): what the check must see too."""
    return row["scored_text"] if row.get("scored_text") is not None else row["completion"]


def feedback_text(result: CheckResult) -> str:
    if result.check is not None and result.check.outcome.stage == "empty":
        return NO_CODE
    return result.text


def repair_conversation(prompt: Messages, answer: str, feedback: str) -> Messages:
    """The messages of a repair turn: the prompt, the previous answer, the feedback on it."""
    return [
        *prompt,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": REPAIR_REQUEST.format(feedback=feedback)},
    ]


def environment_record(settings: EnvironmentSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in ENVIRONMENT_FIELDS}


def check_all(checker: Checker, items: Sequence[tuple[Problem, str]], jobs: int) -> list[CheckResult]:
    """Checks of many answers at once (the checker is thread-safe; the verifier's pool does the work)."""
    if len(items) <= 1 or jobs <= 1:
        return [checker.check(p, code) for p, code in items]
    with ThreadPoolExecutor(max_workers=min(jobs, len(items)), thread_name_prefix="eval-check") as pool:
        return list(pool.map(lambda item: checker.check(*item), items))


def repair_batch(
    chunk: Sequence[Problem],
    rows: Sequence[dict[str, Any]],
    prompts: Mapping[str, Messages],
    rounds: int,
    generate: Callable[[list[Messages], int], list],
    check: Callable[[list[tuple[Problem, str]]], list[CheckResult]],
    score: Callable[[list[tuple[Problem, Any]]], list[dict[str, Any]]],
    seed: int,
) -> list[dict[str, Any]]:
    """The repair rows of one batch: up to `rounds` turns for each failing row of `rows` (turn 0).

    `generate(conversations, seed)` returns one Generation list per conversation (n = 1);
    `check([(problem, answer)])` the checker's results; `score([(problem, generation)])` one result
    row per item (eval.run.sample_rows' fields)."""
    by_id = {p.id: p for p in chunk}
    # (problem id, sample) -> its latest row, for the samples still failing
    open_ = {(r["problem_id"], r["sample"]): r for r in rows if needs_repair(r)}
    out: list[dict[str, Any]] = []
    for turn in range(1, rounds + 1):
        if not open_:
            break
        keys = list(open_)
        results = check([(by_id[pid], answer_text(open_[(pid, s)])) for pid, s in keys])
        shown = [feedback_text(r) for r in results]
        conversations = [
            repair_conversation(prompts[pid], open_[(pid, s)]["completion"], text)
            for (pid, s), text in zip(keys, shown)
        ]
        generations = generate(conversations, seed + SEED_STRIDE * turn)
        scored = score([(by_id[pid], gens[0]) for (pid, _s), gens in zip(keys, generations)])
        next_open = {}
        for key, new, text, result in zip(keys, scored, shown, results):
            parent = open_[key]
            row = {
                "problem_id": key[0],
                "sample": key[1],
                "turn": turn,
                **{k: v for k, v in new.items() if k not in ("problem_id", "sample")},
                "feedback": text,
                "feedback_stage": result.check.outcome.stage if result.check is not None else None,
                "parent": {
                    "turn": turn - 1,
                    "stage": parent["stage"],
                    "total_reward": parent.get("total_reward"),
                },
            }
            out.append(row)
            if needs_repair(row):
                next_open[key] = row
        open_ = next_open
    return out


# -- the curve ------------------------------------------------------------------------------------


def latest_answers(
    first: Sequence[Mapping[str, Any]], repairs: Sequence[Mapping[str, Any]], k: int
) -> list[Mapping[str, Any]]:
    """Each sample's row after `k` repairs: its latest at turn <= k (in turn 0's order)."""
    latest = {(r["problem_id"], r["sample"]): r for r in first}
    for r in sorted((r for r in repairs if r["turn"] <= k), key=lambda r: r["turn"]):
        key = (r["problem_id"], r["sample"])
        if key in latest:
            latest[key] = r
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
            "mean_reward": sum(r.get("total_reward") or 0.0 for r in rows) / len(rows),
        }
        for pid, rows in groups.items()
    }


def curve(
    first: Sequence[Mapping[str, Any]],
    repairs: Sequence[Mapping[str, Any]],
    rounds: int,
    problem_order: Sequence[str],
) -> list[dict[str, Any]]:
    """One point per k = 0..rounds: pass@1 and mean reward (means over problems of their samples'
    values, with 95 % bootstrap intervals over problems), the funnel of the answers after k repairs,
    and what turn k did."""
    points = []
    for k in range(rounds + 1):
        at_k = [r for r in repairs if r["turn"] == k]
        answers = latest_answers(first, repairs, k)
        values = per_problem_after(first, repairs, k)
        ids = [pid for pid in problem_order if pid in values]
        point: dict[str, Any] = {
            "repairs": k,
            "pass@1": None,
            "pass@1_ci": None,
            "mean_reward": None,
            "mean_reward_ci": None,
            "samples": sum(is_scored(r) for r in answers),
            "passing": sum(r["stage"] == "pass" for r in answers),
            "samples_repaired": len(at_k),
            "newly_passing": sum(r["stage"] == "pass" for r in at_k),
            "feedback_infra_errors": sum(r.get("feedback_stage") == "infra_error" for r in at_k),
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
        point["funnel"] = funnel(answers)
        points.append(point)
    return points


# -- comparing two runs' curves ---------------------------------------------------------------------


def compare_curves(a, b, common: Sequence[str]) -> dict[str, Any] | None:
    """Two runs' (eval.outputs.LoadedRun) repair curves on their common problems: per k up to the
    smaller number of rounds, A, B and B - A with a paired bootstrap interval over problems. None when
    neither has repairs; a note (and no curve) when only one has."""
    ra, rb = a.summary.get("repair"), b.summary.get("repair")
    if not ra and not rb:
        return None
    if not ra or not rb:
        has, lacks = (b, a) if not ra else (a, b)
        return {
            "note": f"{lacks.name} has no self-repair curve ({has.name} has one, repair="
            f"{(rb or ra)['max_repairs']}): the curves are not compared; run both with --repair N"
        }
    rounds = min(ra["max_repairs"], rb["max_repairs"])
    notes = []
    if ra["max_repairs"] != rb["max_repairs"]:
        notes.append(
            f"repair rounds differ (A {ra['max_repairs']}, B {rb['max_repairs']}): compared up to {rounds}"
        )
    if ra.get("feedback") != rb.get("feedback"):
        notes.append(f"feedback differs: {ra.get('feedback')} in A, {rb.get('feedback')} in B")
    points = []
    for k in range(rounds + 1):
        va, vb = per_problem_after(a.rows, a.repairs, k), per_problem_after(b.rows, b.repairs, k)
        ids = [p for p in common if p in va and p in vb]
        if not ids:
            continue
        point: dict[str, Any] = {"repairs": k}
        for metric in ("pass@1", "mean_reward"):
            xa, xb = [va[p][metric] for p in ids], [vb[p][metric] for p in ids]
            d = paired_bootstrap(xa, xb)
            point[metric] = {
                "a": sum(xa) / len(xa),
                "b": sum(xb) / len(xb),
                "delta": d.estimate,
                "delta_interval": [d.low, d.high],
            }
        points.append(point)
    return {
        "rounds": rounds,
        "max_repairs": {"a": ra["max_repairs"], "b": rb["max_repairs"]},
        "feedback": {"a": ra.get("feedback"), "b": rb.get("feedback")},
        "notes": notes,
        "curve": points,
    }
