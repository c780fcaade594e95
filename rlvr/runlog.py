"""Run directories and their files (doc/metrics.md documents every field).

Rules: a run directory belongs to one run (a new run never appends to another's files; resuming is
explicit and marked); every line is written whole by one `write` on an O_APPEND descriptor, so a reader
never sees half a line from us, and a torn tail left by a crash is cut before a resumed run appends;
NaN and infinities are written as null; only the main process (rank 0) writes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from .liveness import process_identity

RUN_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (exists already, missing for a resume, ...)."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy/torch scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return clean(value.item())
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed)."""
    return all(os.environ.get(var, "0") in ("", "0") for var in ("RANK", "LOCAL_RANK"))


class JsonlFile:
    """Append-only JSONL file with whole-line writes."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, *records: dict) -> None:
        """Write records as lines with one system call (a batch is all there or not at all)."""
        if not records:
            return
        data = "".join(
            json.dumps(clean(r), ensure_ascii=False, allow_nan=False) + "\n" for r in records
        ).encode()
        view = memoryview(data)
        before = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as e:  # a disk that filled up mid-write: take back the partial line
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            raise OSError(
                e.errno, f"{e.strerror} while appending {len(records)} line(s) to {self.path}"
            ) from e

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def last_records(path: str | Path, tail_bytes: int = 65536) -> list[dict]:
    """The JSON objects on the last lines of a JSONL file (within its last `tail_bytes`); a line cut by
    the window or torn by a crash is skipped. [] when the file is missing."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - tail_bytes))
            lines = fh.read().splitlines()
    except OSError:
        return []
    if size > tail_bytes:
        lines = lines[1:]  # begins mid-line
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line (no trailing newline) left by a crash; return bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        # scan back for the last newline
        pos, chunk = size, 65536
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            k = buf.rfind(b"\n")
            if k >= 0:
                f.truncate(start + k + 1)
                return size - (start + k + 1)
            pos = start
        f.truncate(0)
        return size


def git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RunDir:
    """One run's directory: run.json, metrics.jsonl, batch_metrics.jsonl, rewards/, completions.jsonl."""

    def __init__(self, root: Path, name: str, resume: bool = False, kind: str = "grpo"):
        if not RUN_NAME.match(name):
            raise RunDirError(f"run name {name!r}: use letters, digits, '.', '_' and '-' only")
        self.root = Path(root)
        self.path = self.root / name
        self.name = name
        self.kind = kind
        self.resume = resume
        self.main = is_main_process()
        self._files: dict[str, JsonlFile] = {}
        if self.main:
            if resume and not (self.path / "run.json").exists():
                raise RunDirError(f"cannot resume {self.path}: it has no run.json")
            if not resume and (self.path / "run.json").exists():
                var = kind.upper()  # the variables are GRPO_* or SFT_*
                raise RunDirError(
                    f"{self.path} already holds a run; choose another {var}_RUN_NAME, or resume it with {var}_RESUME={self.path}"
                )
            self.path.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def resolve_resume(root: Path, spec: str, kind: str = "grpo") -> Path:
        """GRPO_RESUME / SFT_RESUME value -> the run directory it names ("latest", a run name or a path)."""
        path = (root / "latest") if spec == "latest" else Path(spec)
        if not path.exists() and (root / spec).exists():
            path = root / spec
        if not path.exists():
            raise RunDirError(f"{kind.upper()}_RESUME={spec!r}: no such run directory (looked in {root})")
        return path.resolve()

    @classmethod
    def open(cls, root: Path, name: str, resume: str | None, kind: str = "grpo") -> RunDir:
        """The run to write: a new one called ``name``, or the existing one ``resume`` names."""
        if resume:
            path = cls.resolve_resume(root, resume, kind=kind)
            return cls(path.parent, path.name, resume=True, kind=kind)
        return cls(root, name, kind=kind)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def file(self, relative: str) -> JsonlFile:
        if relative not in self._files:
            self._files[relative] = JsonlFile(self.path / relative)
        return self._files[relative]

    def write(self, relative: str, *records: dict) -> None:
        if self.main:
            self.file(relative).write(*records)

    # -- run.json -------------------------------------------------------------------------------

    def read_info(self) -> dict:
        p = self.path / "run.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def write_info(self, info: dict) -> None:
        if not self.main:
            return
        tmp = self.path / ".run.json.tmp"
        tmp.write_text(json.dumps(clean(info), indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path / "run.json")

    def update_info(self, **changes: Any) -> dict:
        info = self.read_info()
        info.update(changes)
        self.write_info(info)
        return info

    def start_info(self, **fields: Any) -> None:
        """run.json of a new run: who, when and what (the trainer's `fields`), status running."""
        self.write_info(
            {
                "run_name": self.name,
                "kind": self.kind,
                "status": "running",
                "started_at": now_iso(),
                "finished_at": None,
                "pid": os.getpid(),
                "process": process_identity(),  # rlvr.liveness: readers tell a dead run from a live one
                **fields,
                "resumes": [],
            }
        )

    def mark_resumed(self) -> Path | None:
        """An explicit resume: record it in run.json and as a `resume` event line in metrics.jsonl;
        return the checkpoint to continue from (None: no checkpoint yet, start over in place)."""
        checkpoint = latest_checkpoint(self.checkpoints, report=True)
        from_step = int(checkpoint.name.split("-")[-1]) if checkpoint else 0
        info = self.read_info()
        info.setdefault("resumes", []).append({"at": now_iso(), "from_step": from_step, "pid": os.getpid()})
        info.update(status="running", pid=os.getpid(), process=process_identity(), finished_at=None)
        self.write_info(info)
        self.write("metrics.jsonl", {"event": "resume", "step": from_step, "time": time.time()})
        print(f"resuming {self.path} from {checkpoint or 'the start (no checkpoint yet)'}", flush=True)
        return checkpoint

    def point_latest(self) -> None:
        """Make <root>/latest a symlink to this run (atomically replaced)."""
        if not self.main:
            return
        link = self.root / "latest"
        tmp = self.root / f".latest.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(self.name, tmp)
        os.replace(tmp, link)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be resumed from (None: it is whole). The trainer writes
    trainer_state.json last, so a checkpoint torn by a kill lacks it or holds a cut one."""
    state = checkpoint / "trainer_state.json"
    try:
        data = json.loads(state.read_text())
    except FileNotFoundError:
        return "no trainer_state.json (the save was cut)"
    except (OSError, ValueError):
        return "trainer_state.json is cut or unreadable"
    step = checkpoint.name.rpartition("-")[2]
    if not isinstance(data, dict) or str(data.get("global_step")) != step:
        return f"trainer_state.json is for step {data.get('global_step') if isinstance(data, dict) else '?'}"
    return None


def latest_checkpoint(checkpoints: Path, report: bool = False) -> Path | None:
    """The checkpoint-N directory with the largest N that is whole (checkpoint_problem); with `report`,
    each torn one newer than it is named on stdout, so a resume says what it skipped."""
    if not checkpoints.exists():
        return None
    found = []
    for d in checkpoints.glob("checkpoint-*"):
        m = re.match(r"checkpoint-(\d+)$", d.name)
        if m:
            found.append((int(m.group(1)), d))
    for _, d in sorted(found, reverse=True):
        problem = checkpoint_problem(d)
        if problem is None:
            return d
        if report:
            print(f"skipping {d}: {problem}", flush=True)
    return None
