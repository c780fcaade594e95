"""The dashboard's JSON API: runs, their series, completions, the polling tail, and the pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from dashboard.completions_index import CALLS_MAX, STAGES, CompletionsIndex
from dashboard.registry import FILES, Registry, registry, runs_payload
from dashboard.runs import UnsafeRunName, read_run_json, safe_file, shown_status
from dashboard.series import DEFAULT_POINTS, SeriesStore
from dashboard.tail import JsonlTail, clean_value
from rlvr.status import run_status

SSE_MAX_BYTES = 4 << 20  # the most a tail request or a stream event reads at once

router = APIRouter()


def split_csv(text: str | None) -> list[str]:
    return [p for p in (text or "").split(",") if p]


def pipeline_payload(pipeline_dir: str) -> dict[str, Any]:
    """The latest pipeline's state (pipeline.json), or ``{"pipeline": None}`` when there is none."""
    path = os.path.join(pipeline_dir, "latest", "pipeline.json")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return {"pipeline": None}
    phases = [{k: p.get(k) for k in ("name", "status", "runs", "seconds")} for p in state.get("phases", [])]
    shown = run_status("pipeline", Path(pipeline_dir) / "latest")  # died / stalled, as make status says
    status = shown.state if shown is not None else state.get("status")
    return {
        "pipeline": state.get("name"),
        "status": status,
        "recorded_status": state.get("status"),
        "current": state.get("current"),
        "phases": phases,
        "report": os.path.join(os.path.abspath(pipeline_dir), str(state.get("name")), "report.html"),
    }


@router.get("/api/health")
def health(reg: Annotated[Registry, Depends(registry)]) -> dict[str, Any]:
    return {"ok": True, "dirs": {k: os.path.abspath(v) for k, v in reg.dirs.items()}}


@router.get("/api/pipeline")
def pipeline(request: Request) -> dict[str, Any]:
    """The latest pipeline: its status and the phase it runs, so every page can point at it."""
    return pipeline_payload(request.app.state.pipeline_dir)


@router.get("/api/{kind}/runs")
def runs(kind: str, reg: Annotated[Registry, Depends(registry)]) -> dict[str, Any]:
    """Runs of one kind, newest first, with the ``latest`` pointer."""
    return runs_payload(reg, kind)


@router.get("/api/{kind}/runs/{run}")
def run_info(kind: str, run: str, reg: Annotated[Registry, Depends(registry)]) -> dict[str, Any]:
    """The run's ``run.json`` plus file health (sizes, corrupt line counts)."""
    name, data = reg.get(kind, run)
    meta = clean_value(read_run_json(data.path))
    if meta:
        meta["recorded_status"] = meta.get("status")
        meta["status"] = shown_status(data.path, meta)  # died / stalled instead of a stale "running"
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


@router.get("/api/{kind}/runs/{run}/metrics")
def metrics(
    kind: str,
    run: str,
    reg: Annotated[Registry, Depends(registry)],
    keys: Annotated[str | None, Query(description="comma-separated keys; all when omitted")] = None,
    points: Annotated[int, Query(ge=10, le=20000)] = DEFAULT_POINTS,
) -> Response:
    """Downsampled series of ``metrics.jsonl`` and the byte position to stream from."""
    name, data = reg.get(kind, run)
    wanted = split_csv(keys) or None
    return JSONResponse(_series_payload(name, data.metrics, wanted, points))


@router.get("/api/{kind}/runs/{run}/batch")
def batch(
    kind: str,
    run: str,
    reg: Annotated[Registry, Depends(registry)],
    points: Annotated[int, Query(ge=10, le=20000)] = DEFAULT_POINTS,
) -> Response:
    """Series of ``batch_metrics.jsonl`` plus the latest histogram and error classes."""
    name, data = reg.get(kind, run)
    payload = _series_payload(name, data.batch, None, points)
    payload["stages"] = list(STAGES)
    return JSONResponse(payload)


def _completions(reg: Registry, kind: str, run: str) -> tuple[str, CompletionsIndex]:
    name, data = reg.get(kind, run)
    data.completions.refresh()
    return name, data.completions


@router.get("/api/{kind}/runs/{run}/completions")
def completions(
    kind: str,
    run: str,
    reg: Annotated[Registry, Depends(registry)],
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
    tool_calls: Annotated[
        int | None, Query(ge=0, le=CALLS_MAX, description="episodes with exactly this many tool calls")
    ] = None,
    tool_calls_min: Annotated[
        int | None, Query(ge=0, le=CALLS_MAX, description="episodes with at least this many tool calls")
    ] = None,
) -> Response:
    """A page of completion groups (newest first) matching the filters.

    Filters (all optional, combined with AND; a group is listed when one of its completions
    matches): ``stage`` (comma-separated), ``reward_min``/``reward_max``, ``problem``, ``step``,
    ``step_min``/``step_max``, ``q`` (text in prompt, completion, error or problem id), and for
    runs with the multi-turn environment ``tool_calls`` (episodes with exactly n tool calls;
    ``tool_calls=0``: episodes that answered without checking) and ``tool_calls_min`` (at least n).
    Single-turn lines have no tool calls field and match neither.  A value that is not an integer
    in 0..32767 is a 422 naming the parameter.
    """
    name, index = _completions(reg, kind, run)
    result = index.query(
        stages=split_csv(stage) or None,
        reward_min=reward_min,
        reward_max=reward_max,
        problem=problem or None,
        step=step,
        step_min=step_min,
        step_max=step_max,
        q=q or None,
        page=page,
        page_size=page_size,
        tool_calls=tool_calls,
        tool_calls_min=tool_calls_min,
    )
    result["run"] = name
    result["pos"] = {
        "ino": index.tail.ino if index.tail else 0,
        "offset": index.tail.offset if index.tail else 0,
    }
    return JSONResponse(result)


@router.get("/api/{kind}/runs/{run}/completions/facets")
def completion_facets(kind: str, run: str, reg: Annotated[Registry, Depends(registry)]) -> Response:
    """Step range, stage counts and problem ids for the filter controls."""
    name, index = _completions(reg, kind, run)
    out = index.facets()
    out["run"] = name
    out["index"] = index.progress()
    return JSONResponse(out)


@router.get("/api/{kind}/runs/{run}/tail/{file}")
def tail(
    kind: str,
    run: str,
    reg: Annotated[Registry, Depends(registry)],
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
