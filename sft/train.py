"""Supervised fine-tuning on reference solutions: `python -m sft.train` (make sft-train).

The SFT equivalent of rlvr/train.py, and shaped like it: settings from the environment (sft.config,
documented in .envrc), the run directory `sft_runs/<run>/` (run.json with kind "sft", metrics.jsonl,
checkpoints/, tb/, final/ adapter), explicit resume with SFT_RESUME, a checkpoint and a clean stop on
SIGTERM (`make stop`). TRL's SFTTrainer does the training (LoRA through PEFT, loss on the completion
tokens only); sft.data builds the rows with the same prompt builder GRPO and evaluation use.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from rlvr.callbacks import RunFilesCallback
from rlvr.config import weights_dtype
from rlvr.data import DataError
from rlvr.envconf import ConfigError
from rlvr.export.merge import model_for_training, note_parent_adapter
from rlvr.models import ModelLoadError, check_loadable, load_tokenizer, resolve_model
from rlvr.runlog import RunDir, RunDirError, git_commit, now_iso
from rlvr.train import peft_config, shared_trainer_args, versions

from .config import SFTTrainConfig
from .data import SFTData, build_split, eval_prompts

REPO = Path(__file__).resolve().parent.parent


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


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    try:
        cfg = SFTTrainConfig.from_env(env)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    try:
        run = RunDir.open(Path(cfg.output_dir), cfg.run_name, cfg.resume, kind="sft")
    except RunDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("resolved configuration:\n" + json.dumps(cfg.to_dict(), indent=2, default=str), flush=True)
    try:
        model_path = resolve_model(cfg.model)
        check_loadable(model_path)
        tokenizer = load_tokenizer(model_path)
        train, evaluation = build_datasets(cfg, tokenizer)
    except (ModelLoadError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if cfg.resume:
        resume_from = run.mark_resumed()
    else:
        resume_from = None
        run.start_info(
            config={**cfg.to_dict(), "model_path": model_path},
            model=cfg.model,
            dataset=cfg.dataset,
            eval_dataset=cfg.eval_dataset,
            train_examples=len(train.rows),
            eval_examples=len(evaluation.rows) if evaluation else 0,
            dropped={
                "unusable": len(train.skipped),
                "in_eval_set": train.contaminated,
                "too_long": train.too_long + (evaluation.too_long if evaluation else 0),
            },
            versions=versions(),
            git_commit=git_commit(REPO),
        )
    run.point_latest()
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.path / "tb")

    callback = SFTRunFilesCallback(run)
    callback.install_signal_handlers()
    try:
        trainer = build_trainer(cfg, run, tokenizer, model_path, train, evaluation, [callback])
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        step = trainer.state.global_step
        if evaluation is not None and not callback.stop_requested and step % cfg.eval_steps:
            trainer.evaluate()  # an eval_loss line for the final weights, unless the last step had one
        final = run.path / "final"
        trainer.save_model(str(final))
        status = "stopped" if callback.stop_requested else "finished"
        run.update_info(status=status, finished_at=now_iso(), final_model=str(final), steps=step)
        print(f"{status}: {'adapter' if cfg.lora.enabled else 'model'} saved to {final}", flush=True)
        print(f"next: GRPO from it with BASE_MODEL_ID={final} make rlvr-train, or merge it with "
              f"make merge-adapter path={final}", flush=True)  # fmt: skip
        return 0
    except BaseException as e:
        run.update_info(status="failed", finished_at=now_iso(), error=f"{type(e).__name__}: {e}")
        traceback.print_exc()
        return 1
    finally:
        run.close()


if __name__ == "__main__":
    sys.exit(main())
