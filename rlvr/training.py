"""What the two training entry points share: `python -m rlvr.train` (GRPO) and `python -m sft.train`.

Both follow one skeleton, `run_training`: settings from the environment → the run directory (new, or
the one named by *_RESUME) → model, tokenizer and data → run.json → train (a checkpoint and a clean stop
on SIGTERM) → final/ and the run's status. A trainer supplies only what differs, as a `TrainingJob`:
its config, its data, its TRL trainer and what it records at the end. The TrainingArguments both set
alike, the LoRA config and the package versions recorded in run.json live here too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import traceback
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TRACKIO_PROJECT, weights_dtype
from .data import DataError
from .envconf import ConfigError
from .models import ModelLoadError, check_loadable, load_tokenizer, resolve_model
from .runlog import RunDir, RunDirError, git_commit, now_iso

if TYPE_CHECKING:
    from transformers import Trainer

    from sft.config import SFTTrainConfig

    from .callbacks import RunFilesCallback
    from .grpo.config import GRPOTrainConfig

    TrainConfig = GRPOTrainConfig | SFTTrainConfig

REPO = Path(__file__).resolve().parent.parent


def versions() -> dict[str, str]:
    """The versions of the packages a run depends on, for run.json."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def checkpointing_arg() -> str:
    """transformers 5 renamed `gradient_checkpointing` to `activation_checkpointing` (the old name warns)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def shared_trainer_args(cfg: TrainConfig, run: RunDir) -> dict[str, Any]:
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


def peft_config(cfg: TrainConfig):
    """The LoRA config of a run, or None for full fine-tuning."""
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


class TrainingJob(ABC):
    """What one trainer adds to the skeleton. Methods run in the order they are listed."""

    kind: str  # run.json's "kind": "grpo" or "sft"

    @abstractmethod
    def load_config(self, env: dict[str, str]) -> TrainConfig:
        """The frozen settings of the run (raises ConfigError naming the variable)."""

    @abstractmethod
    def prepare(self, cfg: TrainConfig, model_path: str, tokenizer) -> dict[str, Any]:
        """Load the data (raises DataError); return the fields a new run's run.json records about it."""

    @abstractmethod
    def files_callback(self, run: RunDir) -> RunFilesCallback:
        """The callback that writes metrics.jsonl and turns SIGTERM into a checkpoint and a stop."""

    @abstractmethod
    def build_trainer(
        self, cfg: TrainConfig, run: RunDir, model_path: str, tokenizer, files: RunFilesCallback
    ) -> Trainer:
        """The TRL trainer, with `files` among its callbacks."""

    def after_training(self, cfg: TrainConfig, trainer: Trainer, stopped: bool) -> dict[str, Any]:
        """Work after trainer.train() and before the final save; the run.json fields it adds."""
        return {}

    def saved_message(self, cfg: TrainConfig, status: str, final: Path) -> str:
        return f"{status}: model saved to {final}"

    def close(self) -> None:  # noqa: B027 (a hook with nothing to do by default, not an abstract one)
        """Release what prepare() opened (the verifier's workers, say); runs whatever happened."""


def run_training(job: TrainingJob, env: dict[str, str] | None = None) -> int:
    """The entry point's main: 0 when finished or stopped, 1 when training failed, 2 on bad settings
    or data (before anything is trained). A failure still leaves run.json saying why."""
    env = dict(os.environ if env is None else env)
    try:
        cfg = job.load_config(env)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    try:
        run = RunDir.open(Path(cfg.output_dir), cfg.run_name, cfg.resume, kind=job.kind)
    except RunDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("resolved configuration:\n" + json.dumps(cfg.to_dict(), indent=2, default=str), flush=True)
    try:
        try:
            model_path = resolve_model(cfg.model)
            check_loadable(model_path)
            tokenizer = load_tokenizer(model_path)
            data_info = job.prepare(cfg, model_path, tokenizer)
        except (ModelLoadError, DataError) as e:
            print(f"error: {e}", file=sys.stderr)
            run.close()
            return 2
        return _train(job, cfg, run, model_path, tokenizer, data_info)
    finally:
        job.close()


def _train(job: TrainingJob, cfg: TrainConfig, run: RunDir, model_path: str, tokenizer, data_info) -> int:
    if cfg.resume:
        resume_from = run.mark_resumed()
    else:
        resume_from = None
        run.start_info(
            config={**cfg.to_dict(), "model_path": model_path},
            model=cfg.model,
            dataset=cfg.dataset,
            **data_info,
            versions=versions(),
            git_commit=git_commit(REPO),
        )
    run.point_latest()
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.path / "tb")
    files = job.files_callback(run)
    files.install_signal_handlers()
    if cfg.compact_lm_head:
        from .lm_head import compact_lm_head_on_cpu

        compact_lm_head_on_cpu()
    try:
        trainer = job.build_trainer(cfg, run, model_path, tokenizer, files)
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        extra = job.after_training(cfg, trainer, files.stop_requested)
        final = run.path / "final"
        trainer.save_model(str(final))
        status = "stopped" if files.stop_requested else "finished"
        run.update_info(status=status, finished_at=now_iso(), final_model=str(final), **extra)
        print(job.saved_message(cfg, status, final), flush=True)
        return 0
    except BaseException as e:
        traceback.print_exc()
        if disk_full(e):
            print(
                f"error: no space left on the device that holds {run.path} ({e}). Every line already "
                f"written is intact; free some space, then continue with {job.kind.upper()}_RESUME={run.path}",
                file=sys.stderr,
                flush=True,
            )
        try:
            run.update_info(status="failed", finished_at=now_iso(), error=f"{type(e).__name__}: {e}")
        except OSError as write_error:  # the disk is still full: readers will show the run as died
            print(f"could not record the failure in {run.path / 'run.json'}: {write_error}", file=sys.stderr)
        return 1
    finally:
        run.close()


def disk_full(error: BaseException | None) -> bool:
    """Whether `error` (or one it was raised from) is ENOSPC; torch.save reports it inside a RuntimeError."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False
