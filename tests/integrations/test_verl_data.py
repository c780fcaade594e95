"""The converter to verl's parquet layout (verl itself reads it in tests/slow/test_verl.py) and the verl
reward function's exact values, called as verl calls it."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from rlvr.data import REPO_ROOT, DataError, load_problems, multipl_e_file
from rlvr.integrations import verl_reward
from rlvr.integrations.verl_data import convert
from rlvr.prompts import build_messages
from rlvr.service.wire import problem_from_wire


def test_each_row_carries_the_whole_problem_and_its_chat(tmp_path):
    out = tmp_path / "eval.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr.integrations.verl_data", "--split", "eval", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = pq.read_table(out).to_pylist()
    problems = load_problems("bundled", split="eval")[0]
    assert len(rows) == len(problems) and proc.stdout.startswith(f"{out}: {len(problems)} problems (eval)")
    first = rows[0]
    assert first["data_source"] == "ocamler-grpo" and first["ability"] == "coding.ocaml"
    assert first["problem_id"] == problems[0].id
    assert first["prompt"] == build_messages(problems[0])
    assert first["extra_info"]["problem_id"] == problems[0].id and first["extra_info"]["index"] == 0
    p = problem_from_wire(json.loads(first["reward_model"]["ground_truth"]), "row 0")
    assert (p.id, p.prompt, p.tests, p.solution) == (
        problems[0].id, problems[0].prompt, problems[0].tests, problems[0].solution,
    )  # fmt: skip


def test_multipl_e_never_becomes_training_data(tmp_path):
    source = str(multipl_e_file())
    with pytest.raises(DataError, match="MultiPL-E is for evaluation only"):
        convert(source, "train", tmp_path / "x.parquet")
    with pytest.raises(DataError, match="MultiPL-E is for evaluation only"):
        convert(source, None, tmp_path / "x.parquet")
    assert convert(source, "eval", tmp_path / "ok.parquet") > 0


def test_the_reward_scores_as_verl_calls_it(tmp_path):
    convert("bundled", "eval", tmp_path / "e.parquet")
    row = pq.read_table(tmp_path / "e.parquet").to_pylist()[0]
    truth = row["reward_model"]["ground_truth"]
    solution = json.loads(truth)["solution"]
    right = verl_reward.compute_score(
        row["data_source"], f"```ocaml\n{solution}\n```", truth, row["extra_info"]
    )
    assert right == {
        "score": 1.0,
        "pass": 1.0,
        "tests_fraction": 1.0,
        "type_checked": 1.0,
        "infra_error": 0.0,
    }
    batch = verl_reward.compute_score_batch([row["data_source"]] * 2, [solution, "let x = ("], [truth] * 2)
    assert [b["score"] for b in batch] == [1.0, 0.0] and batch[1]["type_checked"] == 0.0


def test_a_ground_truth_that_is_not_a_problem_says_so():
    with pytest.raises(ValueError, match="ground_truth must be a problem as JSON"):
        verl_reward.compute_score("x", "let x = 1", "42 is the answer")
