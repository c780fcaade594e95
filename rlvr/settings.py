"""Settings that several programs read (trainers, launcher, pipeline, dashboard, evaluation), each read
here and only here, with its one default: where each kind of run lives, how runs are named, the base
model, and the monitors' addresses. The stage configs (rlvr.grpo.config, sft.config, eval.config) hold the
settings that are theirs alone.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping

from .envconf import Env
from .models import BUNDLED, GPU_DEFAULT

# kind -> (variable, default directory) of the run directories
RUN_ROOTS = {
    "grpo": ("GRPO_OUTPUT_DIR", "grpo_runs"),
    "sft": ("SFT_OUTPUT_DIR", "sft_runs"),
    "eval": ("EVAL_OUTPUT_DIR", "eval_runs"),
    "pipeline": ("PIPELINE_OUTPUT_DIR", "pipeline_runs"),
}
DASHBOARD_HOST, DASHBOARD_PORT, TENSORBOARD_PORT = "127.0.0.1", 8080, 6006


def _env(env: Mapping[str, str] | Env) -> Env:
    return env if isinstance(env, Env) else Env(env)


def run_root(kind: str, env: Mapping[str, str] | Env) -> str:
    """The directory that holds runs of `kind` (grpo, sft, eval, pipeline)."""
    var, default = RUN_ROOTS[kind]
    return _env(env).str(var, default) or default


def base_model(env: Mapping[str, str] | Env, gpu: bool = False) -> str:
    """BASE_MODEL_ID: the model SFT, GRPO and the pipeline start from (bundled on CPU, Qwen on CUDA)."""
    return _env(env).str("BASE_MODEL_ID", GPU_DEFAULT if gpu else BUNDLED) or BUNDLED


def model_tag(model: str) -> str:
    """A model id or path as a short name fit for a run directory."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", model.rstrip("/").split("/")[-1])[:40]


def default_run_name(model: str) -> str:
    """<YYYYmmdd-HHMMSS>-<model tag>: how a new GRPO, SFT or pipeline run is named."""
    return f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{model_tag(model)}"


def dashboard_address(env: Mapping[str, str] | Env) -> tuple[str, int]:
    """DASHBOARD_HOST and DASHBOARD_PORT."""
    e = _env(env)
    return e.str("DASHBOARD_HOST", DASHBOARD_HOST) or DASHBOARD_HOST, e.int("DASHBOARD_PORT", DASHBOARD_PORT)


def tensorboard_port(env: Mapping[str, str] | Env) -> int:
    return _env(env).int("TENSORBOARD_PORT", TENSORBOARD_PORT)
