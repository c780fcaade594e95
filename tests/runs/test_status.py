"""`make status` (rlvr.status): every kind of run, its real state, progress and latest figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rlvr.liveness import process_identity
from rlvr.status import collect, run_status

REPO = Path(__file__).resolve().parents[2]


def test_a_killed_evaluation_is_died_with_its_progress(tmp_path, dead_identity):
    run = tmp_path / "eval_runs" / "e1"
    run.mkdir(parents=True)
    summary = {"status": "running", "process": dead_identity, "mean_reward": 0.25,
               "counts": {"problems_done": 3, "valid_problems": 80}}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    status = run_status("eval", run)
    assert (status.state, status.step, status.score) == ("died", "3/80 problems", "mean reward 0.250")


def test_a_live_grpo_run_shows_its_step_and_reward(tmp_path):
    run = tmp_path / "grpo_runs" / "g1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps({"status": "running", "process": process_identity(), "config": {"max_steps": 30}})
    )
    lines = [
        {"step": 1, "reward": 0.1, "step_time": 70.0},
        {"event": "resume", "step": 1},
        {"step": 2, "reward": 0.2},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    status = run_status("grpo", run)
    assert (status.state, status.step, status.score) == ("running", "2/30", "reward 0.200")


def test_every_run_root_is_read_from_its_variable(tmp_path):
    for kind, sub in (("grpo", "g"), ("sft", "s")):
        run = tmp_path / f"{kind}_elsewhere" / sub
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"status": "finished"}))
    (tmp_path / "grpo_elsewhere" / "latest").symlink_to("g")  # the pointer is not a second run
    env = {"GRPO_OUTPUT_DIR": str(tmp_path / "grpo_elsewhere"), "SFT_OUTPUT_DIR": str(tmp_path / "sft_elsewhere"),
           "EVAL_OUTPUT_DIR": str(tmp_path / "none"), "PIPELINE_OUTPUT_DIR": str(tmp_path / "none")}  # fmt: skip
    assert [(r.kind, r.name, r.state) for r in collect(env)] == [
        ("grpo", "g", "finished"),
        ("sft", "s", "finished"),
    ]


def test_the_table_names_a_dead_run_on_stderr(tmp_path, dead_identity):
    run = tmp_path / "pipeline_runs" / "p1"
    run.mkdir(parents=True)
    (run / "pipeline.json").write_text(json.dumps({"status": "running", "current": "grpo", "process": dead_identity,
                                                   "phases": [{"status": "done"}, {"status": "running"}]}))  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO), PIPELINE_OUTPUT_DIR=str(tmp_path / "pipeline_runs"),
               GRPO_OUTPUT_DIR=str(tmp_path / "x"), SFT_OUTPUT_DIR=str(tmp_path / "x"), EVAL_OUTPUT_DIR=str(tmp_path / "x"))  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "rlvr.status"], env=env, capture_output=True, text=True, check=True
    )
    row = [line for line in out.stdout.splitlines() if line.startswith("pipeline")]
    assert len(row) == 1 and "died" in row[0] and "grpo (1/2 done)" in row[0]
    assert "pipeline run p1 is recorded as running but its process is gone" in out.stderr
