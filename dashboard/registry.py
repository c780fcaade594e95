"""The runs a dashboard serves: per-run caches of parsed files, shared by every request."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request

from dashboard.completions_index import CompletionsIndex
from dashboard.runs import RunNotFound, UnsafeRunName, latest_run, list_runs, resolve_run, safe_file
from dashboard.series import BatchStore, SeriesStore

FILES = {"metrics": "metrics.jsonl", "batch": "batch_metrics.jsonl", "completions": "completions.jsonl"}
KINDS = ("grpo", "sft")


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


def registry(request: Request) -> Registry:
    """The app's Registry (a FastAPI dependency)."""
    return request.app.state.registry


def runs_payload(reg: Registry, kind: str) -> dict[str, Any]:
    runs_dir = reg.runs_dir(kind)
    return {
        "kind": kind,
        "runs": [r.as_dict() for r in list_runs(runs_dir)],
        "latest": latest_run(runs_dir),
        "runs_dir": os.path.abspath(runs_dir),
    }
