"""GRPO_CURRICULUM: the order of the train prompts, exactly, and the errors for a bad spec."""

from __future__ import annotations

import json

import pytest

from rlvr.envconf import ConfigError
from rlvr.grpo import curriculum
from rlvr.grpo.config import GRPOTrainConfig
from rlvr.problems import Problem


def problem(pid: str, difficulty: str | None, solution: str = "x") -> Problem:
    return Problem(
        id=pid, prompt=f"let {pid} () =", tests=("true",), solution=solution, difficulty=difficulty
    )


PROBLEMS = [
    problem("h", "hard"),
    problem("m_long", "medium", "x" * 50),
    problem("e_long", "easy", "x" * 40),
    problem("none", None, "x" * 10),
    problem("e_short", "easy", "x" * 5),
    problem("m_short", "medium", "x" * 3),
]


def ids(problems):
    return [p.id for p in problems]


def test_shuffle_keeps_the_order_and_lets_the_trainer_shuffle():
    assert ids(curriculum.order(PROBLEMS, "shuffle")) == ids(PROBLEMS)
    assert curriculum.shuffles("shuffle") and not curriculum.shuffles("easy_first")


def test_easy_first_orders_by_level_then_solution_length():
    # a problem without a difficulty counts as medium
    assert ids(curriculum.order(PROBLEMS, "easy_first")) == [
        "e_short",
        "e_long",
        "m_short",
        "none",
        "m_long",
        "h",
    ]


def write_results(path, rows):
    path.write_text(
        "".join(
            json.dumps({"problem_id": p, "sample": i, "total_reward": r}) + "\n"
            for i, (p, r) in enumerate(rows)
        )
    )
    return path


def test_results_put_varied_problems_first_then_unseen_then_uniform(tmp_path):
    results = write_results(
        tmp_path / "results.jsonl",
        [
            ("h", 0.0), ("h", 0.0),  # uniform: last
            ("e_long", 0.0), ("e_long", 1.0),  # spread 0.5: first
            ("m_long", 0.2), ("m_long", 0.4),  # spread 0.1: second
            ("e_short", 1.0), ("e_short", 1.0),  # uniform
            ("none", None), ("none", 0.3), ("none", 0.3),  # the infra failure (None) is left out: uniform
        ],
    )  # fmt: skip
    order = ids(curriculum.order(PROBLEMS, f"results:{results}"))
    assert order == ["e_long", "m_long", "m_short", "e_short", "h", "none"]
    assert ids(curriculum.order(PROBLEMS, f"results:{tmp_path}")) == order  # an eval run directory works too


def test_results_for_other_problems_are_refused(tmp_path):
    results = write_results(tmp_path / "results.jsonl", [("elsewhere", 0.0), ("elsewhere", 1.0)])
    with pytest.raises(ConfigError, match=r"no rows for any train problem.*--split train"):
        curriculum.order(PROBLEMS, f"results:{results}")


def test_a_bad_results_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"problem_id": "h", "total_reward": 0.0}\n{"sample": 1}\n')
    with pytest.raises(ConfigError, match=r"results.jsonl:2: expected an eval results row"):
        curriculum.order(PROBLEMS, f"results:{path}")


def test_the_setting_is_checked_before_any_model_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"GRPO_CURRICULUM=.hardest'.*shuffle, easy_first"):
        GRPOTrainConfig.from_env({"GRPO_CURRICULUM": "hardest"}, cuda=False, cpu_bf16=False)
    with pytest.raises(ConfigError, match=r"GRPO_CURRICULUM=results:.*no .*results.jsonl"):
        GRPOTrainConfig.from_env({"GRPO_CURRICULUM": f"results:{tmp_path}"}, cuda=False, cpu_bf16=False)
    cfg = GRPOTrainConfig.from_env({"GRPO_CURRICULUM": "easy_first"}, cuda=False, cpu_bf16=False)
    assert cfg.curriculum == "easy_first"
    assert GRPOTrainConfig.from_env({}, cuda=False, cpu_bf16=False).curriculum == "shuffle"


def test_a_grpo_run_sees_the_prompts_in_curriculum_order(tiny_model, tmp_path):
    from .conftest import PROBLEMS as TRAIN
    from .conftest import run_module, train_env

    hard = dict(TRAIN[0], id="double_hard", difficulty="hard")
    path = tmp_path / "problems.jsonl"
    # file order: hard, is_empty (easy, 45-character solution), double (easy, 34 characters)
    path.write_text("".join(json.dumps(p) + "\n" for p in (hard, TRAIN[1], TRAIN[0])))
    env = train_env(tiny_model, path, tmp_path / "runs", GRPO_CURRICULUM="easy_first", GRPO_SAVE_STEPS="10")
    proc = run_module("rlvr.train", env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "runs" / "run" / "completions.jsonl").read_text().splitlines()]
    assert [(r["step"], r["problem_id"]) for r in rows] == [
        (1, "double"),
        (1, "double"),
        (2, "is_empty"),
        (2, "is_empty"),
    ]
    info = json.loads((tmp_path / "runs" / "run" / "run.json").read_text())["config"]
    assert info["curriculum"] == "easy_first" and info["merge_lora_for_generation"] is True
