"""Fixtures for training tests: a tiny random model and a small problem file, built in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBLEMS = [
    {
        "id": "double",
        "prompt": "(** [double x] is twice [x]. *)\nlet double (x : int) : int =",
        "tests": ["double 0 = 0", "double 2 = 4", "double (-3) = -6", "double 50 = 100", "double 1 = 2"],
        "solution": "let double (x : int) : int = 2 * x",
        "difficulty": "easy",
        "tags": ["arithmetic"],
        "split": "train",
    },
    {
        "id": "is_empty",
        "prompt": "(** [is_empty xs] is true when [xs] has no elements. *)\nlet is_empty (xs : int list) : bool =",
        "tests": [
            "is_empty []",
            "not (is_empty [1])",
            "not (is_empty [1; 2])",
            "is_empty (List.tl [3])",
            "not (is_empty [0])",
        ],
        "solution": "let is_empty (xs : int list) : bool = xs = []",
        "difficulty": "easy",
        "tags": ["lists"],
        "split": "train",
    },
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from rlvr.models import tiny_random_model

    return tiny_random_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture()
def problems_file(tmp_path) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def train_env(model: Path, problems: Path, out: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
        BASE_MODEL_ID=str(model),
        TRAINING_DATASET=str(problems),
        GRPO_OUTPUT_DIR=str(out),
        # `launch stop` stops every kind it finds: keep it away from a real pipeline in the repo
        SFT_OUTPUT_DIR=str(out / "_sft_runs"),
        PIPELINE_OUTPUT_DIR=str(out / "_pipeline_runs"),
        EVAL_OUTPUT_DIR=str(out / "_eval_runs"),
        GRPO_RUN_NAME="run",
        GRPO_MAX_STEPS="2",
        GRPO_NUM_GENERATIONS="2",
        GRPO_MAX_COMPLETION_LENGTH="16",
        GRPO_SAVE_STEPS="1",
        GRPO_MONITOR="0",
        GRPO_PROFILE="cpu",
    )
    env.update(extra)
    return env


def read_jsonl(path: Path) -> list[dict]:
    """Every line of a run file (blank lines skipped)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_module(module: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
