"""Evaluation settings: one frozen object from EVAL_* environment variables and command-line flags.

A flag wins over its variable, which wins over the default. A wrong value stops with a message naming
the flag and/or variable, the value and what is allowed, before any model is loaded. Every setting is
recorded in summary.json (the API key never is).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rlvr.envconf import ConfigError, Env
from rlvr.settings import run_root

from .passk import ks_up_to, parse_ks

BACKENDS = ("transformers", "server", "llama-server")
SPLITS = ("eval", "train", "all")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_KS = "1,5,10"

# command-line flag -> environment variable (the flag's value wins)
FLAGS: dict[str, str] = {
    "model": "EVAL_MODEL",
    "backend": "EVAL_BACKEND",
    "data": "EVAL_DATA",
    "split": "EVAL_SPLIT",
    "limit": "EVAL_LIMIT",
    "n": "EVAL_N",
    "k": "EVAL_K",
    "temperature": "EVAL_TEMPERATURE",
    "top_p": "EVAL_TOP_P",
    "max_tokens": "EVAL_MAX_TOKENS",
    "seed": "EVAL_SEED",
    "batch_size": "EVAL_BATCH_SIZE",
    "dtype": "EVAL_DTYPE",
    "threads": "EVAL_THREADS",
    "base_url": "OPENAI_BASE_URL",
    "concurrency": "EVAL_CONCURRENCY",
    "retries": "EVAL_RETRIES",
    "request_timeout": "EVAL_REQUEST_TIMEOUT",
    "server_batch_n": "EVAL_SERVER_BATCH_N",
    "extra_body": "EVAL_EXTRA_BODY",
    "output_dir": "EVAL_OUTPUT_DIR",
    "run_name": "EVAL_RUN_NAME",
    "resume": "EVAL_RESUME",
    "repair": "EVAL_REPAIR",
}

RUN_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate, on what, how to sample, and where to write. Documented in doc/eval.md."""

    model: str | None  # "bundled" | path | adapter dir | hub id; for the server backend: the served name
    backend: str  # transformers | server | llama-server (this model served by llama.cpp for the run)
    data: str  # "bundled" | file | hub id (anything rlvr.data.load_problems reads)
    split: str  # eval | train | all
    limit: int  # first N problems of the split (0 = all)
    n: int  # samples per problem
    ks: tuple[int, ...]  # pass@k for each k (all <= n)
    temperature: float  # 0 = greedy
    top_p: float
    max_tokens: int  # new tokens per sample
    seed: int
    batch_size: int  # problems per generation call (each with n samples)
    dtype: str  # transformers backend: auto = bfloat16 on CUDA, float32 on CPU
    threads: int  # transformers backend: CPU threads for torch (0 = torch's default)
    base_url: str | None  # server backend: OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1
    concurrency: int  # server backend: requests in flight
    retries: int  # server backend: extra attempts after a transient failure
    request_timeout: float  # server backend: seconds per request
    server_batch_n: bool  # server backend: one request with n=N per problem instead of N requests
    extra_body: dict[str, Any]  # server backend: extra JSON fields for every request (top_k, min_p, ...)
    output_dir: str
    run_name: str | None
    resume: str | None = None  # an interrupted run to continue (eval/resume.py)
    repair: int = 0  # self-repair rounds after a failing answer (eval/repair.py); 0 = single-turn

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_sources(env: Mapping[str, str], flags: Mapping[str, object] | None = None) -> EvalConfig:
        """Parse `env` (os.environ) overlaid with non-None `flags` (argparse values keyed as in FLAGS)."""
        merged = dict(env)
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        for key, value in given.items():
            merged[FLAGS[key]] = str(value)
        try:
            env_k = Env(env).raw("EVAL_K")
            explicit_k = "k" in given or (env_k is not None and env_k.replace(" ", "") != DEFAULT_KS)
            return _parse(Env(merged), explicit_k=explicit_k)
        except (ConfigError, ValueError) as e:
            raise ConfigError(_name_flags(str(e), given)) from None


