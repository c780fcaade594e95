"""The llama-server backend: the model is converted to GGUF once and served by llama.cpp in a child
process, which the server backend then asks (EVAL_BACKEND=llama-server).

Why: on a CPU llama.cpp generates the same model several times faster than transformers'
`generate`, and evaluation is most of a pipeline's time (doc/benchmarks.md). The weights are those
the transformers backend would load (an adapter merged onto its base chain, rlvr.export.gguf.model_dir),
stored as f16 GGUF; the prompt is rendered by the GGUF's copy of the model's own chat template
(llama-server --jinja); sampling is transformers' (temperature then top-p, no top-k, min-p or
penalties; temperature 0 is greedy). Each sample has its own seed, as with the server backend.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rlvr.export import llama_cpp
from rlvr.export.gguf import ExportError, model_dir, write_gguf
from rlvr.export.llama_server import LlamaServer, LlamaServerError, work_dir

from ..config import EvalConfig
from ..local_model import Generation
from .server import ServerBackend, ServerError

SAMPLING = {
    "top_k": 0,
    "min_p": 0.0,
    "repeat_penalty": 1.0,
    "samplers": ["temperature", "top_k", "top_p", "min_p"],
}
PROMPT_TOKENS = 1024  # room per slot for the prompt (the bundled prompts are < 600 tokens)
REPAIR_REQUEST_TOKENS = 64  # eval.repair.REPAIR_REQUEST's own words, with room to spare


def context_per_slot(cfg: EvalConfig) -> int:
    """Tokens per slot: the prompt and the answer; with self-repair (eval/repair.py) also the previous
    answer and the feedback on it (at most ENV_MAX_OUTPUT_BYTES bytes, so at most as many tokens)."""
    tokens = PROMPT_TOKENS + cfg.max_tokens
    if cfg.repair:
        from rlvr.environment import EnvironmentSettings

        feedback = EnvironmentSettings.from_env(os.environ).max_output_bytes
        tokens += cfg.max_tokens + feedback + REPAIR_REQUEST_TOKENS
    return tokens


class LlamaServerBackend:
    """Serves `cfg.model` with llama-server for the length of the evaluation."""

    def __init__(self, cfg: EvalConfig):
        if not llama_cpp.is_built():
            raise ServerError("EVAL_BACKEND=llama-server needs llama.cpp: run `make llama-cpp` once")
        self.cfg = cfg
        self.work = work_dir("ocamler-eval-", "model")
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            source = model_dir(cfg.model or "bundled", self.work)
            gguf = write_gguf(source, self.work / "model-f16.gguf", "f16")
            threads = cfg.threads or os.cpu_count() or 1
            self.server = LlamaServer(
                cfg.concurrency,
                context_per_slot(cfg),
                threads,
                self.work / "llama-server.log",
                jinja=True,
            )
            self.server.start(gguf)
        except (ExportError, LlamaServerError) as e:
            self.close()
            raise ServerError(f"--model {cfg.model}: {e}") from None
        served = replace(
            cfg,
            backend="server",
            model=None,
            base_url=self.server.url + "/v1",
            extra_body={**SAMPLING, **cfg.extra_body},
        )
        try:
            self.client = ServerBackend(served)
        except ServerError:
            self.close()  # no server or GGUF left behind when it does not answer
            raise
        self.info = {
            "backend": "llama-server",
            "spec": cfg.model,
            "gguf": "f16",
            "llama_cpp": llama_cpp.version_from_env(),
            "threads": threads,
            "extra_body": served.extra_body,
        }

    def describe(self) -> dict[str, Any]:
        return {**self.info, "retried_requests": self.client.retried}

    def generate(self, prompts: Sequence[list[dict[str, str]]], n: int, seed: int) -> list[list[Generation]]:
        return self.client.generate(prompts, n, seed)

    def close(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        shutil.rmtree(self.work, ignore_errors=True)
