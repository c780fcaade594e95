"""Generation backends: something that turns chat prompts into n sampled answers each.

`transformers` runs the model in this process (batched, left padding); `server` asks any
OpenAI-compatible server (llama-server, vLLM, llama-cpp-python, scripts/serve_transformers.py);
`llama-server` serves the model itself with llama.cpp for the evaluation (faster on a CPU).
Both take the chat messages of rlvr.prompts.build_messages, so evaluation sees what training saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..config import EvalConfig
from ..local_model import Generation

Messages = list[dict[str, str]]


class Backend(Protocol):
    """Generates `n` samples per prompt; `describe` is what summary.json records about the model."""

    def describe(self) -> dict[str, Any]: ...

    def generate(self, prompts: Sequence[Messages], n: int, seed: int) -> list[list[Generation]]: ...

    def close(self) -> None: ...


def make_backend(cfg: EvalConfig) -> Backend:
    """The backend `cfg.backend` names, ready to generate (the model loaded or the server reached)."""
    if cfg.backend == "transformers":
        from .local import TransformersBackend

        return TransformersBackend(cfg)
    if cfg.backend == "llama-server":
        from .llama import LlamaServerBackend

        return LlamaServerBackend(cfg)
    from .server import ServerBackend

    return ServerBackend(cfg)


__all__ = ["Backend", "Generation", "Messages", "make_backend"]
