"""Check a problem set with the verifier itself: `python -m rlvr.validate --data <path-or-id>`.

For every problem: it has a signature; its tests compile against that signature (a stub of it);
its reference solution (if any) scores exactly 1.0; a `failwith "todo"` body and a type-correct
constant answer score below 1.0 (the tests discriminate). Prints a summary table, every problem's time
limit (derived from its reference's CPU time, or the fixed one), lists failures, exits 1 if any problem
fails a check.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field

from .data import DataError, load_problems
from .problems import Problem
from .verifier import Verifier, VerifierConfig
from .verifier.ocaml_source import SignatureError
from .verifier.time_limits import TimeLimit

_CONSTANTS = [
    (r"int", "0"),
    (r"bool", "false"),
    (r"string", '""'),
    (r"float", "0.0"),
    (r"char", "'a'"),
    (r"unit", "()"),
    (r".*\blist", "[]"),
    (r".*\boption", "None"),
    (r".*\barray", "[||]"),
]


def return_type(problem: Problem) -> str | None:
    m = re.search(r"\)\s*:\s*([^=]+?)\s*=\s*$", problem.signature.line, re.S)
    return " ".join(m.group(1).split()) if m else None


def constant_answer(problem: Problem) -> str | None:
    """A type-correct constant for the problem's return type, where one is obvious."""
    rt = return_type(problem)
    if rt is None:
        return None
    for pattern, const in _CONSTANTS:
        if re.fullmatch(pattern, rt):
            return const
    return None


@dataclass
class ProblemReport:
    id: str
    split: str
    difficulty: str | None
    failures: list[str] = field(default_factory=list)
    time_limit: TimeLimit | None = None


def validate(problems: list[Problem], verifier: Verifier) -> list[ProblemReport]:
    reports = {p.id: ProblemReport(p.id, p.split, p.difficulty) for p in problems}
    valid: list[Problem] = []
    for p in problems:
        try:
            p.signature  # noqa: B018 - parse it
        except SignatureError as e:
            reports[p.id].failures.append(f"no signature: {e}")
            continue
        reason = verifier.check_problem(p)
        if reason:
            reports[p.id].failures.append(f"tests do not compile: {reason}")
        else:
            valid.append(p)
    for pid, limit in verifier.calibrate(valid).items():
        reports[pid].time_limit = limit
    jobs: list[tuple[str, Problem, str]] = []
    for p in valid:
        if p.solution:
            jobs.append(("reference", p, p.solution))
        jobs.append(("failwith", p, 'failwith "todo"'))
        const = constant_answer(p)
        if const is not None:
            jobs.append(("constant", p, const))
    outcomes = verifier.score_batch([(p, text) for _, p, text in jobs])
    for (kind, p, _), o in zip(jobs, outcomes):
        r = reports[p.id]
        if kind == "reference" and o.total_reward != 1.0:
            r.failures.append(f"reference solution scores {o.total_reward} ({o.stage}: {o.error})")
        elif kind != "reference" and o.tests_passed == o.tests_total and o.stage != "infra_error":
            r.failures.append(f"a {kind} answer passes every test (the tests do not discriminate)")
    return list(reports.values())


def summary_table(reports: list[ProblemReport]) -> str:
    rows = Counter((r.split, r.difficulty or "-") for r in reports)
    bad = Counter((r.split, r.difficulty or "-") for r in reports if r.failures)
    lines = [f"{'split':<7}{'difficulty':<12}{'problems':>9}{'failing':>9}"]
    for key in sorted(rows):
        lines.append(f"{key[0]:<7}{key[1]:<12}{rows[key]:>9}{bad[key]:>9}")
    lines.append(f"{'total':<19}{len(reports):>9}{sum(bad.values()):>9}")
    return "\n".join(lines)


def limits_table(reports: list[ProblemReport]) -> str:
    """Every problem's time limit, slowest reference first, and how the limits are spread."""
    rows = sorted(
        (r for r in reports if r.time_limit),
        key=lambda r: (-(r.time_limit.reference_cpu_s or -1.0), r.id),  # type: ignore[union-attr]
    )
    lines = [f"{'problem':<34}{'reference CPU':>14}{'limit per run':>15}{'budget':>8}"]
    for r in rows:
        lim = r.time_limit
        assert lim is not None
        ref = f"{lim.reference_cpu_s:.3f} s" if lim.reference_cpu_s is not None else "-"
        kind = "" if lim.reference_cpu_s is not None else "  (fixed)"
        lines.append(f"{r.id:<34}{ref:>14}{lim.run_cpu_s:>13.3f} s{lim.budget_s:>6.2f} s{kind}")
    derived = [
        r.time_limit.run_cpu_s for r in rows if r.time_limit and r.time_limit.reference_cpu_s is not None
    ]
    if derived:
        derived.sort()
        lines.append(
            f"{len(derived)} derived limits: median {derived[len(derived) // 2]:.3f} s, "
            f"largest {derived[-1]:.3f} s; {len(rows) - len(derived)} fixed"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlvr.validate", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", default="bundled", help="bundled (default), a .jsonl/.json/.csv/.parquet file or an HF id"
    )
    ap.add_argument("--split", choices=["train", "eval"], default=None)
    args = ap.parse_args(argv)
    try:
        problems, load = load_problems(args.data, split=args.split, on_error="skip")
        verifier = Verifier(VerifierConfig.from_env())
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(load.summary())
    for reason in load.skipped:
        print(f"  skipped: {reason}")
    with verifier:
        reports = validate(problems, verifier)
    print(limits_table(reports))
    print(summary_table(reports))
    failing = [r for r in reports if r.failures]
    for r in failing:
        for f in r.failures:
            print(f"FAIL {r.id}: {f}")
    return 1 if failing or load.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
