"""Exact reward values for every stage, through the real compiler and sandbox."""

import pytest

from rlvr.verifier.scoring import STAGES, type_check_credit

CORRECT_BODY = "List.fold_left ( + ) 0 xs"


def score(verifier, problem, text):
    return verifier.score(problem, text)


def test_fenced_body_scores_one(verifier, sum_problem):
    # The anchor project prepended the signature before stripping the fence and scored this 0.063.
    o = score(verifier, sum_problem, f"```ocaml\n{CORRECT_BODY}\n```")
    assert (o.total_reward, o.stage, o.tests_passed, o.tests_total) == (1.0, "pass", 5, 5)


def test_full_definition_scores_one(verifier, sum_problem):
    o = score(verifier, sum_problem, "let sum_list xs = List.fold_left (+) 0 xs")
    assert o.total_reward == 1.0


def test_full_definition_with_helpers_and_rec_scores_one(verifier, sum_problem):
    code = "let rec go acc = function [] -> acc | x :: r -> go (acc + x) r\nlet sum_list (xs : int list) : int = go 0 xs"
    assert score(verifier, sum_problem, code).total_reward == 1.0


def test_body_with_local_recursive_helper_scores_one(verifier, sum_problem):
    body = "let rec go acc = function [] -> acc | x :: r -> go (acc + x) r in\n  go 0 xs"
    assert score(verifier, sum_problem, body).total_reward == 1.0


def test_prompt_types_are_available_to_body_and_full_answers(verifier, tree_problem):
    body = "match t with Leaf -> 0 | Node (l, _, r) -> tree_size l + 1 + tree_size r"
    full = "type tree = Leaf | Node of tree * int * tree\nlet rec tree_size t = match t with Leaf -> 0 | Node (l, _, r) -> tree_size l + 1 + tree_size r"
    assert score(verifier, tree_problem, body).total_reward == 1.0
    assert score(verifier, tree_problem, full).total_reward == 1.0


def test_partial_tests_give_partial_credit(verifier, sum_problem):
    # returns 0 always: passes `sum_list [] = 0` and `sum_list [-1; 1] = 0` only.
    o = score(verifier, sum_problem, "let sum_list xs = 0")
    assert (o.stage, o.tests_passed, o.total_reward) == ("test_failure", 2, 0.61)
    assert o.error == "test 1 returned false: sum_list [5] = 5"


def test_one_raising_assertion_keeps_the_other_credit(verifier, sum_problem):
    code = "let sum_list xs = if xs = [] then raise Not_found else List.fold_left (+) 0 xs"
    o = score(verifier, sum_problem, code)
    assert (o.stage, o.tests_passed, o.total_reward) == ("test_failure", 4, 0.87)
    assert o.error.startswith("test 0 raised Not_found")


def test_one_hanging_assertion_keeps_the_other_credit(verifier, sum_problem):
    code = "let rec sum_list xs = if xs = [5] then sum_list xs else List.fold_left (+) 0 xs"
    o = score(verifier, sum_problem, code)
    assert (o.stage, o.tests_passed, o.total_reward) == ("timeout", 4, 0.87)
    assert o.error.startswith("test 1 timed out")


def test_one_type_error(verifier, sum_problem):
    o = score(verifier, sum_problem, 'let sum_list xs = List.fold_left (+) "" xs')
    assert (o.stage, o.type_errors, o.type_check, o.compile, o.total_reward) == (
        "type_error",
        1,
        0.2,
        0.01,
        0.21,
    )


def test_two_independent_type_errors_score_lower_than_one(verifier, sum_problem):
    code = 'let h1 x = x + "a"\nlet h2 y = y ^ 1\nlet sum_list xs = List.fold_left (+) 0 xs'
    o = score(verifier, sum_problem, code)
    assert (o.type_errors, o.type_check, o.total_reward) == (2, 0.15, 0.16)


def test_three_type_errors_across_dependent_phrases(verifier, sum_problem):
    # h2 uses h1: once h1 is stubbed, h2's own error is still found; sum_list's too.
    code = 'let h1 x = x + "a"\nlet h2 y = h1 y ^ 1\nlet sum_list xs = List.length xs + "s"'
    o = score(verifier, sum_problem, code)
    assert (o.type_errors, o.total_reward) == (3, 0.11)


def test_answer_with_the_wrong_type_is_a_type_error(verifier, sum_problem):
    o = score(verifier, sum_problem, 'let sum_list xs = "six"')
    assert (o.stage, o.type_errors, o.total_reward) == ("type_error", 1, 0.21)
    assert "does not match the problem's signature" in o.error


def test_syntax_error_scores_zero(verifier, sum_problem):
    o = score(verifier, sum_problem, "let sum_list xs = (1 +")
    assert (o.stage, o.total_reward) == ("syntax_error", 0.0)


def test_type_checked_but_failed_to_link_is_a_compile_error(verifier, sum_problem):
    o = score(verifier, sum_problem, "let sum_list xs = Unix.getpid ()")
    assert (o.stage, o.type_check, o.compile, o.total_reward) == ("compile_error", 0.25, 0.05, 0.3)


def test_empty_completion(verifier, sum_problem):
    o = score(verifier, sum_problem, "   \n")
    assert (o.stage, o.total_reward) == ("empty", 0.0)


def test_never_terminating_program_is_a_timeout(verifier, sum_problem):
    o = score(verifier, sum_problem, "let rec sum_list xs = sum_list xs")
    assert (o.stage, o.tests_passed, o.total_reward) == ("timeout", 0, 0.35)


def test_identical_pairs_in_a_batch_are_verified_once(verifier, sum_problem):
    before = verifier.stats["verified"]
    text = f"```ocaml\n{CORRECT_BODY}\n```"
    out = verifier.score_batch([(sum_problem, text)] * 4 + [(sum_problem, CORRECT_BODY)])
    assert [o.total_reward for o in out] == [1.0] * 5
    assert verifier.stats["verified"] - before == 1  # same code after extraction: compiled and run once


def test_every_outcome_has_the_documented_fields(verifier, sum_problem):
    d = score(verifier, sum_problem, CORRECT_BODY).to_dict()
    for key in (
        "id",
        "total_reward",
        "type_check",
        "compile",
        "tests",
        "tests_passed",
        "tests_total",
        "stage",
        "error",
        "is_degenerate",
        "degenerate_reasons",
        "style_penalty",
        "style_reasons",
        "duration_ms",
        "time_limit_s",
    ):
        assert key in d
    assert d["stage"] in STAGES


@pytest.mark.parametrize(
    ("errors", "credit"),
    [
        (0, 0.25),
        (1, 0.2),
        (2, 0.15),
        (3, 0.1),
        (4, 0.05),
        (5, 0.04),
        (6, 0.03),
        (7, 0.025),
        (8, 0.02),
        (9, 0.015),
        (10, 0.01),
        (25, 0.01),
    ],
)
def test_type_check_table(errors, credit):
    assert type_check_credit(errors) == credit
