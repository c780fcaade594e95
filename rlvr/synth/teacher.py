"""The teacher: any OpenAI-compatible chat endpoint (vLLM, llama-server, serve_transformers, an API),
asked concurrently with retries, its token use counted."""

from __future__ import annotations

import threading
from dataclasses import dataclass


class TeacherError(RuntimeError):
    """The teacher gave no answer after its retries; the request is left for a later run to redo."""


@dataclass(frozen=True)
class TeacherSettings:
    base_url: str  # e.g. http://127.0.0.1:8081/v1
    model: str | None = None  # None: the first model the server lists
    api_key: str | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 1024
    concurrency: int = 8
    retries: int = 3  # the OpenAI client's own retries (with backoff) on connection errors, 429 and 5xx
    timeout_s: float = 300.0

    def provenance(self) -> dict:
        """What a generated row records of how it was sampled (the key never)."""
        return {
            "teacher": self.base_url,
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


class Teacher:
    """One client for all threads; `ask` is safe to call concurrently."""

    def __init__(self, settings: TeacherSettings):
        from openai import OpenAI

        self._client = OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "none",
            timeout=settings.timeout_s,
            max_retries=settings.retries,
        )
        if settings.model is None:
            try:
                models = self._client.models.list().data
            except Exception as e:
                raise TeacherError(f"teacher {settings.base_url}: cannot list its models ({e})") from None
            if not models:
                raise TeacherError(f"teacher {settings.base_url}: it serves no model")
            settings = TeacherSettings(**{**settings.__dict__, "model": models[0].id})
        self.settings = settings
        self._lock = threading.Lock()
        self.requests = 0
        self.failures = 0

    def ask(self, messages: list[dict[str, str]], seed: int | None = None) -> Reply:
        s = self.settings
        try:
            r = self._client.chat.completions.create(
                model=s.model,
                messages=messages,
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_tokens,
                **({"seed": seed} if seed is not None else {}),
            )
        except Exception as e:
            with self._lock:
                self.requests += 1
                self.failures += 1
            raise TeacherError(f"{type(e).__name__}: {str(e)[:300]}") from None
        with self._lock:
            self.requests += 1
        usage = r.usage
        choice = r.choices[0]
        return Reply(
            text=choice.message.content or "",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            finish_reason=choice.finish_reason,
        )

    def close(self) -> None:
        self._client.close()
