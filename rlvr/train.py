"""GRPO (or RLOO) training of an OCaml-writing model: `python -m rlvr.train` (make rlvr-train).

Reads its settings from the environment (rlvr.config, documented in .envrc), prints them, and writes
the run directory described in doc/metrics.md. Thin by design: TRL's trainers do the RL, PEFT the LoRA,
the verifier the reward; this file wires them together.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TRACKIO_PROJECT, GRPOTrainConfig, weights_dtype
from .data import DataError, load_problems
from .envconf import ConfigError
from .export.merge import model_for_training, note_parent_adapter
from .models import ModelLoadError, check_loadable, is_adapter_dir, load_tokenizer, resolve_model
from .prompts import build_messages, pick_few_shot, prompt_token_count
from .rewards import RewardContext, build_reward_functions
from .runlog import RunDir, RunDirError, git_commit, now_iso

if TYPE_CHECKING:
    from sft.config import SFTTrainConfig

REPO = Path(__file__).resolve().parent.parent


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def build_dataset(cfg: GRPOTrainConfig, tokenizer):
    """The train split as a conversational dataset (prompt messages + problem_id), long prompts dropped."""
    from datasets import Dataset

    problems, report = load_problems(cfg.dataset, split="train", on_error=cfg.data_on_error)
    print(report.summary(), flush=True)
    for reason in report.skipped[:5]:
        print(f"  skipped: {reason}", flush=True)
    if not problems:
        raise DataError(f"{cfg.dataset}: no problems in the train split")
    rows, too_long = [], 0
    for p in problems:
        messages = build_messages(p, pick_few_shot(problems, cfg.few_shot, exclude_id=p.id))
        if prompt_token_count(tokenizer, messages) > cfg.max_prompt_length:
            too_long += 1
            continue
        rows.append({"prompt": messages, "problem_id": p.id})
    if too_long:
        print(
            f"dropped {too_long} prompts longer than GRPO_MAX_PROMPT_LENGTH={cfg.max_prompt_length} tokens",
            flush=True,
        )
    if not rows:
        raise DataError("every prompt is longer than GRPO_MAX_PROMPT_LENGTH")
    return Dataset.from_list(rows), problems, too_long


def checkpointing_arg() -> str:
    """transformers 5 renamed `gradient_checkpointing` to `activation_checkpointing` (the old name warns)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def shared_trainer_args(cfg: GRPOTrainConfig | SFTTrainConfig, run: RunDir) -> dict[str, Any]:
    """The TrainingArguments that GRPO and SFT set alike, from the fields both configs have."""
    return dict(
        output_dir=str(run.checkpoints),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        bf16=cfg.bf16,
        use_cpu=cfg.profile == "cpu",
        **{checkpointing_arg(): cfg.gradient_checkpointing},
        report_to=list(cfg.report_to) or "none",
        run_name=cfg.run_name,
        project=TRACKIO_PROJECT,
        model_init_kwargs={"dtype": weights_dtype(cfg.profile, cfg.bf16)},
        disable_tqdm=True,
    )


def trainer_args(cfg: GRPOTrainConfig, run: RunDir):
    from trl import GRPOConfig, RLOOConfig

    common = dict(
        shared_trainer_args(cfg, run),
        num_generations=cfg.num_generations,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_completion_length=cfg.max_completion_length,
        beta=cfg.beta,
        push_to_hub=cfg.push_to_hub,
        hub_model_id=cfg.hub_model_id,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        log_completions=False,  # we write completions.jsonl ourselves
    )
    if cfg.vllm_server_url:
        common["vllm_server_base_url"] = cfg.vllm_server_url
    if cfg.lora.load_in_4bit:
        from transformers import BitsAndBytesConfig

        common["model_init_kwargs"]["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bfloat16"
        )
    if cfg.algorithm == "rloo":
        return RLOOConfig(**common)
    return GRPOConfig(**common, loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards)


