"""Fixtures for the dashboard tests: run directories written on disk and a real uvicorn server."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from dashboard.app import create_app


def write_lines(path: Path, records: list[Any], mode: str = "a") -> None:
    """Append JSON records (or raw strings, written as-is) as lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        for rec in records:
            fh.write(rec if isinstance(rec, str) else json.dumps(rec) + "\n")


def make_run(runs_dir: Path, name: str, meta: dict[str, Any] | None = None, latest: bool = True) -> Path:
    """Create a run directory with a run.json; point ``latest`` at it."""
    run = runs_dir / name
    run.mkdir(parents=True, exist_ok=True)
    base = {
        "run_name": name,
        "kind": "grpo",
        "status": "running",
        "started_at": "2025-01-01T00:00:00+00:00",
        "config": {"max_steps": 200},
    }
    base.update(meta or {})
    (run / "run.json").write_text(json.dumps(base))
    if latest:
        link = runs_dir / "latest"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(name)
    return run


@pytest.fixture(name="write_lines")
def write_lines_fixture() -> Any:
    """The :func:`write_lines` helper."""
    return write_lines


@pytest.fixture(name="make_run")
def make_run_fixture() -> Any:
    """The :func:`make_run` helper."""
    return make_run


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    grpo = tmp_path / "grpo_runs"
    sft = tmp_path / "sft_runs"
    grpo.mkdir()
    sft.mkdir()
    return grpo, sft


@pytest.fixture
def client(dirs: tuple[Path, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(str(dirs[0]), str(dirs[1]), str(dirs[0].parent / "pipeline_runs"))) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real uvicorn server in a background thread."""

    def __init__(self, grpo: Path, sft: Path) -> None:
        self.grpo = grpo
        self.sft = sft
        self.pipelines = grpo.parent / "pipeline_runs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(str(grpo), str(sft), str(self.pipelines)),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One uvicorn server for the session; tests use their own run names under its dirs."""
    root = tmp_path_factory.mktemp("live")
    grpo, sft = root / "grpo_runs", root / "sft_runs"
    grpo.mkdir()
    sft.mkdir()
    srv = LiveServer(grpo, sft).start()
    yield srv
    srv.stop()


@pytest.fixture
def server_factory() -> Any:
    """Start a :class:`LiveServer` on given directories (stopped by the caller)."""
    return lambda grpo, sft: LiveServer(grpo, sft).start()


@pytest.fixture
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(path):
        pytest.skip(f"no chromium binary at {path}: real-browser tests skipped")
    return path
