"""The learning report's numbers on constructed eval runs: exact rates, differences, improved and
regressed problems, and the goals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.learning_report import build_summary, write_learning_report

# (stage, total_reward, type_check, compile, tests_passed) per sample; 2 samples per problem
BASE = {
    "e1": [("syntax_error", 0.0, 0.0, 0.0, 0), ("syntax_error", 0.0, 0.0, 0.0, 0)],
    "e2": [("type_error", 0.21, 0.20, 0.01, 0), ("syntax_error", 0.0, 0.0, 0.0, 0)],
    "h1": [("test_failure", 0.61, 0.25, 0.10, 1), ("syntax_error", 0.0, 0.0, 0.0, 0)],
}
FINAL = {
    "e1": [("pass", 1.0, 0.25, 0.10, 2), ("test_failure", 0.675, 0.25, 0.10, 1)],
    "e2": [("type_error", 0.21, 0.20, 0.01, 0), ("type_error", 0.21, 0.20, 0.01, 0)],
    "h1": [("syntax_error", 0.0, 0.0, 0.0, 0), ("syntax_error", 0.0, 0.0, 0.0, 0)],
}
DIFFICULTY = {"e1": "easy", "e2": "easy", "h1": "hard"}


def write_eval_run(path: Path, samples: dict) -> None:
    path.mkdir(parents=True)
    rows = []
    for pid, outs in samples.items():
        for j, (stage, reward, tc, comp, passed) in enumerate(outs):
            rows.append(
                {"problem_id": pid, "sample": j, "stage": stage, "total_reward": reward, "type_check": tc,
                 "compile": comp, "tests_passed": passed, "tests_total": 2, "finish_reason": "stop"}
            )  # fmt: skip
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "status": "complete",
        "settings": {"n": 2, "ks": [1, 2], "temperature": 0.9},
        "problems": [{"id": pid, "difficulty": DIFFICULTY[pid]} for pid in samples],
    }
    (path / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def pipeline_dir(tmp_path: Path) -> Path:
    write_eval_run(tmp_path / "eval" / "base", BASE)
    write_eval_run(tmp_path / "eval" / "final", FINAL)
    state = {
        "name": "p",
        "status": "running",
        "config": {"model": "bundled"},
        "phases": [
            {"name": "eval_base", "status": "done", "runs": {"sampled": str(tmp_path / "eval" / "base")}},
            {"name": "eval_final", "status": "done", "runs": {"sampled": str(tmp_path / "eval" / "final")}},
            {"name": "report", "status": "running", "runs": {}},
        ],
    }
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(state))
    return tmp_path / "p"


def test_rates_differences_and_ratio_are_exact(pipeline_dir):
    s = build_summary(pipeline_dir)
    block = s["eval"]["sampled"]
    base, final = block["models"]["base"]["rates"], block["models"]["final"]["rates"]
    # mean reward per problem: base (0, 0.105, 0.305) -> 0.136666..; final (0.8375, 0.21, 0) -> 0.349166..
    assert base["mean_reward"]["estimate"] == pytest.approx(0.41 / 3)
    assert final["mean_reward"]["estimate"] == pytest.approx(1.0475 / 3)
    assert (base["parsed"]["estimate"], final["parsed"]["estimate"]) == (
        pytest.approx(1 / 3),
        pytest.approx(2 / 3),
    )
    assert final["pass@1"]["estimate"] == pytest.approx(1 / 6)
    diff = block["compare"]["final_vs_base"]["diff"]
    assert diff["mean_reward"]["estimate"] == pytest.approx((1.0475 - 0.41) / 3)
    assert diff["mean_reward"]["exact"] and diff["mean_reward"]["resamples"] == 27
    # per-problem differences (0.8375, 0.105, -0.305): the all-h1 and all-e1 resamples have 1/27 =
    # 0.037 each, more than 2.5 %, so the 95 % interval is exactly [-0.305, 0.8375]
    assert (diff["mean_reward"]["low"], diff["mean_reward"]["high"]) == (
        pytest.approx(-0.305),
        pytest.approx(0.8375),
    )
    ratio = block["compare"]["final_vs_base"]["reward_ratio"]
    assert ratio["estimate"] == pytest.approx(1.0475 / 0.41)
    # pass@2 of e1 is 1 (one of two samples passes): final pass@2 = 1/3 over the three problems
    assert block["models"]["final"]["pass_at_k"]["pass@2"]["estimate"] == pytest.approx(1 / 3)


def test_improved_and_regressed_problems(pipeline_dir):
    cmp = build_summary(pipeline_dir)["eval"]["sampled"]["compare"]["final_vs_base"]
    assert [e["id"] for e in cmp["improved"]] == ["e1", "e2"]  # e1 now passes; e2 +0.105 reward
    assert [e["id"] for e in cmp["regressed"]] == ["h1"]
    e1 = cmp["improved"][0]
    assert (e1["before_pass"], e1["after_pass"], e1["before_stage"], e1["after_stage"]) == (
        0.0,
        0.5,
        "syntax_error",
        "pass",
    )


def test_by_difficulty_and_goals(pipeline_dir):
    s = build_summary(pipeline_dir)
    final = s["eval"]["sampled"]["models"]["final"]
    assert list(final["by_difficulty"]) == ["easy", "hard"]
    assert final["by_difficulty"]["easy"]["pass@1"]["estimate"] == pytest.approx(0.25)
    goals = {g["goal"]: g for g in s["goals"]}
    assert goals["pass@1 above 0 on the easy problems"]["met"] is True
    assert goals["mean reward >= 3x the base model's"]["met"] is False  # 2.55x
    assert goals["parsed rate >= 60%"]["met"] is True  # 2/3
    assert goals["type-checked rate >= 20%"]["met"] is True  # (1 + 0.5 + 0) / 3 = 0.5
    assert s["status"] == "finished"  # only the report phase was left


def test_the_report_is_written_and_self_contained(pipeline_dir):
    paths = write_learning_report(pipeline_dir)
    html = paths["report"].read_text()
    assert "Learning report: p" in html and "e1" in html and "h1" in html
    assert "<script" not in html and "src=" not in html
    assert json.loads(paths["summary"].read_text())["pipeline"] == "p"
