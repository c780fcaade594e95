"""Server-Sent Events against a real uvicorn server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import fastapi.routing
import httpx
import pytest


def events(resp: httpx.Response) -> Iterator[dict]:
    """Parse an SSE byte stream into dicts with event/data/id (comments as {'comment': ...})."""
    cur: dict = {}
    for line in resp.iter_lines():
        if line == "":
            if cur:
                if "data" in cur:
                    cur["data"] = json.loads(cur["data"])
                yield cur
            cur = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            cur[field] = cur[field] + "\n" + value if field in cur else value


def next_event(it: Iterator[dict], kind: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    for ev in it:
        if ev.get("event") == kind or ev.get("comment") == kind:
            return ev
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {kind!r} event within {timeout}s")


def stream(live_server, **params) -> httpx.Response:
    client = httpx.Client(timeout=httpx.Timeout(10.0))
    req = client.build_request(
        "GET", f"{live_server.url}/api/grpo/stream", params=params, headers=params.pop("headers", None) or {}
    )
    return client.send(req, stream=True)


def test_appended_line_arrives_as_lines_event_with_offset_id(live_server, make_run, write_lines) -> None:
    run = make_run(live_server.grpo, "sse-append", latest=False)
    write_lines(run / "metrics.jsonl", [{"step": 1, "loss": 1.0}])
    size = (run / "metrics.jsonl").stat().st_size
    resp = stream(live_server, run="sse-append", files="metrics", pos=f"sse-append/metrics=0:{size}")
    try:
        it = events(resp)
        hello = next_event(it, "hello")
        assert hello["id"].endswith(f"%3A{size}")
        t0 = time.monotonic()
        write_lines(run / "metrics.jsonl", [{"step": 2, "loss": 0.5}])
        ev = next_event(it, "lines")
        assert time.monotonic() - t0 < 2.0
        assert ev["data"]["records"] == [{"step": 2, "loss": 0.5}]
        assert ev["data"]["start"] == size
        new_size = (run / "metrics.jsonl").stat().st_size
        assert ev["id"].endswith(f"%3A{new_size}")
    finally:
        resp.close()


def test_last_event_id_resumes_exactly(live_server, make_run, write_lines) -> None:
    run = make_run(live_server.grpo, "sse-resume", latest=False)
    write_lines(run / "metrics.jsonl", [{"step": 1}, {"step": 2}])
    offset = len(json.dumps({"step": 1})) + 1
    ino = (run / "metrics.jsonl").stat().st_ino
    resp = stream(
        live_server,
        run="sse-resume",
        files="metrics",
        headers={"Last-Event-ID": f"sse-resume/metrics={ino}:{offset}"},
    )
    try:
        ev = next_event(events(resp), "lines")
        assert ev["data"]["records"] == [{"step": 2}]
    finally:
        resp.close()


def test_truncation_sends_reset_event(live_server, make_run, write_lines) -> None:
    run = make_run(live_server.grpo, "sse-trunc", latest=False)
    write_lines(run / "metrics.jsonl", [{"step": s} for s in range(1, 20)])
    resp = stream(live_server, run="sse-trunc", files="metrics")
    try:
        it = events(resp)
        next_event(it, "lines")
        write_lines(run / "metrics.jsonl", [{"step": 1, "loss": 5.0}], mode="w")
        ev = next_event(it, "reset")
        assert ev["data"] == {"run": "sse-trunc", "file": "metrics", "reason": "truncated"}
        assert next_event(it, "lines")["data"]["records"] == [{"step": 1, "loss": 5.0}]
    finally:
        resp.close()


def test_ping_comment_when_idle(live_server, make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    make_run(live_server.grpo, "sse-ping", latest=False)
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.3)
    resp = stream(live_server, run="sse-ping", files="metrics")
    try:
        assert next_event(events(resp), "ping")["comment"] == "ping"
    finally:
        resp.close()


def test_run_appearing_later_is_announced(live_server, make_run, write_lines) -> None:
    resp = stream(live_server, run="sse-late", files="metrics")
    try:
        it = events(resp)
        hello = next_event(it, "hello")
        assert "sse-late" not in [r["name"] for r in hello["data"]["runs"]]
        run = make_run(live_server.grpo, "sse-late", latest=False)
        write_lines(run / "metrics.jsonl", [{"step": 1, "reward": 0.7}])
        assert "sse-late" in [r["name"] for r in next_event(it, "runs")["data"]["runs"]]
        assert next_event(it, "lines")["data"]["records"] == [{"step": 1, "reward": 0.7}]
    finally:
        resp.close()


def test_nan_in_streamed_line_is_sent_as_null(live_server, make_run, write_lines) -> None:
    run: Path = make_run(live_server.grpo, "sse-nan", latest=False)
    write_lines(run / "metrics.jsonl", ['{"step": 1, "loss": NaN}\n', "garbage\n"])
    resp = stream(live_server, run="sse-nan", files="metrics")
    try:
        ev = next_event(events(resp), "lines")
        assert ev["data"]["records"] == [{"step": 1, "loss": None}]
        assert ev["data"]["corrupt"] == 1
    finally:
        resp.close()
