"""Two training processes (torchrun, gloo on CPU): both train, only rank 0 writes the run files, and
what it writes covers both ranks' completions exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.train.conftest import REPO, problems_file, tiny_model, train_env  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_two_processes_train_and_only_rank_0_writes(tiny_model, problems_file, tmp_path):  # noqa: F811
    env = train_env(tiny_model, problems_file, tmp_path / "runs", GRPO_SAVE_STEPS="2", OMP_NUM_THREADS="1")
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29519", "-m", "rlvr.train"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("resolved configuration") == 2  # two ranks really ran
    run = tmp_path / "runs" / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "batch_metrics.jsonl", "checkpoints", "completions.jsonl", "final", "metrics.jsonl", "rewards",
        "run.json", "tb",
    ]  # fmt: skip
    steps = [r["step"] for r in lines(run / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2]  # one line per step, not one per rank
    assert [r["step"] for r in lines(run / "batch_metrics.jsonl")] == [1, 2]
    # Each step: 2 ranks x 1 prompt x 2 generations, gathered on rank 0 and written once.
    completions = lines(run / "completions.jsonl")
    assert Counter(r["step"] for r in completions) == {1: 4, 2: 4}
    per_step = {s: Counter(r["problem_id"] for r in completions if r["step"] == s) for s in (1, 2)}
    assert per_step == {1: {"double": 2, "is_empty": 2}, 2: {"double": 2, "is_empty": 2}}
    rewards = lines(run / "rewards" / "ocaml.jsonl")
    assert len(rewards) == 8
    assert [r["total_reward"] for r in rewards] == [r["reward"] for r in completions]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished"
    assert (run / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").is_file()
    assert sorted(os.listdir(tmp_path / "runs")) == ["latest", "run"]  # rank 1 made no run dir of its own
