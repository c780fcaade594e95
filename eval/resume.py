"""Continue an interrupted evaluation (`--resume <run>`, EVAL_RESUME, `make eval resume=<run>`).

An evaluation writes results.jsonl a whole batch at a time, so a kill, a crash or a server that went
away leaves every finished batch on disk. Resuming keeps those batches, drops the rows of any batch that
is not whole, and generates only the rest, with the seeds the first attempt would have used: the result
is the run an uninterrupted evaluation would have written (up to the backend's own nondeterminism).

The recorded settings win, so that the run stays one evaluation: only how to reach the model and how
hard to push it (`TRANSPORT`) may change, for example a server restarted on another port. A
self-repair run (--repair N) resumes the same way: its repair turns of the whole batches are kept, and
its feedback is made with the environment settings it recorded (ENV_FEEDBACK, ...).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.envconf import ConfigError
from rlvr.liveness import process_state, recorded_identity
from rlvr.problems import Problem

from .config import EvalConfig
from .outputs import REPAIRS, RESULTS, SUMMARY, atomic_write

# settings a resumed evaluation takes from the new command line: they do not change what is measured
TRANSPORT = ("base_url", "concurrency", "retries", "request_timeout", "threads", "resume")


@dataclass(frozen=True)
class Resumed:
    """What an interrupted run leaves to its continuation."""

    path: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]  # the whole batches, kept
    done: frozenset[str]  # their problem ids
    repairs: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # their repair turns


def find_run(spec: str, output_dir: str) -> Path:
    """The run directory `spec` names: a directory, or a run name under EVAL_OUTPUT_DIR."""
    path = Path(spec).expanduser()
    if not path.is_dir() and (Path(output_dir) / spec).is_dir():
        path = Path(output_dir) / spec
    if not (path / SUMMARY).is_file():
        raise ConfigError(f"EVAL_RESUME={spec!r}: no {SUMMARY} in {path} (nor under {output_dir})")
    return path


def open_run(cfg: EvalConfig) -> tuple[EvalConfig, Path, dict[str, Any]]:
    """The run to continue and the settings to continue it with (the recorded ones, but TRANSPORT)."""
    path = find_run(cfg.resume or "", cfg.output_dir)
    summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
    status = summary.get("status")
    if status == "complete":
        raise ConfigError(f"EVAL_RESUME={cfg.resume}: {path} is complete; nothing to resume")
    if status == "running" and process_state(recorded_identity(summary)) == "alive":
        raise ConfigError(f"EVAL_RESUME={cfg.resume}: {path} is still being written by a live process")
    recorded = summary.get("settings") or {}
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    values = {k: v for k, v in recorded.items() if k in fields and k not in TRANSPORT}
    for f in dataclasses.fields(EvalConfig):  # a setting newer than the run: the run had its default
        if f.name not in recorded and f.name not in TRANSPORT and f.default is not dataclasses.MISSING:
            values[f.name] = f.default
    if "ks" in values:
        values["ks"] = tuple(values["ks"])
    values.update(output_dir=str(path.parent), run_name=path.name)
    return dataclasses.replace(cfg, **values), path, summary


def check_same_problems(path: Path, summary: dict[str, Any], digest: str) -> None:
    recorded = (summary.get("data") or {}).get("problems_sha256")
    if recorded and recorded != digest:
        raise ConfigError(
            f"{path}: its problems (sha256 {recorded[:12]}) are not the ones loaded now ({digest[:12]}): "
            "the data changed since the run started; start a new evaluation"
        )


def _read_whole_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # torn by the kill
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def whole_batches(path: Path, valid: list[Problem], n: int, batch_size: int) -> Resumed:
    """The rows of the batches that were written whole (each problem of the batch with its n samples);
    results.jsonl is rewritten with just those, so the continuation appends after them. A self-repair
    run writes a batch's repairs.jsonl rows before its results rows, so the repair rows of the whole
    batches are all there: they are kept, and the others dropped, the same way."""
    rows = _read_whole_lines(path / RESULTS)
    per_problem = Counter(r.get("problem_id") for r in rows)
    done: set[str] = set()
    for start in range(0, len(valid), batch_size):
        chunk = valid[start : start + batch_size]
        if all(per_problem[p.id] == n for p in chunk):
            done.update(p.id for p in chunk)
    kept = [r for r in rows if r.get("problem_id") in done]
    atomic_write(path / RESULTS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    repairs: list[dict[str, Any]] = []
    if (path / REPAIRS).exists():
        repairs = [r for r in _read_whole_lines(path / REPAIRS) if r.get("problem_id") in done]
        atomic_write(path / REPAIRS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in repairs))
    summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
    return Resumed(path, summary, kept, frozenset(done), repairs)
