"""`make status`: every run on this machine with its real state, step, reward (or loss) and age.

The state is rlvr.liveness's: a run recorded as running whose process is gone shows as `died`, one that
stopped writing as `stalled`. Reads the run roots the trainers write to (GRPO_OUTPUT_DIR, SFT_OUTPUT_DIR,
PIPELINE_OUTPUT_DIR, EVAL_OUTPUT_DIR); `--all` lists every run, not only the newest 10 of each kind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .liveness import run_state
from .runlog import last_records
from .settings import RUN_ROOTS, run_root

# the file that records a run's status, and the files whose writes show it is alive, by kind
RECORDS = {
    "grpo": ("run.json", ("metrics.jsonl", "batch_metrics.jsonl", "completions.jsonl", "run.json")),
    "sft": ("run.json", ("metrics.jsonl", "run.json")),
    "pipeline": ("pipeline.json", ("pipeline.log", "pipeline.json")),
    "eval": ("summary.json", ("results.jsonl", "summary.json")),
}


@dataclass(frozen=True)
class RunStatus:
    kind: str
    name: str
    state: str
    step: str  # "12/30", a pipeline's phase, or an evaluation's answers so far
    score: str  # the latest reward, loss or mean reward, labelled
    age_s: float | None  # since the run last wrote a file
    path: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def newest_write(run: Path, files: tuple[str, ...]) -> float | None:
    times = []
    for name in files:
        try:
            times.append((run / name).stat().st_mtime)
        except OSError:
            continue
    return max(times) if times else None


def training_progress(run: Path, record: dict[str, Any], kind: str) -> tuple[str, str, list[float]]:
    lines = [r for r in last_records(run / "metrics.jsonl") if "event" not in r]
    steps = [r for r in lines if isinstance(r.get("step"), int)]
    times = [float(r["step_time"]) for r in lines if isinstance(r.get("step_time"), int | float)]
    last = steps[-1] if steps else {}
    total = (record.get("config") or {}).get("max_steps")
    step = (
        f"{last.get('step', 0)}/{total}" if isinstance(total, int) and total > 0 else str(last.get("step", 0))
    )
    key, label = ("reward", "reward") if kind == "grpo" else ("loss", "loss")
    value = next((r[key] for r in reversed(steps) if isinstance(r.get(key), int | float)), None)
    return step, f"{label} {value:.3f}" if value is not None else "", times


def run_status(kind: str, run: Path, now: float | None = None) -> RunStatus | None:
    """One run's status, or None for a directory that holds no run of `kind`."""
    record_file, heartbeat = RECORDS[kind]
    record = read_json(run / record_file)
    if not record:
        return None
    now = time.time() if now is None else now
    written = newest_write(run, heartbeat)
    age = None if written is None else max(0.0, now - written)
    times: list[float] = []
    if kind in ("grpo", "sft"):
        step, score, times = training_progress(run, record, kind)
    elif kind == "pipeline":
        phases = record.get("phases") or []
        done = sum(1 for p in phases if p.get("status") == "done")
        step = f"{record.get('current') or '-'} ({done}/{len(phases)} done)"
        score = ""
    else:
        counts = record.get("counts") or {}
        done, total = counts.get("problems_done"), counts.get("valid_problems")
        step = f"{done}/{total} problems" if isinstance(done, int) and isinstance(total, int) else ""
        mean = record.get("mean_reward")
        score = f"mean reward {mean:.3f}" if isinstance(mean, int | float) else ""
    state = run_state(record, age, times)
    return RunStatus(kind, run.name, state, step, score, age, str(run))


def collect(env: Mapping[str, str], limit: int | None = 10) -> list[RunStatus]:
    """The runs of every kind, newest first within a kind (the newest `limit` of each; None: all)."""
    out: list[RunStatus] = []
    for kind in RUN_ROOTS:
        root = Path(run_root(kind, env))
        if not root.is_dir():
            continue
        found = []
        for entry in root.iterdir():
            if (
                entry.name == "latest"
                or entry.name.startswith(".")
                or not entry.is_dir()
                or entry.is_symlink()
            ):
                continue
            status = run_status(kind, entry)
            if status is not None:
                found.append(status)
        found.sort(key=lambda s: s.age_s if s.age_s is not None else float("inf"))
        out.extend(found if limit is None else found[:limit])
    return out


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlvr.status", description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="every run, not only the newest 10 of each kind")
    ap.add_argument("--json", action="store_true", help="one JSON object per run")
    args = ap.parse_args(argv)
    runs = collect(os.environ, None if args.all else 10)
    if args.json:
        for r in runs:
            print(json.dumps(r.as_dict()))
        return 0
    if not runs:
        print("no runs yet (make rlvr-train, make sft-train, make pipeline or make eval write them)")
        return 0
    print(f"{'kind':<9}{'run':<36}{'state':<11}{'step':<26}{'latest':<20}{'last write'}")
    for r in runs:
        print(
            f"{r.kind:<9}{r.name[:35]:<36}{r.state:<11}{r.step[:25]:<26}{r.score:<20}{age_text(r.age_s)} ago"
        )
    dead = [r for r in runs if r.state in ("died", "stalled")]
    for r in dead:
        how = "its process is gone" if r.state == "died" else "it has written nothing for a long time"
        print(f"{r.kind} run {r.name} is recorded as running but {how}: {r.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
