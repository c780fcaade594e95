"""The transformers backend: the model runs in this process, one batched `generate` per call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlvr.prompts import render

from ..config import EvalConfig
from ..local_model import Generation, generate, load_model


class TransformersBackend:
    """Loads `cfg.model` (adapter dirs on their base) and samples with the settings of `cfg`."""

    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        self.lm = load_model(cfg.model, cfg.dtype)
        self.info = {"backend": "transformers", **self.lm.info}

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    def generate(self, prompts: Sequence[list[dict[str, str]]], n: int, seed: int) -> list[list[Generation]]:
        texts = [render(self.lm.tokenizer, messages) for messages in prompts]
        return generate(
            self.lm,
            texts,
            n=n,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            max_new_tokens=self.cfg.max_tokens,
            seed=seed,
        )

    def close(self) -> None:
        self.lm = None  # type: ignore[assignment]  # frees the weights; describe() still works