def _parse(e: Env, explicit_k: bool) -> EvalConfig:
    backend = e.choice("EVAL_BACKEND", "transformers", BACKENDS)
    n = e.int("EVAL_N", 1, minimum=1)
    ks_all = parse_ks(e.str("EVAL_K", DEFAULT_KS) or DEFAULT_KS, "EVAL_K")
    ks = ks_up_to(ks_all, n)
    if explicit_k and ks != ks_all:
        too_big = ",".join(str(k) for k in ks_all if k > n)
        raise ConfigError(
            f"EVAL_K={','.join(map(str, ks_all))!r} asks for pass@{too_big} but EVAL_N={n}: "
            "pass@k needs k <= n samples per problem (raise EVAL_N or drop those k)"
        )
    temperature = e.float("EVAL_TEMPERATURE", 0.0 if n == 1 else 0.8, 0.0, 5.0)
    if n > 1 and temperature == 0.0:
        raise ConfigError(
            f"EVAL_TEMPERATURE=0 (greedy) with EVAL_N={n}: the {n} samples would be identical; "
            "set a temperature > 0 (0.8 is usual for pass@k) or EVAL_N=1"
        )
    base_url = e.str("OPENAI_BASE_URL", None)
    if backend == "server" and not base_url:
        raise ConfigError(
            "EVAL_BACKEND=server needs OPENAI_BASE_URL (e.g. http://127.0.0.1:8080/v1 for llama-server, "
            "http://127.0.0.1:8000/v1 for vLLM or scripts/serve_transformers.py)"
        )
    if base_url and not re.match(r"^https?://", base_url):
        raise ConfigError(f"OPENAI_BASE_URL={base_url!r}: expected an http:// or https:// URL")
    run_name = e.str("EVAL_RUN_NAME", None)
    if run_name and not RUN_NAME.match(run_name):
        raise ConfigError(f"EVAL_RUN_NAME={run_name!r}: use letters, digits, '.', '_' and '-' only")
    default_model = None if backend == "server" else "bundled"
    return EvalConfig(
        model=e.str("EVAL_MODEL", default_model),
        backend=backend,
        data=e.str("EVAL_DATA", "bundled") or "bundled",
        split=e.choice("EVAL_SPLIT", "eval", SPLITS),
        limit=e.int("EVAL_LIMIT", 0, minimum=0),
        n=n,
        ks=ks,
        temperature=temperature,
        top_p=e.float("EVAL_TOP_P", 1.0, 0.0, 1.0),
        max_tokens=e.int("EVAL_MAX_TOKENS", 512, minimum=1),
        seed=e.int("EVAL_SEED", 0, minimum=0),
        batch_size=e.int("EVAL_BATCH_SIZE", 8, minimum=1),
        dtype=e.choice("EVAL_DTYPE", "auto", DTYPES),
        threads=e.int("EVAL_THREADS", 0, minimum=0),
        base_url=base_url.rstrip("/") if base_url else None,
        concurrency=e.int("EVAL_CONCURRENCY", 8, minimum=1),
        retries=e.int("EVAL_RETRIES", 5, minimum=0),
        request_timeout=e.float("EVAL_REQUEST_TIMEOUT", 600.0, 1.0),
        server_batch_n=e.bool("EVAL_SERVER_BATCH_N", False),
        extra_body=_json_object(e.str("EVAL_EXTRA_BODY", None)),
        output_dir=run_root("eval", e),
        run_name=run_name,
        resume=e.str("EVAL_RESUME", None),
        repair=_repairs(e),
    )


def _repairs(e: Env) -> int:
    """EVAL_REPAIR: self-repair rounds per failing answer (0 = none, single-turn as without it)."""
    repair = e.int("EVAL_REPAIR", 0)
    if repair < 0:
        raise ConfigError(
            f"EVAL_REPAIR={e.raw('EVAL_REPAIR')!r}: expected the number of self-repair rounds, an integer "
            ">= 0 (0 = no repair)"
        )
    return repair


def _json_object(raw: str | None) -> dict[str, Any]:
    """EVAL_EXTRA_BODY: a JSON object merged into every server request, e.g. {"top_k": 0, "min_p": 0}."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"EVAL_EXTRA_BODY={raw!r}: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f'EVAL_EXTRA_BODY={raw!r}: expected a JSON object, e.g. {{"top_k": 0}}')
    return value


def _name_flags(message: str, given: Mapping[str, object]) -> str:
    """Say `--n / EVAL_N=...` instead of `EVAL_N=...` when the value came from a flag."""
    for key in given:
        var = FLAGS[key]
        message = re.sub(rf"\b{var}=", f"--{key.replace('_', '-')} ({var})=", message, count=1)
    return message
