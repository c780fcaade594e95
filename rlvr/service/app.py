"""The reward server's FastAPI application: the verifier over HTTP.

Endpoints (doc/scaling.md):
  GET  /health     status, problems loaded, the pool, completions scored and the throughput
  GET  /problems   the ids of the problem sets loaded at start
  POST /score      {"items": [{"problem_id", "completion"}], "problems": [inline problems]} -> Outcome records
  POST /openrlhf   OpenRLHF's remote reward protocol: {"query", "prompts", "labels"} -> {"rewards", ...}

One Verifier (one sandboxed worker pool) serves every request; FastAPI runs the scoring endpoints in its
thread pool, so concurrent requests share the pool. Every request is held to the bounds of ServerConfig
(a 413 or 422 that says which), and a token, when set, is required of all of them (401).
"""

from __future__ import annotations

import dataclasses
import hmac
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..data import DataError
from ..problems import Problem
from ..verifier import Outcome, Verifier
from .config import ServerConfig
from .openrlhf import ProtocolError, items_of, reply, score_request
from .wire import problem_from_wire


class Item(BaseModel):
    problem_id: str
    completion: str


class ScoreRequest(BaseModel):
    items: list[Item]
    problems: list[dict[str, Any]] = Field(default_factory=list)


class CalibrateRequest(BaseModel):
    problems: list[dict[str, Any]]


class OpenRLHFRequest(BaseModel):
    query: list[str]
    prompts: list[str] | None = None
    labels: list[str | None] | None = None


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 before the app sees it. A declared
    length is checked at once; a streamed body is read up to the limit, then handed on whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over {self.limit} bytes (REWARD_SERVER_MAX_BODY_BYTES): send smaller batches"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


