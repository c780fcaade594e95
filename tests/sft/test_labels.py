"""The SFT loss covers the completion only: collate real examples with the trainer's own collator."""

from __future__ import annotations

import pytest

from rlvr.models import load_tokenizer
from rlvr.prompts import SYSTEM_PROMPT
from rlvr.runlog import RunDir
from sft.config import SFTTrainConfig
from sft.train import build_datasets, build_trainer

from .conftest import sft_env


@pytest.fixture()
def trainer_and_rows(tiny_model, sft_problems, tmp_path):
    env = sft_env(tiny_model, sft_problems, tmp_path / "runs", SFT_REPORT_TO="none")
    cfg = SFTTrainConfig.from_env(env, cuda=False)
    run = RunDir(tmp_path / "runs", "labels", kind="sft")
    tokenizer = load_tokenizer(str(tiny_model))
    train, evaluation = build_datasets(cfg, tokenizer)
    trainer = build_trainer(cfg, run, tokenizer, str(tiny_model), train, evaluation, [])
    yield trainer, train.rows, tokenizer
    run.close()


def test_prompt_tokens_are_masked_and_completion_tokens_are_not(trainer_and_rows):
    trainer, rows, tokenizer = trainer_and_rows
    examples = [trainer.train_dataset[i] for i in range(len(rows))]
    batch = trainer.data_collator(examples)  # padded to the longest: padding must be masked too
    for i, row in enumerate(rows):
        prompt_ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
        full_ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        prompt_ids = list(getattr(prompt_ids, "input_ids", prompt_ids))
        full_ids = list(getattr(full_ids, "input_ids", full_ids))
        assert full_ids[: len(prompt_ids)] == prompt_ids  # the prompt is a prefix: a clean boundary
        input_ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        assert input_ids[: len(full_ids)] == full_ids
        n_prompt, n_full = len(prompt_ids), len(full_ids)
        assert all(label == -100 for label in labels[:n_prompt]), "a prompt token is trained on"
        assert labels[n_prompt:n_full] == full_ids[n_prompt:n_full], "a completion token is masked"
        assert all(label == -100 for label in labels[n_full:]), "a padding token is trained on"
        trained = tokenizer.decode(labels[n_prompt:n_full])
        assert trained.startswith("```ocaml\n") and row["completion"][0]["content"] in trained
        assert tokenizer.eos_token in trained  # the model learns to stop after the fence


def test_rows_use_the_shared_prompt_builder_and_the_train_split_only(trainer_and_rows):
    _, rows, _ = trainer_and_rows
    assert sorted(r["problem_id"] for r in rows) == ["double", "is_empty"]  # no eval problem
    for row in rows:
        assert row["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert row["prompt"][-1]["role"] == "user" and "```ocaml" in row["prompt"][-1]["content"]
        (answer,) = row["completion"]
        assert answer["role"] == "assistant" and answer["content"].startswith("```ocaml\nlet ")
