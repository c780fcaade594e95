"""The server backend: any OpenAI-compatible `/v1/chat/completions` (llama-server, vLLM, llama-cpp-python,
scripts/serve_transformers.py), with concurrent requests and retries with exponential backoff.

By default each sample is its own request (n omitted, its own seed = run seed + sample number): every
server accepts that, including llama-server builds that refuse n > 1 ("Only one completion choice is
allowed"). EVAL_SERVER_BATCH_N=1 sends one request with n=N per problem instead (vLLM, newer
llama-server and serve_transformers accept it). Sampling parameters outside the OpenAI API (top_k,
min_p, repetition penalties) are the server's own defaults unless EVAL_EXTRA_BODY (a JSON object merged
into every request) sets them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ..config import EvalConfig
from ..local_model import Generation

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


class ServerError(RuntimeError):
    """The server could not be used: unreachable after retries, or it refused a request."""


class ServerBackend:
    """Asks `cfg.base_url` for completions of `cfg.model` (default: the first model the server lists)."""

    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg
        self.base_url = str(cfg.base_url)
        key = os.environ.get("OPENAI_API_KEY", "").strip()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.extra = dict(cfg.extra_body)
        self.retried = 0  # requests sent again after a transient failure
        self.server_models = self._list_models()
        if cfg.model:
            self.model = cfg.model
            if self.server_models and cfg.model not in self.server_models:
                print(
                    f"warning: {cfg.model!r} is not among the served models {self.server_models} "
                    "(llama-server ignores the name; vLLM refuses it)",
                    file=sys.stderr,
                )
        elif self.server_models:
            self.model = self.server_models[0]
        else:
            raise ServerError(
                f"{self.base_url}/models lists no model; name the served model with model=<name> (EVAL_MODEL)"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "server",
            "base_url": self.base_url,
            "spec": self.model,
            "server_models": self.server_models,
            "batch_n": self.cfg.server_batch_n,
            "extra_body": self.extra,
            "retried_requests": self.retried,
        }

    def close(self) -> None:
        pass

    def _list_models(self) -> list[str]:
        """Model ids from GET /models ([] if the server has no such endpoint); fails if unreachable."""
        url = f"{self.base_url}/models"
        last: Exception | None = None
        for attempt in range(self.cfg.retries + 1):
            try:
                r = httpx.get(url, headers=self.headers, timeout=min(30.0, self.cfg.request_timeout))
            except httpx.TransportError as e:
                last = e
                if attempt < self.cfg.retries:
                    time.sleep(_backoff(attempt))
                continue
            if r.status_code == 404:
                return []
            if r.status_code in RETRY_STATUS:  # llama-server answers 503 while it loads the model
                last = ServerError(f"HTTP {r.status_code}: {r.text[:200]}")
                if attempt < self.cfg.retries:
                    time.sleep(max(_backoff(attempt), _retry_after(r)))
                continue
            if r.status_code != 200:
                raise ServerError(f"GET {url} answered {r.status_code}: {r.text[:300]}")
            try:
                return [str(m["id"]) for m in r.json().get("data", []) if isinstance(m, dict) and "id" in m]
            except (ValueError, AttributeError):
                raise ServerError(
                    f"GET {url}: the answer is not OpenAI's model list: {r.text[:300]}"
                ) from None
        raise ServerError(
            f"cannot reach the server at {self.base_url} (OPENAI_BASE_URL) after {self.cfg.retries + 1} "
            f"attempts: {type(last).__name__}: {last}. Is it running? (e.g. `python scripts/serve_transformers.py`)"
        )

    # -- generation ------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[list[dict[str, str]]], n: int, seed: int) -> list[list[Generation]]:
        """n samples per prompt; sample j of prompt i is seeded `seed + i * n + j` (one request each)."""
        return asyncio.run(self._generate(prompts, n, seed))

    async def _generate(self, prompts, n: int, seed: int) -> list[list[Generation]]:
        limits = httpx.Limits(max_connections=self.cfg.concurrency)
        gate = asyncio.Semaphore(self.cfg.concurrency)
        async with httpx.AsyncClient(
            headers=self.headers, timeout=self.cfg.request_timeout, limits=limits
        ) as client:
            if self.cfg.server_batch_n:
                jobs = [self._request(client, gate, m, n, seed + i * n) for i, m in enumerate(prompts)]
                return await _all_or_cancel(jobs)
            jobs = [
                self._request(client, gate, m, 1, seed + i * n + j)
                for i, m in enumerate(prompts)
                for j in range(n)
            ]
            flat = [g[0] for g in await _all_or_cancel(jobs)]
            return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    async def _request(self, client, gate, messages, n: int, seed: int) -> list[Generation]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.cfg.temperature,
            "top_p": self.cfg.top_p,
            "max_tokens": self.cfg.max_tokens,
            "seed": seed,
            **({"n": n} if n != 1 else {}),
            **self.extra,
        }
        async with gate:
            start = time.monotonic()
            body = await self._post(client, payload)
            seconds = time.monotonic() - start
        return _parse_choices(body, n, seconds, f"{self.base_url}/chat/completions")

    async def _post(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        problem = ""
        for attempt in range(self.cfg.retries + 1):
            wait = _backoff(attempt)
            try:
                r = await client.post(url, json=payload)
            except httpx.TransportError as e:  # connection refused/reset, timeouts
                problem = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        problem = f"answer is not JSON: {r.text[:200]}"
                elif "only one completion choice" in r.text.lower():
                    raise ServerError(
                        f"{url} refuses n > 1 (llama-server does): set EVAL_SERVER_BATCH_N=0 "
                        "to send one request per sample"
                    )
                elif r.status_code in RETRY_STATUS:
                    problem = f"HTTP {r.status_code}: {r.text[:200]}"
                    wait = max(wait, _retry_after(r))
                else:
                    raise ServerError(f"{url} answered HTTP {r.status_code}: {r.text[:500]}")
            if attempt < self.cfg.retries:
                self.retried += 1
                await asyncio.sleep(wait)
        raise ServerError(f"{url} failed after {self.cfg.retries + 1} attempts (EVAL_RETRIES): {problem}")


async def _all_or_cancel(jobs: list) -> list:
    """Run the coroutines concurrently; on the first failure cancel the others (and wait for them)
    before raising it, so no request is left running against a closed client."""
    tasks = [asyncio.ensure_future(j) for j in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: ~0.5 s, 1 s, 2 s, ... capped at 30 s."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * (0.5 + random.random())


def _retry_after(r: httpx.Response) -> float:
    try:
        return min(BACKOFF_CAP_S, float(r.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0


def _parse_choices(body: dict[str, Any], n: int, seconds: float, url: str) -> list[Generation]:
    """Generations from an OpenAI chat.completion object (content None counts as empty text)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or len(choices) < n:
        raise ServerError(f"{url}: expected {n} choice(s) in the answer, got: {json.dumps(body)[:300]}")
    usage = body.get("usage") or {}
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    per_choice = tokens if n == 1 and isinstance(tokens, int) else None  # usage is per request
    out = []
    for choice in sorted(choices, key=lambda c: c.get("index", 0))[:n]:
        message = choice.get("message") or {}
        text = message.get("content") or ""
        out.append(
            Generation(
                text=text,
                finish_reason=choice.get("finish_reason"),
                completion_tokens=per_choice,
                seconds=round(seconds / n, 4),
            )
        )
    return out
