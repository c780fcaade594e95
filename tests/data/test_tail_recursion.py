"""The bundled set's tail-recursion tests still catch non-tail recursion with the verifier's small stack.

The test program runs with a stack of VerifierConfig.stack_words (1 MiB), so the problems' big inputs
(about 100_000 elements) are enough to make a non-tail-recursive answer overflow. For every problem in
non_tail_recursive.json (a natural non-tail-recursive answer per problem), through the real verifier:
the reference scores 1.0, and the non-tail-recursive answer passes every small test and fails every
big one with Stack_overflow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlvr.data import load_problems
from rlvr.verifier import Verifier, VerifierConfig

NON_TAIL_RECURSIVE: dict[str, str] = json.loads(
    (Path(__file__).parent / "non_tail_recursive.json").read_text(encoding="utf-8")
)

# A test is "big" when it mentions a number of at least this many (elements, run lengths, ...): every
# such test of these problems builds an input deep enough to overflow a non-tail recursion.
BIG = 50_000


def big_tests(tests) -> list[int]:
    return [
        i
        for i, t in enumerate(tests)
        if any(int(n.replace("_", "")) >= BIG for n in re.findall(r"\d[\d_]*", t))
    ]


@pytest.fixture(scope="module")
def problems():
    problems, report = load_problems("bundled")
    assert report.skipped == []
    return {p.id: p for p in problems}


@pytest.fixture(scope="module")
def outcomes(problems):
    """(reference outcome, non-tail-recursive outcome) per problem, all scored in one batch."""
    ids = [k for k in NON_TAIL_RECURSIVE if k in problems]
    items = [(problems[k], problems[k].solution) for k in ids]
    items += [(problems[k], NON_TAIL_RECURSIVE[k]) for k in ids]
    with Verifier(VerifierConfig(sandbox="bwrap")) as v:
        scored = v.score_batch(items)
    return {k: (scored[n], scored[len(ids) + n]) for n, k in enumerate(ids)}


def test_names_only_problems_of_the_bundled_set(problems):
    assert NON_TAIL_RECURSIVE
    assert sorted(set(NON_TAIL_RECURSIVE) - set(problems)) == []


@pytest.mark.parametrize("pid", sorted(NON_TAIL_RECURSIVE))
def test_big_tests_catch_non_tail_recursion(pid, problems, outcomes):
    problem = problems[pid]
    big = big_tests(problem.tests)
    assert big, f"{pid} has no big test"
    reference, answer = outcomes[pid]
    assert reference.total_reward == 1.0, reference.error
    assert answer.stage != "infra_error", answer.error
    assert answer.tests_total == len(problem.tests)
    assert answer.tests_passed == answer.tests_total - len(big), answer.error
    assert (answer.error or "").startswith(f"test {big[0]} raised Stack overflow"), answer.error
