"""SFT settings: bad values stop before any model loads, naming the variable; data errors name the row."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlvr.data import DataError
from rlvr.envconf import ConfigError
from sft.config import SFTTrainConfig
from sft.data import example, sft_problems

from .conftest import REPO, sft_env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SFT_MAX_STEPS": "ten"}, "SFT_MAX_STEPS='ten': expected an integer"),
        ({"SFT_MAX_STEPS": "0"}, "SFT_MAX_STEPS=0: expected a positive step count"),
        ({"SFT_EPOCHS": "0"}, "SFT_EPOCHS=0.0: expected a number > 0"),
        ({"SFT_LEARNING_RATE": "2"}, "SFT_LEARNING_RATE='2': expected a number in"),
        ({"SFT_BATCH_SIZE": "0"}, "SFT_BATCH_SIZE='0': expected an integer >= 1"),
        ({"SFT_MAX_LENGTH": "8"}, "SFT_MAX_LENGTH='8': expected an integer >= 32"),
        ({"SFT_PROFILE": "tpu"}, "SFT_PROFILE='tpu': expected one of cpu, cuda"),
        ({"SFT_REPORT_TO": "neptune"}, "'neptune' is not one of tensorboard, wandb, trackio, none"),
        ({"LORA_R": "x"}, "LORA_R='x': expected an integer"),
        ({"SFT_DATA_ON_ERROR": "ignore"}, "SFT_DATA_ON_ERROR='ignore': expected one of raise, skip"),
    ],
)
def test_bad_value_names_the_variable(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        SFTTrainConfig.from_env(env, cuda=False)


def test_profiles():
    cpu = SFTTrainConfig.from_env({}, cuda=False, cpu_bf16=False)
    assert (cpu.model, cpu.dataset, cpu.eval_dataset, cpu.bf16, cpu.max_steps, cpu.epochs) == (
        "bundled", "bundled", "bundled", False, -1, 2.0,
    )  # fmt: skip
    assert SFTTrainConfig.from_env({}, cuda=False, cpu_bf16=True).bf16 is True
    with pytest.raises(ConfigError, match="SFT_BF16=1 on CPU needs AVX512-BF16 or AMX"):
        SFTTrainConfig.from_env({"SFT_BF16": "1"}, cuda=False, cpu_bf16=False)
    gpu = SFTTrainConfig.from_env({}, cuda=True)
    assert (gpu.model, gpu.bf16, gpu.lora.r) == ("Qwen/Qwen2.5-Coder-1.5B-Instruct", True, 64)
    assert SFTTrainConfig.from_env({"SFT_EVAL_DATASET": "none"}, cuda=False).eval_dataset is None
    # 4 examples a step on cpu, one at a time: no padding, and a quarter of the logits' memory.
    assert (cpu.batch_size, cpu.grad_accum, gpu.batch_size, gpu.grad_accum) == (1, 4, 8, 2)


def test_train_exits_2_before_loading_a_model(tmp_path):
    env = sft_env(tmp_path / "no-model", tmp_path / "none.jsonl", tmp_path / "runs", SFT_MAX_STEPS="-5")
    proc = subprocess.run(
        [sys.executable, "-m", "sft.train"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "configuration error: SFT_MAX_STEPS=-5" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_multipl_e_is_refused_for_training(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    row = {
        "name": "mbpp_1",
        "prompt": "let f (x : int) : int =",
        "tests": "assert (f 1 = 1)",
        "stop_tokens": [],
    }
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="MultiPL-E data is for evaluation only"):
        sft_problems(str(path), "train")


def test_sft_schema_rows_without_a_signature_raise_or_are_skipped(tmp_path):
    path = tmp_path / "sft.jsonl"
    rows = [
        {"prompt": "(** [inc x] is x + 1. *)\nlet inc (x : int) : int =", "solution": "```ocaml\nx + 1\n```"},
        {"prompt": "Write a function that adds one.", "solution": "let inc x = x + 1"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"row row2: no usable signature.*SFT_DATA_ON_ERROR=skip"):
        sft_problems(str(path), "train")
    problems, skipped = sft_problems(str(path), "train", on_error="skip")
    assert [p.id for p in problems] == ["row1"] and len(skipped) == 1
    # a fenced solution (kiranpg's form) is unwrapped once, then fenced once by reference_answer
    assert (
        example(problems[0])["completion"][0]["content"]
        == "```ocaml\nlet inc (x : int) : int =\n  x + 1\n```"
    )
