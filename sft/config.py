"""SFT settings: one frozen object, parsed from SFT_* environment variables (.envrc documents each).

Mirrors rlvr.grpo.config: a `cpu` profile (the bundled SmolLM2-135M, fp32, short sequences) and a `cuda`
profile (Qwen2.5-Coder-1.5B-Instruct in bf16). BASE_MODEL_ID and the LORA_* variables are shared with
GRPO on purpose: the usual chain trains one base with SFT, then GRPO. A wrong value stops with a
message naming the variable before any model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from rlvr.config import LoraSettings, bf16_from_env, lora_from_env, profile_from_env, report_to_from_env
from rlvr.envconf import ConfigError, Env
from rlvr.settings import base_model, default_run_name, run_root


@dataclass(frozen=True)
class SFTTrainConfig:
    profile: str
    model: str
    dataset: str  # "bundled" (its train split), a hub id (kiranpg/ocaml-sft-problems) or a local file
    eval_dataset: str | None  # "bundled" = the bundled eval split; None = no eval loss
    output_dir: str
    run_name: str
    resume: str | None
    max_steps: int  # -1: train for `epochs`
    epochs: float
    learning_rate: float
    warmup_ratio: float
    batch_size: int
    grad_accum: int
    max_length: int  # prompt + completion tokens; longer examples are dropped, never truncated
    logging_steps: int
    eval_steps: int
    save_steps: int
    save_total_limit: int
    seed: int
    lora: LoraSettings
    bf16: bool
    gradient_checkpointing: bool
    compact_lm_head: bool  # rlvr.lm_head: on CPU, the LM head scores only the completion's tokens
    report_to: tuple[str, ...]
    data_on_error: str

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_env(
        env: Mapping[str, str] | None = None, cuda: bool | None = None, cpu_bf16: bool | None = None
    ) -> SFTTrainConfig:
        """Parse the SFT settings; `cuda` and `cpu_bf16` (fast bf16 on this CPU) are detected when None."""
        e = Env(os.environ if env is None else env)
        profile = profile_from_env(e, "SFT", cuda)
        gpu = profile == "cuda"
        model = base_model(e, gpu)
        max_steps = e.int("SFT_MAX_STEPS", -1)
        if max_steps == 0 or max_steps < -1:
            raise ConfigError(
                f"SFT_MAX_STEPS={max_steps}: expected a positive step count (or unset/-1 for SFT_EPOCHS)"
            )
        # cpu: two epochs; one left the bundled model looping until max tokens (doc/benchmarks.md "Learning")
        epochs = e.float("SFT_EPOCHS", 3.0 if gpu else 2.0, 0.0)
        if epochs <= 0 and max_steps == -1:
            raise ConfigError(f"SFT_EPOCHS={epochs}: expected a number > 0 (or set SFT_MAX_STEPS)")
        report = report_to_from_env(e, "SFT")
        bf16 = bf16_from_env(e, "SFT", gpu, cpu_bf16)
        lora = lora_from_env(e, "SFT", gpu)
        eval_dataset = e.str("SFT_EVAL_DATASET", "bundled")
        return SFTTrainConfig(
            profile=profile,
            model=model,
            dataset=e.str("SFT_DATASET", "bundled") or "bundled",
            eval_dataset=None if eval_dataset in (None, "none") else eval_dataset,
            output_dir=run_root("sft", e),
            run_name=e.str("SFT_RUN_NAME", None) or default_run_name(model),
            resume=e.str("SFT_RESUME", None),
            max_steps=max_steps,
            epochs=epochs,
            learning_rate=e.float("SFT_LEARNING_RATE", 1e-4 if gpu else 1e-3, 0.0, 1.0),
            warmup_ratio=e.float("SFT_WARMUP_RATIO", 0.03, 0.0, 0.99),
            # cpu: 1 x 4, the same 4 examples a step as 2 x 2 or 4 x 1 but with no padding, which on
            # 2 cores is wasted compute; and the logits (batch x length x vocabulary) are the memory.
            # Measured side by side in doc/benchmarks.md "SFT speed".
            batch_size=e.int("SFT_BATCH_SIZE", 8 if gpu else 1, minimum=1),
            grad_accum=e.int("SFT_GRAD_ACCUM", 2 if gpu else 4, minimum=1),
            max_length=e.int("SFT_MAX_LENGTH", 2048 if gpu else 1024, minimum=32),
            logging_steps=e.int("SFT_LOGGING_STEPS", 1, minimum=1),
            # cpu: a held-out loss pass over the 78 eval examples takes ~90 s on 2 cores; every 20
            # steps it was a third of SFT's time
            eval_steps=e.int("SFT_EVAL_STEPS", 50, minimum=1),
            save_steps=e.int("SFT_SAVE_STEPS", 100 if gpu else 50, minimum=1),
            save_total_limit=e.int("SFT_SAVE_TOTAL_LIMIT", 3, minimum=1),
            seed=e.int("SFT_SEED", 42),
            lora=lora,
            bf16=bf16,
            gradient_checkpointing=e.bool("SFT_GRADIENT_CHECKPOINTING", gpu),
            compact_lm_head=e.bool("SFT_COMPACT_LM_HEAD", True),
            report_to=report,
            data_on_error=e.choice("SFT_DATA_ON_ERROR", "raise", ("raise", "skip")),
        )
