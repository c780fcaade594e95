"""One Server-Sent-Events stream per page: new lines of the named files of the named runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from dashboard.api import SSE_MAX_BYTES, split_csv
from dashboard.registry import FILES, Registry, registry, runs_payload
from dashboard.runs import UnsafeRunName, check_name, latest_run, list_runs, safe_file
from dashboard.tail import JsonlTail, clean_value

POLL_INTERVAL_S = 0.5
RUNS_CHECK_S = 2.0
SSE_MAX_RECORDS = 5000

router = APIRouter()


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
        "files": [f for f in split_csv(files) if f in FILES] or ["metrics"],
        "positions": _parse_pos(last_event_id or pos),
    }


@router.get("/api/{kind}/stream", response_class=EventSourceResponse)
async def stream(
    request: Request,
    params: Annotated[dict[str, Any], Depends(stream_params)],
    reg: Annotated[Registry, Depends(registry)],
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
        hello = runs_payload(reg, kind)
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
                    payload = runs_payload(reg, kind)
                    payload["resolved"] = resolved
                    yield ServerSentEvent(event="runs", data=payload, id=_encode_pos(tails))
            if not events:
                await asyncio.sleep(POLL_INTERVAL_S)

    async for item in gen():
        yield item
