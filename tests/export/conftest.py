"""Fixtures for export tests: the tiny random model of tests/train and a LoRA adapter with real weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.conftest import tiny_model  # noqa: F401  (fixture re-export)


def random_adapter(base: Path, out: Path, seed: int = 1) -> Path:
    """A LoRA adapter on `base` whose B matrices are non-zero (PEFT starts them at 0, a no-op adapter)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    peft = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    peft.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model, tmp_path_factory) -> Path:  # noqa: F811
    return random_adapter(tiny_model, tmp_path_factory.mktemp("adapter"))
