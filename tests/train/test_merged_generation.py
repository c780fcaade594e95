"""Rollouts with the LoRA adapter merged (rlvr.grpo.generation): the same model, restored after, and used
by the real TRL trainer for generation only."""

from __future__ import annotations

import pytest
import torch

from rlvr.envconf import ConfigError
from rlvr.grpo.config import GRPOTrainConfig
from rlvr.grpo.generation import merged_lora


@pytest.fixture()
def lora(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM"),
    )
    for name, param in model.named_parameters():  # a trained-looking adapter: B is zero when fresh
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    return model.eval()


def base_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}


def test_merged_logits_equal_the_unmerged_model(lora):
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        unmerged = lora(ids).logits
        with merged_lora(lora):
            assert all(m.merged for m in lora.modules() if hasattr(m, "merged_adapters"))
            merged = lora(ids).logits
    assert (unmerged - merged).abs().max().item() < 1e-5
    assert (unmerged.abs().max().item()) > 1e-3  # the adapter is not a no-op


def test_weights_are_restored_after_the_block_also_on_error(lora):
    before = base_weights(lora)
    with pytest.raises(RuntimeError), merged_lora(lora):
        assert any((p - before[n]).abs().max() > 1e-4 for n, p in base_weights(lora).items())
        raise RuntimeError("generation failed")
    after = base_weights(lora)
    assert not any(m.merged for m in lora.modules() if hasattr(m, "merged_adapters"))
    assert max((after[n] - before[n]).abs().max().item() for n in before) < 1e-6


def test_a_model_without_lora_is_left_alone(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    before = base_weights(model)
    with merged_lora(model):
        pass
    assert all(torch.equal(before[n], p) for n, p in base_weights(model).items())


def test_the_trainer_generates_merged_and_trains_unmerged(tiny_model, tmp_path):
    """One real GRPO step: every forward pass without gradients (the rollout) ran merged, every forward
    pass with gradients (the update) unmerged."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from rlvr.grpo.trainer import make_trainer_class

    def length_reward(completions, **_):
        return [float(len(c)) for c in completions]

    args = GRPOConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=6, report_to=[], use_cpu=True, logging_steps=1, save_strategy="no",
    )  # fmt: skip
    trainer = make_trainer_class("grpo")(
        model=AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
        reward_funcs=[length_reward],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": "let x ="}, {"prompt": "let y ="}]),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    trainer.merge_lora_for_generation = True
    layer = next(m for m in trainer.model.modules() if hasattr(m, "merged_adapters"))
    seen: list[tuple[bool, bool]] = []
    layer.register_forward_pre_hook(lambda mod, _: seen.append((torch.is_grad_enabled(), mod.merged)))
    trainer.train()
    rollout = [merged for grad, merged in seen if not grad]
    update = [merged for grad, merged in seen if grad]
    assert rollout and all(rollout)
    assert update and not any(update)
    assert not layer.merged


def test_merging_is_on_for_cpu_lora_and_refused_on_bf16_weights():
    assert GRPOTrainConfig.from_env({}, cuda=False, cpu_bf16=True).merge_lora_for_generation
    assert not GRPOTrainConfig.from_env(
        {"GRPO_FULL_FINETUNE": "1"}, cuda=False, cpu_bf16=True
    ).merge_lora_for_generation
    assert not GRPOTrainConfig.from_env({}, cuda=True).merge_lora_for_generation
    with pytest.raises(ConfigError, match="GRPO_MERGE_LORA_FOR_GENERATION=1 needs LoRA on float32 weights"):
        GRPOTrainConfig.from_env({"GRPO_MERGE_LORA_FOR_GENERATION": "1"}, cuda=True)
