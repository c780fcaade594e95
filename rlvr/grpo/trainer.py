"""GRPO's part of the training skeleton (rlvr.training): the train split as prompts, the verifier's
rewards, TRL's GRPOTrainer (or RLOOTrainer) with GRPO's hooks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import weights_dtype
from ..data import DataError, load_problems
from ..export.merge import model_for_training, note_parent_adapter
from ..models import is_adapter_dir
from ..prompts import build_messages, pick_few_shot, prompt_token_count
from ..runlog import RunDir
from ..training import TrainingJob, peft_config, shared_trainer_args
from . import curriculum
from .config import GRPOTrainConfig
from .judge import Judge
from .rewards import JUDGE, RewardContext, build_reward_functions

if TYPE_CHECKING:
    from ..callbacks import RunFilesCallback


def build_dataset(cfg: GRPOTrainConfig, tokenizer):
    """The train split as a conversational dataset (prompt messages + problem_id) in curriculum order,
    long prompts dropped."""
    from datasets import Dataset

    problems, report = load_problems(cfg.dataset, split="train", on_error=cfg.data_on_error)
    print(report.summary(), flush=True)
    for reason in report.skipped[:5]:
        print(f"  skipped: {reason}", flush=True)
    if not problems:
        raise DataError(f"{cfg.dataset}: no problems in the train split")
    rows, too_long = [], 0
    tools, hint = None, ""
    if cfg.environment.enabled:  # measured as the model will see it: the tool's schema and reset()'s hint
        from ..environment import OCamlEnvironment, tool_hint

        tools, hint = [OCamlEnvironment.check], tool_hint(cfg.environment.feedback)
    for p in curriculum.order(problems, cfg.curriculum):
        messages = build_messages(p, pick_few_shot(problems, cfg.few_shot, exclude_id=p.id))
        measured = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + hint}]
        if prompt_token_count(tokenizer, measured, tools) > cfg.max_prompt_length:
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
        shuffle_dataset=curriculum.shuffles(cfg.curriculum),
    )
    if cfg.vllm_server_url:
        common["vllm_server_base_url"] = cfg.vllm_server_url
    if cfg.environment.enabled:
        # one iteration more than the checks allowed: a call past the limit is answered "no checks
        # left" and the model gets a last turn to answer, instead of ending on an unanswered call
        common["max_tool_calling_iterations"] = cfg.environment.max_tool_calls + 1
    if cfg.lora.load_in_4bit:
        from transformers import BitsAndBytesConfig

        common["model_init_kwargs"]["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bfloat16"
        )
    if cfg.algorithm == "rloo":
        return RLOOConfig(**common)
    return GRPOConfig(**common, loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards)


def make_trainer_class(algorithm: str):
    from trl import GRPOTrainer, RLOOTrainer

    from .callbacks import TimingMixin, ZeroSpreadMixin
    from .generation import MergedGenerationMixin
    from .llama_rollout import LogprobGapMixin
    from .shared_prompt import SharedPromptForwardMixin

    if algorithm == "rloo":
        return type(
            "TimedRLOOTrainer",
            (TimingMixin, ZeroSpreadMixin, MergedGenerationMixin, SharedPromptForwardMixin, RLOOTrainer),
            {},
        )
    return type(
        "TimedGRPOTrainer",
        (
            TimingMixin,
            ZeroSpreadMixin,
            MergedGenerationMixin,
            LogprobGapMixin,  # reads the loss's log-probabilities: above the mixin that computes them
            SharedPromptForwardMixin,
            GRPOTrainer,
        ),
        {},
    )


def llama_rollout(cfg: GRPOTrainConfig, run: RunDir):
    """The llama-server rollout of GRPO_ROLLOUT_ENGINE=llama-server, or None for TRL's own generation."""
    if cfg.rollout_engine != "llama-server":
        return None
    from .llama_rollout import LlamaServerRollout, work_dir_for

    return LlamaServerRollout(
        work_dir=work_dir_for(run.name),
        log=run.path / "llama-server.log",
        parallel=cfg.batch_size * cfg.grad_accum,  # TRL generates a whole optimizer step's batch at once
        max_prompt_length=cfg.max_prompt_length,
        max_completion_length=cfg.max_completion_length,
        seed=cfg.seed,
    )


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


