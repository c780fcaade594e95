"""Run discovery and safe path resolution inside a runs directory.

A runs directory holds one sub-directory per run plus an optional ``latest`` entry
(a symlink to the newest run or a text file holding its name).  Every run name that
comes from a request goes through :func:`resolve_run`, which refuses anything that
could leave the runs directory: path separators, ``.``/``..``, absolute paths, and
symlinks whose target lies outside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rlvr.liveness import run_state
from rlvr.runlog import last_records

RUN_FILES = ("run.json", "metrics.jsonl", "batch_metrics.jsonl", "completions.jsonl")
LATEST = "latest"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=,-]{0,199}$")


class RunNotFound(LookupError):
    """The run does not exist (yet)."""


class UnsafeRunName(ValueError):
    """The requested run name could escape the runs directory."""


def _within(root: str, path: str) -> bool:
    """True when ``path`` (already real) is ``root`` or lies below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_name(name: str) -> str:
    """Validate a run name from a request and return it, or raise :class:`UnsafeRunName`."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.isabs(name)
        or not _NAME_RE.match(name)
    ):
        raise UnsafeRunName(f"invalid run name: {name!r}")
    return name


def read_latest(runs_dir: str) -> str | None:
    """Name of the run that ``<runs_dir>/latest`` designates, if it is valid."""
    path = os.path.join(runs_dir, LATEST)
    target: str | None = None
    if os.path.islink(path):
        target = os.path.basename(os.path.normpath(os.readlink(path)))
    elif os.path.isfile(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                target = fh.read(512).strip()
        except OSError:
            return None
        target = os.path.basename(os.path.normpath(target)) if target else None
    if not target or target == LATEST:
        return None
    try:
        resolve_run(runs_dir, target)
    except (RunNotFound, UnsafeRunName):
        return None
    return target


def resolve_run(runs_dir: str, name: str) -> str:
    """Real path of run ``name`` inside ``runs_dir``.

    ``latest`` resolves to the run the latest pointer names.  Raises
    :class:`UnsafeRunName` for names or symlinks that leave the directory and
    :class:`RunNotFound` when no such run directory exists.
    """
    if name == LATEST:
        latest = read_latest(runs_dir) or newest_run(runs_dir)
        if latest is None:
            raise RunNotFound("no runs yet")
        name = latest
    check_name(name)
    root = os.path.realpath(runs_dir)
    candidate = os.path.join(root, name)
    real = os.path.realpath(candidate)
    if not _within(root, real) or real == root:
        raise UnsafeRunName(f"run {name!r} points outside the runs directory")
    if not os.path.isdir(real):
        raise RunNotFound(name)
    return real


def safe_file(run_dir: str, rel: str) -> str:
    """Path of a file inside a resolved run directory; refuses symlinks leading outside."""
    path = os.path.join(run_dir, rel)
    if os.path.lexists(path):
        real = os.path.realpath(path)
        if not _within(os.path.realpath(run_dir), real):
            raise UnsafeRunName(f"{rel!r} points outside the run directory")
    return path


def read_run_json(run_dir: str) -> dict[str, Any]:
    """The run's ``run.json`` as a dict (empty when missing or unreadable)."""
    try:
        path = safe_file(run_dir, "run.json")
        with open(path, "rb") as fh:
            data = json.loads(fh.read(4 << 20) or b"{}", parse_constant=lambda _c: None)
    except (OSError, ValueError, UnsafeRunName):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class RunInfo:
    """Summary of one run for the run pickers."""

    name: str
    status: str | None  # what to show: the recorded status, or died / stalled for a run that lies
    kind: str | None
    started_at: str | None
    finished_at: str | None
    model: str | None
    mtime: float
    recorded_status: str | None = None  # run.json's own status

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "status": self.status,
            "kind": self.kind,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "model": self.model,
            "mtime": self.mtime,
            "recorded_status": self.recorded_status,
        }


def _run_mtime(path: str) -> float:
    best = 0.0
    for fname in RUN_FILES:
        with contextlib.suppress(OSError):
            best = max(best, os.stat(os.path.join(path, fname)).st_mtime)
    if not best:
        try:
            best = os.stat(path).st_mtime
        except OSError:
            best = 0.0
    return best


def recent_step_times(run_dir: str) -> list[float]:
    """The step_time values of the last lines of the run's metrics.jsonl (what a step takes)."""
    try:
        records = last_records(safe_file(run_dir, "metrics.jsonl"))
    except UnsafeRunName:
        return []
    return [float(r["step_time"]) for r in records if isinstance(r.get("step_time"), int | float)]


def shown_status(run_dir: str, meta: dict[str, Any], now: float | None = None) -> str:
    """The status to show for a run (rlvr.liveness.run_state): a run recorded as running whose process
    is gone is `died`, one that stopped writing is `stalled`."""
    if meta.get("status") != "running":
        return run_state(meta, None)
    idle = (time.time() if now is None else now) - _run_mtime(run_dir)
    return run_state(meta, idle, recent_step_times(run_dir))


def list_runs(runs_dir: str) -> list[RunInfo]:
    """Runs in ``runs_dir``, newest first (by ``started_at``, then file times)."""
    try:
        entries = os.listdir(runs_dir)
    except OSError:
        return []
    out: list[RunInfo] = []
    for name in entries:
        if name == LATEST or name.startswith("."):
            continue
        try:
            path = resolve_run(runs_dir, name)
        except (RunNotFound, UnsafeRunName):
            continue
        if not any(os.path.exists(os.path.join(path, f)) for f in RUN_FILES):
            continue
        meta = read_run_json(path)

        def _s(key: str, meta: dict[str, Any] = meta) -> str | None:
            v = meta.get(key)
            return v if isinstance(v, str) else None

        out.append(
            RunInfo(
                name=name,
                status=shown_status(path, meta) if meta else None,
                recorded_status=_s("status"),
                kind=_s("kind"),
                started_at=_s("started_at"),
                finished_at=_s("finished_at"),
                model=_s("model"),
                mtime=_run_mtime(path),
            )
        )

    def _key(r: RunInfo) -> tuple[str, float, str]:
        when = r.started_at or datetime.fromtimestamp(r.mtime, tz=timezone.utc).isoformat()
        return (when, r.mtime, r.name)

    out.sort(key=_key, reverse=True)
    return out


def newest_run(runs_dir: str) -> str | None:
    """Name of the newest run when there is no ``latest`` pointer."""
    runs = list_runs(runs_dir)
    return runs[0].name if runs else None


def latest_run(runs_dir: str) -> str | None:
    """The ``latest`` pointer's run, else the newest run, else ``None``."""
    return read_latest(runs_dir) or newest_run(runs_dir)
