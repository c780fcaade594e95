"""`make synth-data` end to end against a real OpenAI-compatible server: scripts/serve_transformers.py
serving the bundled SmolLM2 as the teacher. Both modes run, every answer is scored or rejected with a
reason, the counts add up, and what is written loads (the exact rules are tests/synth's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rlvr.data import REPO_ROOT, load_problems, load_sft_pairs
from tests.eval.conftest import serve_transformers
from tests.train.conftest import PROBLEMS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    log = tmp_path_factory.mktemp("teacher") / "server.log"
    with serve_transformers("bundled", "smollm2-teacher", log, timeout=300) as base:
        yield base


def synth(base: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvr.synth", "--teacher", base, "--no-progress", "--concurrency", "2", *args],
        cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip


def test_solutions_from_a_real_teacher(teacher, tmp_path):
    source = tmp_path / "two.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    out = tmp_path / "solutions.jsonl"
    proc = synth(
        teacher,
        "--mode",
        "solutions",
        "--data",
        str(source),
        "--n",
        "2",
        "--max-tokens",
        "96",
        "--merge",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "solutions.jsonl.summary.json").read_text())
    assert summary["requests"]["made"] == 4 and summary["requests"]["failed"] == 0
    assert summary["kept"] + sum(summary["rejected"].values()) == 4
    assert summary["tokens"]["completion"] > 0 and summary["teacher"]["model"] == "smollm2-teacher"
    problems = load_problems(str(out))[0]  # merged: the two problems, and whatever passed
    assert len(problems) == 2 + summary["kept"]
    assert len(load_sft_pairs(str(out))) == 2 + summary["kept"]


def test_new_problems_from_a_real_teacher(teacher, tmp_path):
    out = tmp_path / "problems.jsonl"
    proc = synth(
        teacher, "--mode", "problems", "--n", "2", "--max-tokens", "160", "--merge", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "problems.jsonl.summary.json").read_text())
    assert summary["requests"]["made"] == 2
    assert summary["kept"] + sum(summary["rejected"].values()) == 2
    train = load_problems("bundled", split="train")[0]
    assert len(load_problems(str(out))[0]) == len(train) + summary["kept"]