def peft_config(cfg: GRPOTrainConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        task_type="CAUSAL_LM",
    )


def make_trainer_class(algorithm: str):
    from trl import GRPOTrainer, RLOOTrainer

    from .callbacks import TimingMixin

    base = RLOOTrainer if algorithm == "rloo" else GRPOTrainer
    return type(f"Timed{base.__name__}", (TimingMixin, base), {})


SFT_HINT = (
    "hint: {model} is not an SFT result; a base model rarely writes OCaml that scores, so GRPO gets no "
    "signal: `make pipeline` runs SFT -> GRPO -> evaluation, or `make sft-train` then "
    "BASE_MODEL_ID=sft_runs/latest/final make rlvr-train"
)


def is_fine_tuned(model_path: str) -> bool:
    """True for a model this project (or PEFT) trained: an adapter directory, or the final/ or
    checkpoint directory of an SFT or GRPO run (its run.json says so)."""
    path = Path(model_path)
    if is_adapter_dir(path):
        return True
    for parent in (path.parent, path.parent.parent):
        try:
            if json.loads((parent / "run.json").read_text()).get("kind") in ("sft", "grpo"):
                return True
        except (OSError, json.JSONDecodeError):
            continue
    return False


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    try:
        cfg = GRPOTrainConfig.from_env(env)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    try:
        run = RunDir.open(Path(cfg.output_dir), cfg.run_name, cfg.resume)
    except RunDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("resolved configuration:\n" + json.dumps(cfg.to_dict(), indent=2, default=str), flush=True)
    try:
        model_path = resolve_model(cfg.model)
        check_loadable(model_path)
        tokenizer = load_tokenizer(model_path)
        dataset, problems, dropped = build_dataset(cfg, tokenizer)
        if not is_fine_tuned(model_path):
            print(SFT_HINT.format(model=cfg.model), flush=True)
    except (ModelLoadError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from .verifier import Verifier

    verifier = Verifier(cfg.verifier)
    if cfg.resume:
        resume_from = run.mark_resumed()
    else:
        resume_from = None
        run.start_info(
            config={**cfg.to_dict(), "model_path": model_path},
            model=cfg.model,
            dataset=cfg.dataset,
            train_problems=len(problems),
            prompts_dropped_too_long=dropped,
            versions=versions(),
            git_commit=git_commit(REPO),
        )
    run.point_latest()
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.path / "tb")

    from .callbacks import RunFilesCallback, SignalGuardCallback

    ctx = RewardContext(verifier, problems, run, cfg.reward_settings)
    funcs, weights = build_reward_functions(cfg.rewards, ctx)
    args = trainer_args(cfg, run)
    args.reward_weights = weights
    callback = RunFilesCallback(run)
    callback.install_signal_handlers()
    trainer_cls = make_trainer_class(cfg.algorithm)
    try:
        trainer = trainer_cls(
            # an SFT/GRPO LoRA adapter directory is merged into its base in memory; a new LoRA trains on top
            model=model_for_training(model_path, weights_dtype(cfg.profile, cfg.bf16)),
            reward_funcs=funcs,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config(cfg),
            callbacks=[callback, SignalGuardCallback(run)],
        )
        note_parent_adapter(trainer.model, model_path)  # saved adapters record the chain
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        final = run.path / "final"
        trainer.save_model(str(final))
        status = "stopped" if callback.stop_requested else "finished"
        run.update_info(
            status=status,
            finished_at=now_iso(),
            final_model=str(final),
            infra_failures=verifier.infra_failures,
        )
        print(f"{status}: model saved to {final}", flush=True)
        return 0
    except BaseException as e:
        run.update_info(status="failed", finished_at=now_iso(), error=f"{type(e).__name__}: {e}")
        traceback.print_exc()
        return 1
    finally:
        verifier.close()
        run.close()


if __name__ == "__main__":
    sys.exit(main())
