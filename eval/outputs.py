"""An evaluation's directory, `eval_runs/<model-tag>_<time>/`: results.jsonl (one row per sample,
appended as samples are scored), repairs.jsonl (self-repair runs only: one row per repair turn,
eval/repair.py), summary.json (rewritten atomically after every batch, `status` tells whether the run
finished) and report.html. Also reading a run back, for reports and comparisons.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.runlog import JsonlFile, clean

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"
REPAIRS = "repairs.jsonl"


class RunNotFound(FileNotFoundError):
    """A named eval run that does not exist or has no results."""


def model_tag(spec: str | None) -> str:
    """A short, file-name-safe tag for a model spec ("bundled", a path, an adapter dir or a hub id)."""
    spec = (spec or "model").rstrip("/")
    parts = [p for p in spec.split("/") if p]
    name = parts[-1] if parts else "model"
    if name in ("final", "adapter", "merged") or name.startswith("checkpoint-"):
        # grpo_runs/<run>/checkpoints/checkpoint-20 -> <run>-checkpoint-20
        parent = next((p for p in reversed(parts[:-1]) if p != "checkpoints"), None)
        name = f"{parent}-{name}" if parent else name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:60] or "model"


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(clean(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


class EvalRunDir:
    """A new, exclusively created run directory and its files."""

    def __init__(self, path: Path):
        self.path = path
        self.results = JsonlFile(path / RESULTS)
        self._repairs: JsonlFile | None = None  # repairs.jsonl, opened on the first repair row

    @staticmethod
    def create(root: str | Path, tag: str, name: str | None = None) -> EvalRunDir:
        """`root/<name>` if given, else `root/<tag>_<YYYYmmdd-HHMMSS>` (with -2, -3 ... if taken)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        base = name or f"{tag}_{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        for i in range(1, 1000):
            path = root / (base if i == 1 else f"{base}-{i}")
            try:
                path.mkdir()
            except FileExistsError:
                if name:
                    raise FileExistsError(
                        f"{path} already exists: choose another run name (EVAL_RUN_NAME)"
                    ) from None
                continue
            return EvalRunDir(path)
        raise FileExistsError(f"no free run directory name under {root} for {base}")

    def append(self, rows: list[dict[str, Any]]) -> None:
        self.results.write(*rows)

    def append_repairs(self, rows: list[dict[str, Any]]) -> None:
        """repairs.jsonl: the self-repair turns (eval/repair.py)."""
        if self._repairs is None:
            self._repairs = JsonlFile(self.path / REPAIRS)
        self._repairs.write(*rows)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / SUMMARY, summary)

    def write_report(self, html: str) -> None:
        atomic_write(self.path / REPORT, html)

    def close(self) -> None:
        self.results.close()
        if self._repairs is not None:
            self._repairs.close()


@dataclass
class LoadedRun:
    """A run read back: its directory, summary.json (may be partial), results rows and repair rows."""

    path: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    repairs: list[dict[str, Any]] = field(default_factory=list)  # repairs.jsonl (self-repair runs)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def problem_meta(self) -> dict[str, dict[str, Any]]:
        return {p["id"]: p for p in self.summary.get("problems", [])}


def resolve_run(spec: str, root: str | Path = "eval_runs") -> Path:
    """A run given as a directory, a results.jsonl/summary.json inside one, or a name under `root`."""
    path = Path(spec).expanduser()
    if path.is_file():
        path = path.parent
    if not path.exists() and (Path(root) / spec).exists():
        path = Path(root) / spec
    if not path.is_dir():
        raise RunNotFound(f"eval run {spec!r}: no such directory (nor {Path(root) / spec})")
    if not (path / RESULTS).exists():
        raise RunNotFound(f"{path}: not an eval run (no {RESULTS})")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file written by JsonlFile (a torn last line from a crash is ignored)."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break  # a line being written, or torn by a crash
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    return rows


def load_run(spec: str | Path, root: str | Path = "eval_runs") -> LoadedRun:
    """Read a run's summary.json, results.jsonl and, for a self-repair run, repairs.jsonl."""
    path = resolve_run(str(spec), root)
    summary_path = path / SUMMARY
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    repairs = read_rows(path / REPAIRS) if (path / REPAIRS).exists() else []
    return LoadedRun(path=path, summary=summary, rows=read_rows(path / RESULTS), repairs=repairs)


__all__ = [
    "REPAIRS",
    "REPORT",
    "RESULTS",
    "SUMMARY",
    "EvalRunDir",
    "LoadedRun",
    "RunNotFound",
    "load_run",
    "model_tag",
    "read_rows",
    "resolve_run",
    "write_json",
]
