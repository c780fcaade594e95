"""The bundled problem set: schema, breadth, and validation through the real verifier."""

from collections import Counter

import pytest

from rlvr.data import BUNDLED_PROBLEMS, load_problems
from rlvr.validate import validate


@pytest.fixture(scope="module")
def problems():
    problems, report = load_problems("bundled")
    assert report.skipped == []
    return problems


def test_size_and_held_out_split(problems):
    assert len(problems) >= 300
    assert sum(p.split == "eval" for p in problems) >= 60


def test_ids_are_unique(problems):
    assert len({p.id for p in problems}) == len(problems)


def test_difficulties_are_roughly_thirds(problems):
    counts = Counter(p.difficulty for p in problems)
    assert set(counts) == {"easy", "medium", "hard"}
    assert min(counts.values()) >= len(problems) // 4


def test_every_prompt_ends_with_its_signature(problems):
    for p in problems:
        assert p.prompt.rstrip().endswith("="), p.id
        assert p.prompt.rstrip().endswith(p.signature.line), p.id
        assert "(**" in p.prompt, p.id


def test_every_problem_has_at_least_five_assertions_and_a_solution(problems):
    for p in problems:
        assert len(p.tests) >= 5, p.id
        assert p.solution, p.id


def test_breadth_of_topics(problems):
    tags = Counter(t for p in problems for t in p.tags)
    for topic in (
        "lists",
        "recursion",
        "tail-recursion",
        "options",
        "result",
        "strings",
        "chars",
        "buffer",
        "arithmetic",
        "tuples",
        "records",
        "variants",
        "trees",
        "higher-order",
        "folds",
        "arrays",
        "mutation",
        "hashtbl",
        "map",
        "set",
        "functors",
        "exceptions",
        "sorting",
        "binary-search",
        "parsing",
        "lazy",
        "seq",
    ):
        assert tags[topic] >= 1, topic


def test_every_problem_validates_through_the_verifier(problems, verifier):
    # reference scores exactly 1.0; tests compile against the signature; failwith "todo" and a
    # type-correct constant answer do not pass every test.
    reports = validate(problems, verifier)
    failing = [(r.id, r.failures) for r in reports if r.failures]
    assert failing == []
    # and every reference was timed, so every problem has a limit derived from it
    assert [r.id for r in reports if r.time_limit is None or r.time_limit.reference_cpu_s is None] == []


def test_bundled_file_is_the_one_in_the_repo():
    assert BUNDLED_PROBLEMS.name == "ocaml_problems.jsonl"
    assert BUNDLED_PROBLEMS.exists()