class Throughput:
    """Completions scored, in all and over the last minute, for /health."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.started = time.monotonic()
        self.total = 0
        self.requests = 0
        self.busy_s = 0.0
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def record(self, n: int, seconds: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.total += n
            self.requests += 1
            self.busy_s += seconds
            self._recent.append((now, n))
            while self._recent and self._recent[0][0] < now - self.window_s:
                self._recent.popleft()

    def snapshot(self) -> dict[str, float | int]:
        now = time.monotonic()
        with self._lock:
            recent = sum(n for t, n in self._recent if t >= now - self.window_s)
            up = now - self.started
            return {
                "uptime_s": round(up, 1),
                "requests": self.requests,
                "completions_scored": self.total,
                "completions_per_s": round(self.total / up, 3) if up else 0.0,
                "completions_per_s_last_minute": round(recent / min(self.window_s, up), 3) if up else 0.0,
            }


def create_app(config: ServerConfig, verifier: Verifier, problems: Sequence[Problem]) -> FastAPI:
    """The service around one verifier and the problems loaded at start (by id)."""
    known = {p.id: p for p in problems}
    meter = Throughput()
    pending = {"n": 0}
    pending_lock = threading.Lock()
    app = FastAPI(title="ocamler-grpo reward server", version="1")
    # added before the token check, so that the token is checked first (the last added runs outermost)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if config.token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode()):
                return JSONResponse(
                    {"detail": "missing or wrong token (send `Authorization: Bearer <REWARD_SERVER_TOKEN>`)"},
                    status_code=401,
                )
        return await call_next(request)

    def check_size(n: int) -> None:
        if n == 0:
            raise HTTPException(422, "no completions to score")
        if n > config.max_batch:
            raise HTTPException(
                413, f"{n} completions in one request; at most {config.max_batch} (REWARD_SERVER_MAX_BATCH)"
            )

    def check_completion(i: int, text: str) -> None:
        if len(text) > config.max_completion_chars:
            raise HTTPException(
                413,
                f"item {i}: completion of {len(text)} characters; at most {config.max_completion_chars} "
                "(REWARD_SERVER_MAX_COMPLETION_CHARS)",
            )

    def score(items: list[tuple[Problem, str]], ids: list[str]) -> list[Outcome]:
        """Score with the shared pool, unless too much is queued already (503: try another host)."""
        with pending_lock:
            if pending["n"] + len(items) > config.max_pending:
                raise HTTPException(
                    503,
                    f"busy: {pending['n']} completions queued (REWARD_SERVER_MAX_PENDING {config.max_pending})",
                    headers={"Retry-After": "1"},
                )
            pending["n"] += len(items)
        start = time.monotonic()
        try:
            return verifier.score_batch(items, ids=ids)
        finally:
            with pending_lock:
                pending["n"] -= len(items)
            meter.record(len(items), time.monotonic() - start)

    @app.get("/health")
    def health() -> dict[str, Any]:
        with pending_lock:
            queued = pending["n"]
        return {
            "status": "ok",
            "problems": len(known),
            "problem_sets": list(config.problems),
            "workers": verifier.jobs,
            "sandbox": verifier.config.sandbox,
            "pending": queued,
            "infra_failures": verifier.infra_failures,
            "limits": {
                "max_batch": config.max_batch,
                "max_body_bytes": config.max_body_bytes,
                "max_completion_chars": config.max_completion_chars,
                "max_inline_problems": config.max_inline_problems,
            },
            **meter.snapshot(),
        }

    @app.get("/problems")
    def problem_ids() -> dict[str, Any]:
        return {"count": len(known), "ids": sorted(known)}

    def inline_problems(rows: list[dict[str, Any]]) -> dict[str, Problem]:
        if len(rows) > config.max_inline_problems:
            raise HTTPException(
                413,
                f"{len(rows)} inline problems; at most {config.max_inline_problems} "
                "(REWARD_SERVER_MAX_INLINE_PROBLEMS)",
            )
        inline: dict[str, Problem] = {}
        for n, row in enumerate(rows):
            try:
                p = problem_from_wire(row, f"problems[{n}]")
            except DataError as e:
                raise HTTPException(422, str(e)) from None
            if p.id in inline:
                raise HTTPException(422, f"problems[{n}]: id {p.id!r} is sent twice")
            inline[p.id] = p
        return inline

    @app.post("/calibrate")
    def calibrate(req: CalibrateRequest) -> dict[str, Any]:
        """Time the references of these problems on this host (cached on its disk), as training does
        before step 1, so that the first batch is not held up by it."""
        problems = list(inline_problems(req.problems).values())
        before = verifier.stats["reference_measurements"]
        limits = verifier.calibrate(problems)
        return {
            "limits": {pid: dataclasses.asdict(lim) for pid, lim in limits.items()},
            "measured": verifier.stats["reference_measurements"] - before,
        }

    @app.post("/score")
    def score_endpoint(req: ScoreRequest) -> dict[str, Any]:
        check_size(len(req.items))
        inline = inline_problems(req.problems)
        items = []
        for i, item in enumerate(req.items):
            problem = inline.get(item.problem_id) or known.get(item.problem_id)
            if problem is None:
                raise HTTPException(
                    422,
                    f"items[{i}]: unknown problem id {item.problem_id!r} (not among the {len(known)} loaded "
                    "at start, nor sent inline in `problems`)",
                )
            check_completion(i, item.completion)
            items.append((problem, item.completion))
        start = time.monotonic()
        outcomes = score(items, [it.problem_id for it in req.items])
        return {"outcomes": [o.to_dict() for o in outcomes], "duration_s": round(time.monotonic() - start, 4)}

    @app.post("/openrlhf")
    def openrlhf(req: OpenRLHFRequest) -> dict[str, Any]:
        check_size(len(req.query))
        try:
            items, unscored = items_of(known, req.query, req.prompts, req.labels, config.max_completion_chars)
        except ProtocolError as e:
            raise HTTPException(422, str(e)) from None
        return reply(score_request(lambda ok: score(ok, [p.id for p, _ in ok]), items, unscored))

    return app
