"""SFT -> GRPO: a GRPO run started from an SFT adapter trains on top of the SFT weights, and merging the
GRPO adapter brings both back (base, then SFT, then GRPO)."""

from __future__ import annotations

import json

import torch

from rlvr.export.merge import adapter_chain, load_merged
from rlvr.models import load_tokenizer
from rlvr.prompts import build_messages, render
from tests.train.conftest import PROBLEMS, train_env

from .conftest import run_module, sft_env, write_problems


def logits(model, tokenizer) -> torch.Tensor:
    from rlvr.problems import Problem

    problem = Problem(id="double", prompt=PROBLEMS[0]["prompt"], tests=tuple(PROBLEMS[0]["tests"]))
    inputs = tokenizer(
        render(tokenizer, build_messages(problem)), return_tensors="pt", add_special_tokens=False
    )
    with torch.no_grad():
        return model.eval()(**inputs).logits[0]


def test_grpo_starts_from_the_sft_adapter_and_merges_the_whole_chain(tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    problems = write_problems(tmp_path / "problems.jsonl")
    sft = run_module("sft.train", sft_env(tiny_model, problems, tmp_path / "sft", SFT_LEARNING_RATE="0.01"))
    assert sft.returncode == 0, sft.stderr[-3000:]
    sft_adapter = tmp_path / "sft" / "run" / "final"

    env = train_env(
        tiny_model, problems, tmp_path / "grpo", BASE_MODEL_ID=str(sft_adapter), GRPO_MAX_STEPS="1"
    )
    grpo = run_module("rlvr.train", env)
    assert grpo.returncode == 0, grpo.stdout[-2000:] + grpo.stderr[-3000:]
    assert f"{sft_adapter} is a LoRA adapter: merging it into its base in memory" in grpo.stdout
    assert "hint:" not in grpo.stdout  # an SFT result: no hint to run SFT first
    grpo_adapter = tmp_path / "grpo" / "run" / "final"
    recorded = json.loads((grpo_adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == str(sft_adapter.resolve())
    assert adapter_chain(grpo_adapter) == [str(grpo_adapter), str(sft_adapter.resolve()), str(tiny_model)]

    tokenizer = load_tokenizer(str(tiny_model))
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    with_sft = PeftModel.from_pretrained(base, str(sft_adapter)).merge_and_unload()
    expected = PeftModel.from_pretrained(with_sft, str(grpo_adapter)).merge_and_unload()
    assert torch.allclose(
        logits(load_merged(grpo_adapter), tokenizer), logits(expected, tokenizer), atol=1e-5
    )
    # and the SFT weights matter: the GRPO adapter alone on the bare base is another model
    grpo_only = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(grpo_adapter))
    assert not torch.allclose(
        logits(grpo_only.merge_and_unload(), tokenizer), logits(expected, tokenizer), atol=1e-4
    )
