"""GRPO training settings: one frozen object, parsed from environment variables (.envrc documents each).

Two profiles fill the defaults: `cpu` (the bundled SmolLM2-135M, small groups, short completions, fp32)
and `cuda` (Qwen2.5-Coder-1.5B-Instruct in bf16 at the scale of the project we compete with). Every
value can be overridden; a wrong one stops with a message naming the variable before any model loads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from ..config import (
    LoraSettings,
    bf16_from_env,
    lora_from_env,
    profile_from_env,
    report_to_from_env,
    weights_dtype,
)
from ..envconf import ConfigError, Env
from ..environment import EnvironmentSettings
from ..service.config import RemoteConfig
from ..settings import base_model, default_run_name, run_root
from ..verifier import VerifierConfig
from .curriculum import check_spec
from .judge import JudgeSettings
from .rewards import JUDGE, REWARD_NAMES, RewardSettings

ALGORITHMS = ("grpo", "rloo")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
# who generates the rollouts: TRL with the training model, or llama-server serving its weights (cpu)
ROLLOUT_ENGINES = ("transformers", "llama-server")


@dataclass(frozen=True)
class GRPOTrainConfig:
    profile: str
    model: str
    dataset: str
    output_dir: str
    run_name: str
    resume: str | None
    algorithm: str
    loss_type: str
    max_steps: int
    num_generations: int
    batch_size: int  # completions per device per step (a multiple of num_generations)
    grad_accum: int
    learning_rate: float
    temperature: float
    top_p: float
    max_completion_length: int
    max_prompt_length: int
    beta: float
    scale_rewards: str
    logging_steps: int
    save_steps: int
    save_total_limit: int
    seed: int
    rewards: tuple[str, ...]
    reward_settings: RewardSettings
    lora: LoraSettings
    bf16: bool
    gradient_checkpointing: bool
    merge_lora_for_generation: (
        bool  # rollouts with W + BA merged (float32 weights only; rlvr.grpo.generation)
    )
    rollout_engine: str  # transformers | llama-server (rlvr.grpo.llama_rollout)
    shared_prompt_forward: bool  # one prompt pass per group in the update (rlvr.grpo.shared_prompt)
    compact_lm_head: bool  # rlvr.lm_head: on CPU, the LM head scores only the completion's tokens
    use_vllm: bool
    vllm_mode: str
    vllm_server_url: str | None
    vllm_gpu_memory_utilization: float
    report_to: tuple[str, ...]
    push_to_hub: bool
    hub_model_id: str | None
    few_shot: int
    curriculum: str  # rlvr.grpo.curriculum: shuffle | easy_first | results:<eval run>
    data_on_error: str
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    # VERIFIER_URL: score on reward servers (make reward-server) instead of in this process
    remote_verifier: RemoteConfig = field(default_factory=RemoteConfig)
    judge: JudgeSettings = field(default_factory=JudgeSettings)  # the `judge` reward's model (JUDGE_*)
    # GRPO_ENVIRONMENT=ocaml: multi-turn episodes with the `check` tool (rlvr.environment, ENV_*)
    environment: EnvironmentSettings = field(default_factory=EnvironmentSettings)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["remote_verifier"]["token"]:
            d["remote_verifier"]["token"] = "(set)"  # run.json is shared; the secret is not
        if d["judge"]["api_key"]:
            d["judge"]["api_key"] = "(set)"
        return d

    @staticmethod
    def from_env(
        env: Mapping[str, str] | None = None, cuda: bool | None = None, cpu_bf16: bool | None = None
    ) -> GRPOTrainConfig:
        """Parse the GRPO settings; `cuda` and `cpu_bf16` (fast bf16 on this CPU) are detected when None."""
        e = Env(os.environ if env is None else env)
        profile = profile_from_env(e, "GRPO", cuda)
        gpu = profile == "cuda"
        model = base_model(e, gpu)
        # cpu: 8 completions generated as one batch cost ~1.1x the wall time of 4 (doc/benchmarks.md)
        # and a group of 8 is far less often all-equal, so fewer steps are wasted without a gradient
        num_generations = e.int("GRPO_NUM_GENERATIONS", 8, minimum=2)
        batch_size = e.int("GRPO_BATCH_SIZE", num_generations, minimum=1)
        if batch_size % num_generations:
            raise ConfigError(
                f"GRPO_BATCH_SIZE={batch_size}: must be a multiple of GRPO_NUM_GENERATIONS={num_generations} "
                "(it counts completions: whole groups per device step)"
            )
        rewards = e.list("GRPO_REWARDS", ["ocaml"])
        for spec in rewards:
            name = spec.partition(":")[0]
            if name not in REWARD_NAMES:
                raise ConfigError(
                    f"GRPO_REWARDS={','.join(rewards)!r}: unknown reward {name!r}; available: {', '.join(REWARD_NAMES)}"
                )
            weight = spec.partition(":")[2]
            if weight and not re.fullmatch(r"-?\d+(\.\d+)?", weight):
                raise ConfigError(f"GRPO_REWARDS entry {spec!r}: the weight after ':' must be a number")
        judge = JudgeSettings.from_env(e.env)
        if any(spec.partition(":")[0] == JUDGE for spec in rewards):
            judge.require_url()
        report = report_to_from_env(e, "GRPO")
        bf16 = bf16_from_env(e, "GRPO", gpu, cpu_bf16)
        use_vllm = e.bool("GRPO_USE_VLLM", False)
        if use_vllm and not gpu:
            raise ConfigError("GRPO_USE_VLLM=1 needs a CUDA GPU (and `pip install -e .[gpu]`)")
        lora = lora_from_env(e, "GRPO", gpu, load_in_4bit=e.bool("GRPO_LOAD_IN_4BIT", False))
        if lora.load_in_4bit and (not gpu or not lora.enabled):
            raise ConfigError(
                "GRPO_LOAD_IN_4BIT=1 (QLoRA) needs the cuda profile and LoRA (GRPO_FULL_FINETUNE=0)"
            )
        if e.bool("GRPO_PUSH_TO_HUB", False) and not e.str("GRPO_HUB_MODEL_ID", None):
            raise ConfigError("GRPO_PUSH_TO_HUB=1 needs GRPO_HUB_MODEL_ID=<user>/<repo>")
        # merging into bf16 weights and back would round them at every step: float32 weights only
        merge_ok = lora.enabled and not lora.load_in_4bit and weights_dtype(profile, bf16) == "float32"
        merge = e.bool("GRPO_MERGE_LORA_FOR_GENERATION", merge_ok)
        if merge and not merge_ok:
            raise ConfigError(
                "GRPO_MERGE_LORA_FOR_GENERATION=1 needs LoRA on float32 weights (the cpu profile, no 4-bit): "
                "merging into bfloat16 weights and back rounds them at every step"
            )
        environment = EnvironmentSettings.from_env(e.env)
        rollout_engine = e.choice("GRPO_ROLLOUT_ENGINE", "transformers", ROLLOUT_ENGINES)
        algorithm = e.choice("GRPO_ALGORITHM", "grpo", ALGORITHMS)
        if rollout_engine == "llama-server" and lora.load_in_4bit:
            raise ConfigError(
                "GRPO_ROLLOUT_ENGINE=llama-server cannot serve 4-bit (QLoRA) weights: GRPO_LOAD_IN_4BIT=0"
            )
        if rollout_engine == "llama-server" and (use_vllm or algorithm != "grpo"):
            raise ConfigError(
                "GRPO_ROLLOUT_ENGINE=llama-server generates for GRPO_ALGORITHM=grpo without vLLM "
                f"(got GRPO_ALGORITHM={algorithm}, GRPO_USE_VLLM={int(use_vllm)}): TRL's RLOO trainer has no "
                "custom rollouts, and vLLM is the GPU's rollout engine"
            )
        verifier = VerifierConfig.from_env(e.env)
        if environment.enabled and rollout_engine == "llama-server":
            raise ConfigError(
                f"GRPO_ENVIRONMENT={environment.name} runs TRL's tool-calling loop, which generates with the "
                "training model: GRPO_ROLLOUT_ENGINE=transformers (llama-server rollouts are single-turn)"
            )
        if environment.enabled and algorithm != "grpo":
            raise ConfigError(
                f"GRPO_ENVIRONMENT={environment.name} needs GRPO_ALGORITHM=grpo (TRL's RLOO trainer has no "
                "environment_factory)"
            )
        return GRPOTrainConfig(
            profile=profile,
            model=model,
            dataset=e.str("TRAINING_DATASET", "bundled") or "bundled",
            output_dir=run_root("grpo", e),
            run_name=e.str("GRPO_RUN_NAME", None) or default_run_name(model),
            resume=e.str("GRPO_RESUME", None),
            algorithm=algorithm,
            loss_type=e.choice("GRPO_LOSS_TYPE", "dapo", LOSS_TYPES),
            max_steps=e.int("GRPO_MAX_STEPS", 500 if gpu else 30, minimum=1),
            num_generations=num_generations,
            batch_size=batch_size,
            grad_accum=e.int("GRPO_GRAD_ACCUM", 4 if gpu else 1, minimum=1),
            learning_rate=e.float("GRPO_LEARNING_RATE", 5e-6 if gpu else 1e-4, 0.0, 1.0),
            temperature=e.float("GRPO_TEMPERATURE", 1.0 if gpu else 0.7, 0.0, 5.0),
            top_p=e.float("GRPO_TOP_P", 1.0, 0.0, 1.0),
            # cpu: 256 tokens hold 85% of the reference solutions whole (160: 64%; a cut answer never parses)
            max_completion_length=e.int("GRPO_MAX_COMPLETION_LENGTH", 512 if gpu else 256, minimum=8),
            # the environment's tool schema and hint add ~310 tokens to every prompt (doc/environment.md)
            max_prompt_length=e.int(
                "GRPO_MAX_PROMPT_LENGTH", 1024 if gpu or environment.enabled else 512, minimum=16
            ),
            beta=e.float("GRPO_BETA", 0.0, 0.0, 10.0),
            scale_rewards=e.choice("GRPO_SCALE_REWARDS", "group", ("group", "batch", "none")),
            logging_steps=e.int("GRPO_LOGGING_STEPS", 1, minimum=1),
            save_steps=e.int("GRPO_SAVE_STEPS", 50 if gpu else 20, minimum=1),
            save_total_limit=e.int("GRPO_SAVE_TOTAL_LIMIT", 3, minimum=1),
            seed=e.int("GRPO_SEED", 42),
            rewards=rewards,
            reward_settings=RewardSettings(
                quality_bonus=e.bool("REWARD_QUALITY_BONUS", False),
                weight_compile=e.float("REWARD_WEIGHT_COMPILE", 0.3, 0.0),
                weight_tests=e.float("REWARD_WEIGHT_TESTS", 0.6, 0.0),
                weight_style=e.float("REWARD_WEIGHT_STYLE", 0.1, 0.0),
            ),
            lora=lora,
            bf16=bf16,
            gradient_checkpointing=e.bool("GRPO_GRADIENT_CHECKPOINTING", gpu),
            merge_lora_for_generation=merge,
            rollout_engine=rollout_engine,
            # exact (checked against TRL's pass once a run); skipped under gradient checkpointing
            shared_prompt_forward=e.bool("GRPO_SHARED_PROMPT_FORWARD", True),
            compact_lm_head=e.bool("GRPO_COMPACT_LM_HEAD", True),
            use_vllm=use_vllm,
            vllm_mode=e.choice("GRPO_VLLM_MODE", "colocate", ("colocate", "server")),
            vllm_server_url=e.str("GRPO_VLLM_SERVER_URL", None),
            vllm_gpu_memory_utilization=e.float("GRPO_VLLM_GPU_MEMORY_UTILIZATION", 0.3, 0.05, 0.95),
            report_to=report,
            push_to_hub=e.bool("GRPO_PUSH_TO_HUB", False),
            hub_model_id=e.str("GRPO_HUB_MODEL_ID", None),
            few_shot=e.int("GRPO_FEW_SHOT", 0, minimum=0),
            curriculum=check_spec(e.str("GRPO_CURRICULUM", "shuffle") or "shuffle"),
            data_on_error=e.choice("GRPO_DATA_ON_ERROR", "raise", ("raise", "skip")),
            verifier=verifier,
            remote_verifier=RemoteConfig.from_env(e.env),
            judge=judge,
            environment=environment,
        )
