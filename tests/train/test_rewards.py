"""Every registered reward function on fixed completions, with exact values (doc/reward.md's tables),
through the real verifier and the TRL-facing adapter (rlvr.grpo.rewards.make_reward_function)."""

from __future__ import annotations

import pytest

from rlvr.grpo.reward_log import batch_metrics
from rlvr.grpo.rewards import SCORERS, RewardContext, RewardSettings, build_reward_functions
from rlvr.verifier import Verifier, VerifierConfig

SIG = "let sum_list (xs : int list) : int ="
COMPLETIONS = {
    # 5/5 tests: 0.25 + 0.10 + 0.65
    "pass": f"```ocaml\n{SIG} List.fold_left ( + ) 0 xs\n```",
    # 3/5 tests ([] , [5], [-1; 1]): 0.25 + 0.10 + 0.65 * 3/5 = 0.74
    "partial": f"```ocaml\n{SIG} match xs with [] -> 0 | [x] -> x | _ -> 0\n```",
    # one type error: 0.20, and 0.01 compile credit after type errors
    "type_error": f'```ocaml\n{SIG} "zero"\n```',
    "syntax_error": f"```ocaml\n{SIG} (((\n```",
    # the same line 30 times: degenerate (repetitive), 2/5 tests: 0.61 - 0.25
    "degenerate": "```ocaml\n" + "let sum_list xs = 0\n" * 30 + "```",
    # a passing answer with more than 30 characters of prose after the fence: style penalty 0.03
    "pass_prose": f"```ocaml\n{SIG} List.fold_left ( + ) 0 xs\n```\n"
    "This folds the list with addition, starting from zero, which is the sum.",
}
NAMES = list(COMPLETIONS)

EXPECTED = {
    "ocaml": [1.0, 0.74, 0.21, 0.0, 0.36, 0.97],
    "pass_partial_fail": [1.0, 0.2, -0.5, -0.5, 0.2, 1.0],
    # 0.3 compiled + 0.6 tests share + 0.1 clean style; below compile, "compiled" is (type_check +
    # compile) / 0.35 * 0.5: type error (0.21 / 0.35) * 0.5 = 0.3 -> 0.09 + 0.1 = 0.19
    "weighted": [1.0, 0.76, 0.19, 0.1, 0.54, 0.97],
}
# REWARD_QUALITY_BONUS=1: +0.05 each for a doc comment, lines <= 100, a concise answer, annotated params
EXPECTED_WITH_BONUS = {**EXPECTED, "pass_partial_fail": [1.15, 0.35, -0.5, -0.5, 0.3, 1.1]}


def rewards(verifier, sum_problem, settings: RewardSettings) -> dict[str, list[float | None]]:
    ctx = RewardContext(verifier, [sum_problem], None, settings)
    funcs, weights = build_reward_functions(list(SCORERS), ctx)
    assert weights == [1.0, 1.0, 1.0]
    texts = [COMPLETIONS[n] for n in NAMES]
    return {f.__name__: f([None] * len(texts), texts, problem_id=["sum_list"] * len(texts)) for f in funcs}


def test_the_registry_names():
    assert list(SCORERS) == ["ocaml", "pass_partial_fail", "weighted"]


def test_exact_values_of_every_reward(verifier, sum_problem):
    assert rewards(verifier, sum_problem, RewardSettings()) == EXPECTED


def test_quality_bonus_changes_only_pass_partial_fail(verifier, sum_problem):
    assert rewards(verifier, sum_problem, RewardSettings(quality_bonus=True)) == EXPECTED_WITH_BONUS


def test_weights_are_read_from_the_spec(verifier, sum_problem):
    ctx = RewardContext(verifier, [sum_problem])
    funcs, weights = build_reward_functions(["ocaml", "weighted:0.5"], ctx)
    assert ([f.__name__ for f in funcs], weights) == (["ocaml", "weighted"], [1.0, 0.5])
    with pytest.raises(ValueError, match="unknown reward 'bogus'"):
        build_reward_functions(["bogus"], ctx)