class GRPOJob(TrainingJob):
    """GRPO (or RLOO): the train split as prompts, the verifier as the reward."""

    kind = "grpo"

    def __init__(self) -> None:
        self.verifier = None
        self.judge = None
        self.rollout = None

    def load_config(self, env: dict[str, str]) -> GRPOTrainConfig:
        cfg = GRPOTrainConfig.from_env(env)
        if cfg.rollout_engine == "llama-server":
            from ..envconf import ConfigError
            from ..export import llama_cpp

            if not llama_cpp.is_built():
                raise ConfigError(
                    "GRPO_ROLLOUT_ENGINE=llama-server needs llama.cpp: run `make llama-cpp` once "
                    "(~15 min on 2 cores)"
                )
        return cfg

    def prepare(self, cfg: GRPOTrainConfig, model_path: str, tokenizer) -> dict[str, Any]:
        template_note = None
        if cfg.environment.enabled:
            from ..environment import tool_chat_template

            # before the prompts are measured: the tool's schema goes into every system turn
            template_note = tool_chat_template(tokenizer)
            if template_note:
                print(template_note, flush=True)
        self.dataset, self.problems, dropped = build_dataset(cfg, tokenizer)
        if not is_fine_tuned(model_path):
            print(SFT_HINT.format(model=cfg.model), flush=True)
        from ..service.client import open_verifier

        self.verifier = open_verifier(cfg.verifier, cfg.remote_verifier)
        # Time the reference solutions now (once per machine; cached), not in the middle of a step.
        start = time.monotonic()
        limits = self.verifier.calibrate(self.problems)
        measured = self.verifier.stats["reference_measurements"]
        derived = sum(lim.reference_cpu_s is not None for lim in limits.values())
        print(
            f"time limits: {derived} of {len(limits)} problems derived from their reference solution "
            f"({measured} measured now, in {time.monotonic() - start:.1f} s; the rest cached)",
            flush=True,
        )
        return {
            "chat_template": template_note,
            "train_problems": len(self.problems),
            "prompts_dropped_too_long": dropped,
            "time_limits_derived": derived,
        }

    def files_callback(self, run: RunDir) -> RunFilesCallback:
        from ..callbacks import RunFilesCallback  # imports transformers: not before the settings are read

        return RunFilesCallback(run)

    def build_trainer(self, cfg: GRPOTrainConfig, run: RunDir, model_path: str, tokenizer, files):
        from .callbacks import SignalGuardCallback

        if any(spec.partition(":")[0] == JUDGE for spec in cfg.rewards):
            self.judge = Judge(cfg.judge)
        env = cfg.environment
        ctx = RewardContext(
            self.verifier,
            self.problems,
            run,
            cfg.reward_settings,
            judge=self.judge,
            check_cost=env.check_cost if env.enabled else 0.0,
        )
        funcs, weights = build_reward_functions(cfg.rewards, ctx)
        args = trainer_args(cfg, run)
        args.reward_weights = weights
        self.rollout = llama_rollout(cfg, run)
        extra: dict[str, Any] = {} if self.rollout is None else {"rollout_func": self.rollout}
        if env.enabled:
            from ..environment import Checker, environment_factory

            extra["environment_factory"] = environment_factory(Checker(self.verifier, self.problems, env))
        trainer = make_trainer_class(cfg.algorithm)(
            # an SFT/GRPO LoRA adapter directory is merged into its base in memory; a new LoRA trains on top
            model=model_for_training(model_path, weights_dtype(cfg.profile, cfg.bf16)),
            reward_funcs=funcs,
            args=args,
            train_dataset=self.dataset,
            processing_class=tokenizer,
            peft_config=peft_config(cfg),
            callbacks=[files, SignalGuardCallback(run)],
            **extra,
        )
        if self.rollout is not None:
            self.rollout.prepare(tokenizer)
        note_parent_adapter(trainer.model, model_path)  # saved adapters record the chain
        trainer.merge_lora_for_generation = cfg.merge_lora_for_generation
        trainer.shared_prompt_forward = cfg.shared_prompt_forward
        return trainer

    def after_training(self, cfg: GRPOTrainConfig, trainer, stopped: bool) -> dict[str, Any]:
        return {"infra_failures": self.verifier.infra_failures}

    def close(self) -> None:
        if self.rollout is not None:
            self.rollout.close()
        if self.verifier is not None:
            self.verifier.close()
        if self.judge is not None:
            self.judge.close()
