"""Fixtures for SFT tests: the tiny random model of tests/train and a problem file with both splits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.train.conftest import PROBLEMS, REPO, run_module, tiny_model  # noqa: F401  (fixture re-export)

EVAL_PROBLEMS = [
    {
        "id": "triple",
        "prompt": "(** [triple x] is three times [x]. *)\nlet triple (x : int) : int =",
        "tests": ["triple 0 = 0", "triple 2 = 6"],
        "solution": "3 * x",  # a body only: reference_answer adds the signature
        "split": "eval",
    },
    {
        "id": "negate",
        "prompt": "(** [negate b] is the boolean negation of [b]. *)\nlet negate (b : bool) : bool =",
        "tests": ["negate true = false", "negate false = true"],
        "solution": "let negate (b : bool) : bool = not b",
        "split": "eval",
    },
]


def write_problems(path: Path) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in [*PROBLEMS, *EVAL_PROBLEMS]))
    return path


@pytest.fixture()
def sft_problems(tmp_path) -> Path:
    return write_problems(tmp_path / "problems.jsonl")


def sft_env(model: Path, problems: Path, out: Path, **extra: str) -> dict[str, str]:
    """Environment for a tiny CPU SFT run: train and eval splits of `problems`, no monitors."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
        BASE_MODEL_ID=str(model),
        SFT_DATASET=str(problems),
        SFT_EVAL_DATASET=str(problems),
        SFT_OUTPUT_DIR=str(out),
        # `launch stop` stops every kind it finds: keep it away from a real GRPO run or pipeline in the repo
        GRPO_OUTPUT_DIR=str(out / "_grpo_runs"),
        PIPELINE_OUTPUT_DIR=str(out / "_pipeline_runs"),
        SFT_RUN_NAME="run",
        SFT_MAX_STEPS="2",
        SFT_BATCH_SIZE="1",
        SFT_EVAL_STEPS="1",
        SFT_SAVE_STEPS="1",
        SFT_PROFILE="cpu",
        GRPO_MONITOR="0",
    )
    env.update(extra)
    return env