def test_an_infrastructure_failure_is_none_for_every_reward(sum_problem):
    with Verifier(VerifierConfig(retries=0)) as v:
        v.sandbox.bwrap = "/nonexistent/bwrap"  # the sandbox cannot start
        ctx = RewardContext(v, [sum_problem])
        funcs, _ = build_reward_functions(list(SCORERS), ctx)
        for f in funcs:
            assert f([None], [COMPLETIONS["pass"]], problem_id=["sum_list"]) == [None], f.__name__


def test_an_unknown_problem_id_is_an_error_not_a_score(verifier, sum_problem):
    funcs, _ = build_reward_functions(["ocaml"], RewardContext(verifier, [sum_problem]))
    with pytest.raises(KeyError, match="unknown problem id"):
        funcs[0]([None], ["0"], problem_id=["not_a_problem"])


def test_batch_metrics_of_constructed_groups_are_exact():
    def rec(pid: str, stage: str, reward: float, passed: int) -> dict:
        outcome = {
            "stage": stage,
            "total_reward": reward,
            "tests_passed": passed,
            "tests_total": 4,
            "error": None,
        }
        return {"problem_id": pid, "outcome": outcome}

    records = [
        rec("a", "pass", 1.0, 4),
        rec("a", "test_failure", 0.5125, 1),
        rec("b", "syntax_error", 0.0, 0),
        rec("b", "syntax_error", 0.0, 0),
    ]
    m = batch_metrics(3, records)
    assert (m["step"], m["n_completions"], m["n_problems"], m["k"]) == (3, 4, 2, 2)
    assert (m["pass@1"], m["pass@k"]) == (0.25, 0.5)  # a: 1 of 2, b: 0 of 2; a solved at k = 2
    assert m["reward_mean"] == pytest.approx(1.5125 / 4)
    assert m["stage_counts"] == {"pass": 1, "test_failure": 1, "compile_error": 0, "type_error": 0,
                                 "syntax_error": 2, "timeout": 0, "empty": 0, "infra_error": 0}  # fmt: skip
    assert m["reward_histogram"]["counts"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert (m["partial_tests"], m["infra_errors"]) == (1, 0)


def test_only_the_first_reward_logs_the_verifier_metrics(verifier, sum_problem):
    funcs, _ = build_reward_functions(["weighted", "ocaml"], RewardContext(verifier, [sum_problem]))
    logged: dict[str, list] = {"weighted": [], "ocaml": []}
    for f in funcs:
        f(
            [None, None], [COMPLETIONS["pass"], COMPLETIONS["syntax_error"]], problem_id=["sum_list"] * 2,
            log_metric=lambda name, value, f=f: logged[f.__name__].append((name, value)),
        )  # fmt: skip
    assert logged["weighted"] == [
        ("verifier/pass_rate", 0.5), ("verifier/compile_rate", 0.5), ("verifier/infra_errors", 0.0)
    ]  # fmt: skip
    assert logged["ocaml"] == []


def test_the_reward_files_are_written_for_a_run(verifier, sum_problem, tmp_path):
    import json

    from rlvr.runlog import RunDir

    run = RunDir(tmp_path, "r")
    funcs, _ = build_reward_functions(["ocaml"], RewardContext(verifier, [sum_problem], run))
    completions = [COMPLETIONS["pass"], COMPLETIONS["partial"]]
    funcs[0]([None, None], completions, problem_id=["sum_list"] * 2)
    run.close()
    batch = json.loads((run.path / "batch_metrics.jsonl").read_text())
    assert (batch["step"], batch["n_completions"], batch["pass@1"]) == (1, 2, 0.5)
    rows = [json.loads(x) for x in (run.path / "completions.jsonl").read_text().splitlines()]
    assert [(r["group_index"], r["reward"], r["stage"]) for r in rows] == [
        (0, 1.0, "pass"),
        (1, 0.74, "test_failure"),
    ]
    rewards = [json.loads(x) for x in (run.path / "rewards" / "ocaml.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in rewards] == [1.0, 0.74]
