"""Supervised fine-tuning on reference solutions: `python -m sft.train` (make sft-train).

The SFT equivalent of rlvr/train.py, on the same skeleton (rlvr.training.run_training): settings from the environment (sft.config,
documented in .envrc), the run directory `sft_runs/<run>/` (run.json with kind "sft", metrics.jsonl,
checkpoints/, tb/, final/ adapter), explicit resume with SFT_RESUME, a checkpoint and a clean stop on
SIGTERM (`make stop`). TRL's SFTTrainer does the training (LoRA through PEFT, loss on the completion
tokens only); sft.data builds the rows with the same prompt builder GRPO and evaluation use.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rlvr.callbacks import RunFilesCallback
from rlvr.config import weights_dtype
from rlvr.export.merge import model_for_training, note_parent_adapter
from rlvr.runlog import RunDir
from rlvr.training import TrainingJob, peft_config, run_training, shared_trainer_args

from .config import SFTTrainConfig
from .data import SFTData, build_split, eval_prompts


class SFTRunFilesCallback(RunFilesCallback):
    """RunFilesCallback plus `step_time`: mean seconds per optimizer step since the last logged line."""

    def __init__(self, run: RunDir):
        super().__init__(run)
        self._step_started: float | None = None
        self._step_times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started is not None:
            self._step_times.append(time.monotonic() - self._step_started)
            self._step_started = None
        return super().on_step_end(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and self._step_times:
            logs["step_time"] = sum(self._step_times) / len(self._step_times)
            self._step_times.clear()
        return super().on_log(args, state, control, logs=logs, **kwargs)


def build_datasets(cfg: SFTTrainConfig, tokenizer) -> tuple[SFTData, SFTData | None]:
    """Train rows (train split, decontaminated against the eval prompts) and eval rows (or None)."""
    held_out = eval_prompts(cfg.eval_dataset or "bundled")
    train, _ = build_split(cfg.dataset, "train", tokenizer, cfg.max_length, cfg.data_on_error, held_out)
    print(train.summary(), flush=True)
    for reason in train.skipped[:5]:
        print(f"  skipped: {reason}", flush=True)
    evaluation = None
    if cfg.eval_dataset:
        evaluation, _ = build_split(cfg.eval_dataset, "eval", tokenizer, cfg.max_length, cfg.data_on_error)
        print(evaluation.summary(), flush=True)
    return train, evaluation


def trainer_args(cfg: SFTTrainConfig, run: RunDir, has_eval: bool):
    from trl import SFTConfig

    return SFTConfig(
        **shared_trainer_args(cfg, run),
        num_train_epochs=cfg.epochs,
        per_device_eval_batch_size=cfg.batch_size,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps (transformers 5)
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps,
        max_length=cfg.max_length,
        completion_only_loss=True,  # the prompt is context, not a target
        packing=False,
        push_to_hub=False,
    )


def build_trainer(
    cfg: SFTTrainConfig,
    run: RunDir,
    tokenizer,
    model_path: str,
    train: SFTData,
    evaluation: SFTData | None,
    callbacks: list,
):
    """The SFTTrainer for this run (LoRA unless SFT_FULL_FINETUNE=1; completion-only loss)."""
    from datasets import Dataset
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model_for_training(model_path, weights_dtype(cfg.profile, cfg.bf16)),
        args=trainer_args(cfg, run, has_eval=evaluation is not None),
        train_dataset=Dataset.from_list(train.rows),
        eval_dataset=Dataset.from_list(evaluation.rows) if evaluation else None,
        processing_class=tokenizer,
        peft_config=peft_config(cfg),
        callbacks=callbacks,
    )
    note_parent_adapter(trainer.model, model_path)  # saved adapters record the chain
    return trainer


class SFTJob(TrainingJob):
    """SFT: the train split's reference solutions as completions, the eval split's as held-out loss."""

    kind = "sft"

    def load_config(self, env: dict[str, str]) -> SFTTrainConfig:
        return SFTTrainConfig.from_env(env)

    def prepare(self, cfg: SFTTrainConfig, model_path: str, tokenizer) -> dict[str, Any]:
        self.train, self.evaluation = train, evaluation = build_datasets(cfg, tokenizer)
        return {
            "eval_dataset": cfg.eval_dataset,
            "train_examples": len(train.rows),
            "eval_examples": len(evaluation.rows) if evaluation else 0,
            "dropped": {
                "unusable": len(train.skipped),
                "in_eval_set": train.contaminated,
                "too_long": train.too_long + (evaluation.too_long if evaluation else 0),
            },
        }

    def files_callback(self, run: RunDir) -> SFTRunFilesCallback:
        return SFTRunFilesCallback(run)

    def build_trainer(self, cfg: SFTTrainConfig, run: RunDir, model_path: str, tokenizer, files):
        return build_trainer(cfg, run, tokenizer, model_path, self.train, self.evaluation, [files])

    def after_training(self, cfg: SFTTrainConfig, trainer, stopped: bool) -> dict[str, Any]:
        step = trainer.state.global_step
        if self.evaluation is not None and not stopped and step % cfg.eval_steps:
            trainer.evaluate()  # an eval_loss line for the final weights, unless the last step had one
        return {"steps": step}

    def saved_message(self, cfg: SFTTrainConfig, status: str, final: Path) -> str:
        what = "adapter" if cfg.lora.enabled else "model"
        return (
            f"{status}: {what} saved to {final}\n"
            f"next: GRPO from it with BASE_MODEL_ID={final} make rlvr-train, or merge it with "
            f"make merge-adapter path={final}"
        )


def main(env: dict[str, str] | None = None) -> int:
    return run_training(SFTJob(), env)


if __name__ == "__main__":
    sys.exit(main())
