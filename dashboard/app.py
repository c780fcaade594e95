"""FastAPI application: pages, JSON API, and one Server-Sent-Events stream per page."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.completions_index import STAGES, CompletionsIndex
from dashboard.runs import (
    RunNotFound,
    UnsafeRunName,
    check_name,
    latest_run,
    list_runs,
    read_run_json,
    resolve_run,
    safe_file,
)
from dashboard.series import DEFAULT_POINTS, BatchStore, SeriesStore
from dashboard.tail import JsonlTail, clean_value

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
FILES = {"metrics": "metrics.jsonl", "batch": "batch_metrics.jsonl", "completions": "completions.jsonl"}
KINDS = ("grpo", "sft")
POLL_INTERVAL_S = 0.5
RUNS_CHECK_S = 2.0
SSE_MAX_BYTES = 4 << 20
SSE_MAX_RECORDS = 5000
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGES = {"/": "grpo.html", "/completions": "completions.html", "/sft": "sft.html", "/compare": "compare.html"}


@dataclass
class RunData:
    """Cached, incrementally refreshed state for one run directory."""

    path: str
    metrics: SeriesStore
    batch: BatchStore
    completions: CompletionsIndex
    lock: threading.Lock = field(default_factory=threading.Lock)


class Registry:
    """Per-run caches shared by all requests (bounded LRU by real path)."""

    def __init__(self, dirs: dict[str, str], max_runs: int = 8) -> None:
        self.dirs = dirs
        self.max_runs = max_runs
        self._runs: OrderedDict[str, RunData] = OrderedDict()
        self._lock = threading.Lock()

    def runs_dir(self, kind: str) -> str:
        """The directory holding runs of ``kind`` (404 for an unknown kind)."""
        if kind not in self.dirs:
            raise HTTPException(404, f"unknown kind {kind!r}")
        return self.dirs[kind]

    def resolve(self, kind: str, run: str) -> tuple[str, str]:
        """``(run_name, real_path)``; 400 for unsafe names, 404 for missing runs."""
        runs_dir = self.runs_dir(kind)
        try:
            name = run
            if run == "latest":
                name = latest_run(runs_dir) or ""
                if not name:
                    raise RunNotFound("no runs yet")
            path = resolve_run(runs_dir, name)
        except UnsafeRunName as exc:
            raise HTTPException(400, str(exc)) from None
        except RunNotFound as exc:
            raise HTTPException(404, f"run not found: {exc}") from None
        return name, path

    def get(self, kind: str, run: str) -> tuple[str, RunData]:
        """The cached :class:`RunData` for a run, created on first use."""
        name, path = self.resolve(kind, run)
        with self._lock:
            data = self._runs.get(path)
            if data is None:
                try:
                    data = RunData(
                        path=path,
                        metrics=SeriesStore(safe_file(path, FILES["metrics"])),
                        batch=BatchStore(safe_file(path, FILES["batch"])),
                        completions=CompletionsIndex(safe_file(path, FILES["completions"])),
                    )
                except UnsafeRunName as exc:
                    raise HTTPException(400, str(exc)) from None
                self._runs[path] = data
                while len(self._runs) > self.max_runs:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(path)
        return name, data


class SecurityHeaders:
    """ASGI middleware adding a strict CSP (no inline scripts) and no-store for the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope.get("path", "").startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if is_api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _runs_payload(reg: Registry, kind: str) -> dict[str, Any]:
    runs_dir = reg.runs_dir(kind)
    return {
        "kind": kind,
        "runs": [r.as_dict() for r in list_runs(runs_dir)],
        "latest": latest_run(runs_dir),
        "runs_dir": os.path.abspath(runs_dir),
    }


def _parse_pos(text: str | None) -> dict[str, tuple[int, int]]:
    """Decode ``run/file=ino:offset&...`` (the SSE event id) into positions."""
    out: dict[str, tuple[int, int]] = {}
    if not text:
        return out
    for key, value in parse_qsl(text, keep_blank_values=False):
        ino_s, _, off_s = value.partition(":")
        try:
            out[key] = (int(ino_s), max(0, int(off_s)))
        except ValueError:
            continue
    return out


