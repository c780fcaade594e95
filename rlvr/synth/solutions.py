"""Rejection sampling: n answers per problem from the teacher, each scored by the verifier; only answers
that pass every test are kept, the best-scoring distinct ones first (`keep` a problem at most)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..grpo.judge import judged_text
from ..problems import Problem
from ..prompts import build_messages
from ..verifier import Outcome, Verifier
from ..verifier.extract import extract_code
from .common import Tally, ask_all
from .ledger import Ledger
from .teacher import Teacher

COMPILE_FAILURES = ("syntax_error", "type_error", "compile_error")


def rejection_reason(o: Outcome) -> str | None:
    """Why an answer is not kept, or None when it passes every test."""
    if o.stage == "pass" and o.tests_passed == o.tests_total:
        return None
    if o.stage in COMPILE_FAILURES:
        return "does_not_compile"
    if o.stage in ("test_failure", "timeout"):
        return "fails_tests"
    return {"empty": "no_code"}.get(o.stage, o.stage)


def same_solution_key(code: str) -> str:
    """Two answers are the same solution when they differ only in comments, strings' text or spacing."""
    return re.sub(r"\s+", " ", judged_text(code)).strip()


def select(problem: Problem, answers: Sequence[dict[str, Any]], outcomes: Sequence[Outcome], keep: int):
    """(kept rows, rejection reasons) for one problem's answers, best first."""
    reasons: list[str] = []
    passing = []
    for k, (answer, o) in enumerate(zip(answers, outcomes)):
        reason = rejection_reason(o)
        if reason:
            reasons.append(reason)
        else:
            passing.append((k, answer, o, extract_code(answer["text"]).code.strip()))
    passing.sort(key=lambda x: (-(x[2].total_reward or 0.0), len(x[3]), x[0]))
    kept, seen = [], set()
    for k, answer, o, code in passing:
        key = same_solution_key(code)
        if key in seen:
            reasons.append("duplicate")
        elif len(kept) >= keep:
            reasons.append("over_keep")
        else:
            seen.add(key)
            kept.append((k, answer, o, code))
    return kept, reasons


def run_solutions(
    problems: Sequence[Problem],
    teacher: Teacher,
    verifier: Verifier,
    ledger: Ledger,
    n: int,
    keep: int,
    provenance: dict[str, Any],
    progress: bool = True,
) -> tuple[list[dict[str, Any]], Tally, int]:
    """Rows kept for `problems` (decided ones from the ledger included), the tally, and the number of
    problems left undecided (a request failed: the next run asks again)."""
    tally = Tally()
    by_id = {p.id: p for p in problems}
    arrived: dict[str, int] = {}

    def decide(pid: str) -> None:
        p = by_id[pid]
        answers = [ledger.answers[f"{pid}#{k}"] for k in range(n)]
        outcomes = verifier.score_batch([(p, a["text"]) for a in answers])
        if any(o.stage == "infra_error" for o in outcomes):
            return  # the sandbox failed, not the answers: left undecided, re-scored by the next run
        kept, reasons = select(p, answers, outcomes, keep)
        rows = [
            solution_row(p, j, k, code, o, answer, provenance) for j, (k, answer, o, code) in enumerate(kept)
        ]
        ledger.decide(pid, rows=rows, rejected=reasons)

    def on_answer(key: str) -> None:
        pid = key.rsplit("#", 1)[0]
        arrived[pid] = arrived.get(pid, 0) + 1
        if arrived[pid] == n and pid not in ledger.decisions:
            decide(pid)

    requests = [
        (f"{p.id}#{k}", build_messages(p), k)
        for p in problems
        if p.id not in ledger.decisions
        for k in range(n)
    ]
    ask_all(teacher, ledger, requests, tally, on_answer, progress)
    rows = []
    for p in problems:
        d = ledger.decisions.get(p.id)
        if d:
            rows += d["rows"]
            tally.kept += len(d["rows"])
            tally.rejected.update(d["rejected"])
    return rows, tally, sum(p.id not in ledger.decisions for p in problems)


def solution_row(
    p: Problem, j: int, k: int, code: str, o: Outcome, answer: dict[str, Any], provenance: dict[str, Any]
) -> dict[str, Any]:
    """A problem row (our schema) whose `solution` is the teacher's answer, with where it came from."""
    return {
        "id": f"{p.id}.synth{j}",
        "prompt": p.prompt,
        "tests": list(p.tests),
        "solution": code,
        "difficulty": p.difficulty,
        "tags": list(p.tags),
        "split": "train",
        "source_problem": p.id,
        "provenance": {
            **provenance,
            "sample": k,
            "scores": {"total_reward": o.total_reward, "tests_passed": o.tests_passed, "tests_total": o.tests_total,
                       "style_penalty": o.style_penalty},
            "tokens": {"prompt": answer.get("prompt_tokens"), "completion": answer.get("completion_tokens")},
        },
    }  # fmt: skip
