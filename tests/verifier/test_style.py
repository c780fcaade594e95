"""Style penalty and degenerate rules: each with a true positive and a legitimate near miss.

Scored through the real verifier, so the values are what training sees.
"""

CORRECT_BODY = "List.fold_left ( + ) 0 xs"
FENCED = f"```ocaml\n{CORRECT_BODY}\n```"


def test_one_line_preface_is_not_penalised(verifier, sum_problem):
    o = verifier.score(sum_problem, f"Here is the solution:\n{FENCED}")
    assert (o.total_reward, o.style_penalty, o.is_degenerate) == (1.0, 0.0, False)


def test_extra_code_blocks_cost_002_each(verifier, sum_problem):
    o = verifier.score(
        sum_problem, f"{FENCED}\nUsage:\n```ocaml\nsum_list [1]\n```\n```ocaml\nsum_list []\n```"
    )
    assert (o.style_penalty, o.total_reward) == (0.04, 0.96)
    assert o.style_reasons == ["3 code blocks (one expected)"]


def test_long_prose_after_the_code_costs_003(verifier, sum_problem):
    o = verifier.score(sum_problem, f"{FENCED}\nThis folds over the list, adding each element to the total.")
    assert (o.style_penalty, o.total_reward) == (0.03, 0.97)


def test_short_remark_after_the_code_is_not_penalised(verifier, sum_problem):
    o = verifier.score(sum_problem, f"{FENCED}\nO(n) time.")
    assert o.style_penalty == 0.0


def test_style_only_applies_to_otherwise_perfect_answers(verifier, sum_problem):
    o = verifier.score(
        sum_problem, "```ocaml\nlet sum_list xs = 0\n```\nThis obviously computes the sum of the list."
    )
    assert (o.style_penalty, o.total_reward) == (0.0, 0.61)


def test_stub_body_is_degenerate(verifier, sum_problem):
    o = verifier.score(sum_problem, 'failwith "todo"')
    assert o.degenerate_reasons == ["stub body (failwith/assert false/raise only)"]
    assert o.total_reward == 0.1  # 0.25 + 0.10 - 0.25


def test_stub_full_definition_is_degenerate(verifier, sum_problem):
    o = verifier.score(sum_problem, "let sum_list (xs : int list) : int = assert false")
    assert o.is_degenerate


def test_failwith_guard_in_real_code_is_not_a_stub(verifier, sum_problem):
    code = 'let rec sum_list xs = match xs with\n  | [] -> 0\n  | x :: r when x > max_int -> failwith "overflow"\n  | x :: r -> x + sum_list r'
    o = verifier.score(sum_problem, code)
    assert (o.is_degenerate, o.total_reward) == (False, 1.0)


def test_repetitive_text_is_degenerate(verifier, sum_problem):
    text = FENCED + "\n" + "I hope this helps! " * 40
    o = verifier.score(sum_problem, text)
    assert "repetitive text" in o.degenerate_reasons
    assert o.total_reward == 0.72  # 1.0 - 0.03 prose after the code - 0.25 degenerate


def test_long_legitimate_match_is_not_repetitive(verifier):
    from rlvr.problems import Problem

    p = Problem(
        id="digit",
        prompt="(** [digit_value c] is the value of the decimal digit [c], or -1. *)\nlet digit_value (c : char) : int =",
        tests=(
            "digit_value '0' = 0",
            "digit_value '7' = 7",
            "digit_value 'x' = -1",
            "digit_value '9' = 9",
            "digit_value ' ' = -1",
        ),
    )
    body = "match c with\n" + "".join(f"  | '{d}' -> {d}\n" for d in range(10)) + "  | _ -> -1"
    o = verifier.score(p, f"```ocaml\n{body}\n```")
    assert (o.is_degenerate, o.total_reward) == (False, 1.0)


def test_repeated_line_is_degenerate(verifier, sum_problem):
    code = "let sum_list xs =\n" + "  let _ = List.length xs in\n" * 8 + "  List.fold_left (+) 0 xs"
    assert "a line repeated many times" in verifier.score(sum_problem, code).degenerate_reasons


def test_mostly_prose_is_degenerate(verifier, sum_problem):
    prose = (
        "To solve this problem we consider each element of the list in turn and keep a running total. " * 6
    )
    o = verifier.score(sum_problem, prose + "\n" + FENCED)
    assert "mostly prose, little code" in o.degenerate_reasons


def test_code_block_spam_is_degenerate(verifier, sum_problem):
    text = FENCED + "\n" + "".join(f"```ocaml\nlet v{i} = sum_list [{i}]\n```\n" for i in range(4))
    o = verifier.score(sum_problem, text)
    assert "code-block spam (5 blocks)" in o.degenerate_reasons


def test_three_blocks_are_not_spam(verifier, sum_problem):
    text = FENCED + "\n```ocaml\nlet a = sum_list [1]\n```\n```ocaml\nlet b = sum_list []\n```"
    assert verifier.score(sum_problem, text).is_degenerate is False