def _encode_pos(tails: dict[str, JsonlTail]) -> str:
    return urlencode({k: f"{t.ino}:{t.offset}" for k, t in tails.items()})


def _split_csv(text: str | None) -> list[str]:
    return [p for p in (text or "").split(",") if p]


def stream_params(
    request: Request,
    kind: str,
    run: Annotated[list[str] | None, Query()] = None,
    files: str = "metrics",
    pos: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Validate the stream's parameters before the response starts."""
    request.app.state.registry.runs_dir(kind)
    requested = run or ["latest"]
    for r in requested:
        if r != "latest":
            try:
                check_name(r)
            except UnsafeRunName as exc:
                raise HTTPException(400, str(exc)) from None
    return {
        "kind": kind,
        "requested": requested,
        "files": [f for f in _split_csv(files) if f in FILES] or ["metrics"],
        "positions": _parse_pos(last_event_id or pos),
    }


def pipeline_payload(pipeline_dir: str) -> dict[str, Any]:
    """The latest pipeline's state (pipeline.json), or ``{"pipeline": None}`` when there is none."""
    path = os.path.join(pipeline_dir, "latest", "pipeline.json")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return {"pipeline": None}
    phases = [{k: p.get(k) for k in ("name", "status", "runs", "seconds")} for p in state.get("phases", [])]
    return {
        "pipeline": state.get("name"),
        "status": state.get("status"),
        "current": state.get("current"),
        "phases": phases,
        "report": os.path.join(os.path.abspath(pipeline_dir), str(state.get("name")), "report.html"),
    }


def create_app(
    runs_dir: str = "grpo_runs", sft_runs_dir: str = "sft_runs", pipeline_dir: str = "pipeline_runs"
) -> FastAPI:
    """Build the dashboard app reading GRPO runs from ``runs_dir``, SFT runs from ``sft_runs_dir`` and
    the pipeline state from ``pipeline_dir``."""
    app = FastAPI(
        title="ocamler-grpo dashboard", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json"
    )
    reg = Registry({"grpo": runs_dir, "sft": sft_runs_dir})
    app.state.registry = reg
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)
    app.add_middleware(SecurityHeaders)

    def page(filename: str) -> Any:
        async def handler() -> FileResponse:
            return FileResponse(
                os.path.join(STATIC_DIR, filename),
                media_type="text/html",
                headers={"Cache-Control": "no-cache"},
            )

        return handler

    for url, filename in PAGES.items():
        app.add_api_route(url, page(filename), methods=["GET"], include_in_schema=False)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "dirs": {k: os.path.abspath(v) for k, v in reg.dirs.items()}}

    @app.get("/api/pipeline")
    def pipeline() -> dict[str, Any]:
        """The latest pipeline: its status and the phase it runs, so every page can point at it."""
        return pipeline_payload(pipeline_dir)

    @app.get("/api/{kind}/runs")
    def runs(kind: str) -> dict[str, Any]:
        """Runs of one kind, newest first, with the ``latest`` pointer."""
        return _runs_payload(reg, kind)

    @app.get("/api/{kind}/runs/{run}")
    def run_info(kind: str, run: str) -> dict[str, Any]:
        """The run's ``run.json`` plus file health (sizes, corrupt line counts)."""
        name, data = reg.get(kind, run)
        meta = clean_value(read_run_json(data.path))
        files = {}
        for key, store in (("metrics", data.metrics), ("batch", data.batch)):
            if store.ensure_loading():
                store.refresh()
            files[key] = {
                "lines": store.n_records,
                "corrupt": store.corrupt,
                "offset": store.offset,
                "loaded": store.loaded,
            }
        return {"run": name, "meta": meta, "files": files}

    def _series_payload(name: str, store: SeriesStore, keys: list[str] | None, points: int) -> dict[str, Any]:
        out = store.payload(keys, points)
        out["run"] = name
        return out

    @app.get("/api/{kind}/runs/{run}/metrics")
    def metrics(
        kind: str,
        run: str,
        keys: Annotated[str | None, Query(description="comma-separated keys; all when omitted")] = None,
        points: Annotated[int, Query(ge=10, le=20000)] = DEFAULT_POINTS,
    ) -> Response:
        """Downsampled series of ``metrics.jsonl`` and the byte position to stream from."""
        name, data = reg.get(kind, run)
        wanted = _split_csv(keys) or None
        return JSONResponse(_series_payload(name, data.metrics, wanted, points))

    @app.get("/api/{kind}/runs/{run}/batch")
    def batch(
        kind: str,
        run: str,
        points: Annotated[int, Query(ge=10, le=20000)] = DEFAULT_POINTS,
    ) -> Response:
        """Series of ``batch_metrics.jsonl`` plus the latest histogram and error classes."""
        name, data = reg.get(kind, run)
        payload = _series_payload(name, data.batch, None, points)
        payload["stages"] = list(STAGES)
        return JSONResponse(payload)

    def _completions(kind: str, run: str) -> tuple[str, CompletionsIndex]:
        name, data = reg.get(kind, run)
        data.completions.refresh()
        return name, data.completions

    @app.get("/api/{kind}/runs/{run}/completions")
    def completions(
        kind: str,
        run: str,
        stage: Annotated[str | None, Query(description="comma-separated stages")] = None,
        reward_min: float | None = None,
        reward_max: float | None = None,
        problem: str | None = None,
        step: int | None = None,
        step_min: int | None = None,
        step_max: int | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        page: Annotated[int, Query(ge=0)] = 0,
        page_size: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> Response:
        """A page of completion groups (newest first) matching the filters."""
        name, index = _completions(kind, run)
        result = index.query(
            stages=_split_csv(stage) or None,
            reward_min=reward_min,
            reward_max=reward_max,
            problem=problem or None,
            step=step,
            step_min=step_min,
            step_max=step_max,
            q=q or None,
            page=page,
            page_size=page_size,
        )
        result["run"] = name
        result["pos"] = {
            "ino": index.tail.ino if index.tail else 0,
            "offset": index.tail.offset if index.tail else 0,
        }
        return JSONResponse(result)

    @app.get("/api/{kind}/runs/{run}/completions/facets")
    def completion_facets(kind: str, run: str) -> Response:
        """Step range, stage counts and problem ids for the filter controls."""
        name, index = _completions(kind, run)
        out = index.facets()
        out["run"] = name
        out["index"] = index.progress()
        return JSONResponse(out)

    @app.get("/api/{kind}/runs/{run}/tail/{file}")
    def tail(
        kind: str,
        run: str,
        file: str,
        since: Annotated[int, Query(ge=0)] = 0,
        ino: int = 0,
        limit_bytes: Annotated[int, Query(ge=1024, le=64 << 20)] = SSE_MAX_BYTES,
    ) -> Response:
        """Polling fallback: records written after byte ``since`` (``reset`` set if the file restarted)."""
        if file not in FILES:
            raise HTTPException(404, f"unknown file {file!r}")
        name, path = reg.resolve(kind, run)
        try:
            fpath = safe_file(path, FILES[file])
        except UnsafeRunName as exc:
            raise HTTPException(400, str(exc)) from None
        t = JsonlTail(fpath, offset=since, ino=ino)
        res, records = t.poll_records(limit_bytes)
        body: dict[str, Any] = {
            "run": name,
            "file": file,
            "start": res.start,
            "next": res.end,
            "ino": t.ino,
            "reset": res.reset,
            "corrupt": t.corrupt,
        }
        if file == "completions":
            body["new_lines"] = len(records)
        else:
            body["records"] = clean_value(records)
        return JSONResponse(body)

    @app.get("/api/{kind}/stream", response_class=EventSourceResponse)
    async def stream(
        request: Request, params: Annotated[dict[str, Any], Depends(stream_params)]
    ) -> AsyncIterator[ServerSentEvent]:
        """Live updates for one page: new lines of the named files of the named runs.

        Each event's id encodes every stream position as ``run/file=ino:offset``, so a
        reconnecting browser (``Last-Event-ID``) resumes exactly where it stopped.
        Event types: ``hello``, ``lines``, ``reset``, ``runs``; FastAPI adds a
        ``: ping`` comment after 15 s of silence.  ``?pos=`` gives the start positions
        for a fresh connection (same encoding as the id).
        """
        kind = params["kind"]
        runs_dir = reg.runs_dir(kind)
        requested = params["requested"]
        wanted_files = params["files"]
        positions = params["positions"]
        tails: dict[str, JsonlTail] = {}
        resolved: dict[str, str] = {}

        def subscribe() -> None:
            """(Re)attach tails for runs that exist now (a run may appear later)."""
            for r in requested:
                try:
                    name, path = reg.resolve(kind, r)
                except HTTPException:
                    continue
                if resolved.get(r) == name:
                    continue
                resolved[r] = name
                for f in wanted_files:
                    key = f"{name}/{f}"
                    if key in tails:
                        continue
                    try:
                        fpath = safe_file(path, FILES[f])
                    except UnsafeRunName:
                        continue
                    ino, off = positions.get(key, (0, 0))
                    tails[key] = JsonlTail(fpath, offset=off, ino=ino)

        def runs_signature() -> tuple[Any, ...]:
            listing = list_runs(runs_dir)
            return (latest_run(runs_dir), tuple((r.name, r.status) for r in listing))

        def poll_all() -> list[ServerSentEvent]:
            events: list[ServerSentEvent] = []
            for key, t in list(tails.items()):
                name, _, f = key.rpartition("/")
                res, records = t.poll_records(SSE_MAX_BYTES)
                if res.reset:
                    events.append(
                        ServerSentEvent(
                            event="reset",
                            data={"run": name, "file": f, "reason": res.reset},
                            id=_encode_pos(tails),
                        )
                    )
                if not res.lines:
                    continue
                payload: dict[str, Any] = {
                    "run": name,
                    "file": f,
                    "ino": t.ino,
                    "start": res.start,
                    "end": res.end,
                    "corrupt": t.corrupt,
                }
                if f == "completions":
                    payload["new_lines"] = len(records)
                    events.append(ServerSentEvent(event="lines", data=payload, id=_encode_pos(tails)))
                    continue
                for i in range(0, max(1, len(records)), SSE_MAX_RECORDS):
                    chunk = dict(payload)
                    chunk["records"] = clean_value(records[i : i + SSE_MAX_RECORDS])
                    events.append(ServerSentEvent(event="lines", data=chunk, id=_encode_pos(tails)))
            return events

        async def gen() -> AsyncIterator[ServerSentEvent]:
            await anyio.to_thread.run_sync(subscribe)
            sig = await anyio.to_thread.run_sync(runs_signature)
            hello = _runs_payload(reg, kind)
            hello["resolved"] = resolved
            yield ServerSentEvent(event="hello", data=hello, id=_encode_pos(tails), retry=1000)
            last_runs_check = time.monotonic()
            while True:
                if await request.is_disconnected():
                    return
                events = await anyio.to_thread.run_sync(poll_all)
                for ev in events:
                    yield ev
                now = time.monotonic()
                if now - last_runs_check >= RUNS_CHECK_S:
                    last_runs_check = now
                    new_sig = await anyio.to_thread.run_sync(runs_signature)
                    if new_sig != sig:
                        sig = new_sig
                        await anyio.to_thread.run_sync(subscribe)
                        payload = _runs_payload(reg, kind)
                        payload["resolved"] = resolved
                        yield ServerSentEvent(event="runs", data=payload, id=_encode_pos(tails))
                if not events:
                    await asyncio.sleep(POLL_INTERVAL_S)

        async for item in gen():
            yield item

    return app
