"""The training settings every trainer reads the same way: LoRA, trackers, bf16 and the weights' dtype.

GRPO's own settings are rlvr.grpo.config's, SFT's sft.config's; both build on these (.envrc documents
each variable). `prefix` is GRPO or SFT. LORA_* is shared on purpose: the usual chain trains one base
with SFT, then GRPO.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .envconf import ConfigError, Env

TRACKERS = ("tensorboard", "wandb", "trackio", "none")
OPTIONAL_TRACKERS = ("wandb", "trackio")  # pip install -e '.[tracking]'
TRACKIO_PROJECT = "ocamler-grpo"  # trackio's project (its database is <TRACKIO_DIR>/ocamler-grpo.db)


@dataclass(frozen=True)
class LoraSettings:
    enabled: bool = True  # False = full fine-tuning
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("all-linear",)
    load_in_4bit: bool = False  # QLoRA (CUDA + bitsandbytes)


def report_to_from_env(e: Env, prefix: str) -> tuple[str, ...]:
    """<prefix>_REPORT_TO: trackers beside TensorBoard (always on unless the list says none).

    A tracker whose package is not installed is refused here, with the command that installs it,
    rather than after the model has loaded.
    """
    report = e.list(f"{prefix}_REPORT_TO", ["tensorboard"])
    for r in report:
        if r not in TRACKERS:
            raise ConfigError(
                f"{prefix}_REPORT_TO={','.join(report)!r}: {r!r} is not one of {', '.join(TRACKERS)}"
            )
        if r in OPTIONAL_TRACKERS and importlib.util.find_spec(r) is None:
            raise ConfigError(
                f"{prefix}_REPORT_TO={','.join(report)!r}: {r} is not installed; install the trackers with "
                f"`.venv/bin/pip install -e '.[tracking]'` (or `.venv/bin/pip install {r}`)"
            )
    if "tensorboard" not in report and "none" not in report:
        report = ("tensorboard", *report)
    return tuple(r for r in report if r != "none")


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The CPU features that make bf16 matmuls fast here (AVX512-BF16, AMX), from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return ()
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return tuple(f for f in CPU_BF16_FLAGS if f in flags)


def bf16_from_env(e: Env, prefix: str, gpu: bool, cpu_bf16: bool | None = None) -> bool:
    """<prefix>_BF16, on by default with the cuda profile and on CPUs with fast bf16 (`cpu_bf16`;
    None: read /proc/cpuinfo).

    On CPU it means bf16 autocast over float32 master weights (measured: the same loss as float32
    within noise, doc/benchmarks.md), allowed only where the CPU has AVX512-BF16 or AMX: elsewhere
    bf16 is emulated and slower than float32.
    """
    if cpu_bf16 is None:
        cpu_bf16 = bool(cpu_bf16_flags())
    bf16 = e.bool(f"{prefix}_BF16", gpu or cpu_bf16)
    if bf16 and not gpu and not cpu_bf16:
        raise ConfigError(
            f"{prefix}_BF16=1 on CPU needs AVX512-BF16 or AMX (this CPU has neither, so bf16 would be "
            f"emulated and slower than float32): unset {prefix}_BF16"
        )
    return bf16


def profile_from_env(e: Env, prefix: str, cuda: bool | None) -> str:
    """<prefix>_PROFILE: `cuda` where a GPU is present (detected when `cuda` is None), else `cpu`."""
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    return e.choice(f"{prefix}_PROFILE", "cuda" if cuda else "cpu", ("cpu", "cuda"))


def weights_dtype(profile: str, bf16: bool) -> str:
    """The dtype the model's weights load in: bf16 on CUDA; float32 on CPU, where bf16 is autocast
    (the optimizer keeps float32 master weights, so small LoRA updates are not rounded away)."""
    return "bfloat16" if bf16 and profile == "cuda" else "float32"


def lora_from_env(e: Env, prefix: str, gpu: bool, load_in_4bit: bool = False) -> LoraSettings:
    """LORA_* with the profile's defaults; <prefix>_FULL_FINETUNE=1 trains every weight instead."""
    return LoraSettings(
        enabled=not e.bool(f"{prefix}_FULL_FINETUNE", False),
        r=e.int("LORA_R", 64 if gpu else 16, minimum=1),
        alpha=e.int("LORA_ALPHA", 128 if gpu else 32, minimum=1),
        # cpu 0: PEFT's dropout draws a mask over every LoRA layer's input, 1.30x an SFT step on CPU, and
        # without it the held-out loss was no worse (doc/benchmarks.md); cuda keeps 0.05 (not measured)
        dropout=e.float("LORA_DROPOUT", 0.05 if gpu else 0.0, 0.0, 1.0),
        target_modules=e.list("LORA_TARGET_MODULES", ["all-linear"]),
        load_in_4bit=load_in_4bit,
    )
