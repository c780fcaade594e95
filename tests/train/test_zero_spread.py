"""frac_reward_zero_std counts every group whose rewards are all equal (rlvr.grpo.callbacks.ZeroSpreadMixin):
a real TRL GRPOTrainer on the tiny model, one step, a reward of 0.21 for every completion."""

from __future__ import annotations

import pytest
from datasets import Dataset

from rlvr.grpo.trainer import make_trainer_class


def equal_rewards(completions, **_kwargs) -> list[float]:
    return [0.21] * len(completions)  # 0.21 has no exact float32 form: the group's std is ~1e-8, not 0


def one_step(trainer_class, model_dir, tmp_path) -> dict:
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=8,
        num_generations=8,
        max_completion_length=4,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
    )
    data = Dataset.from_list([{"prompt": "let x ="}] * 8)
    trainer = trainer_class(
        model=str(model_dir),
        reward_funcs=[equal_rewards],
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
    )
    trainer.train()
    return next(h for h in trainer.state.log_history if "frac_reward_zero_std" in h)


def test_a_group_of_equal_rewards_counts_as_zero_spread(tiny_model, tmp_path):
    logged = one_step(make_trainer_class("grpo"), tiny_model, tmp_path)
    assert (logged["frac_reward_zero_std"], logged["reward"]) == (1.0, pytest.approx(0.21))


def test_trl_alone_misses_it(tiny_model, tmp_path):
    # why the mixin exists; if TRL starts counting such groups, this fails and the mixin can go
    from trl import GRPOTrainer

    assert one_step(GRPOTrainer, tiny_model, tmp_path)["frac_reward_zero_std"] == 0.0
