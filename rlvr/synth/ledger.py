"""What a synth-data run has done, one JSON line per event, flushed as it happens: the teacher's answers
and the decisions made on them. Re-running the same command reads it back and asks the teacher only for
what is missing, so an interrupted run continues where it stopped and nothing is generated twice."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class LedgerMismatch(ValueError):
    """The ledger was written by a run with other settings."""


class Ledger:
    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = path
        self.answers: dict[str, dict[str, Any]] = {}  # request key -> the teacher's answer
        self.decisions: dict[str, dict[str, Any]] = {}  # unit key (a problem, a request) -> the verdict
        if path.exists():
            lines = self._read(path)
            first = lines[0] if lines else {}
            if first.get("header") != header:
                diff = sorted(
                    k
                    for k in {**header, **(first.get("header") or {})}
                    if header.get(k) != (first.get("header") or {}).get(k)
                )
                raise LedgerMismatch(
                    f"{path}: written by a run with other settings ({', '.join(diff)} differ); "
                    "use another --out, or delete the ledger to start over"
                )
            for row in lines[1:]:
                if row["event"] == "answer":
                    self.answers[row["key"]] = row
                elif row["event"] == "decision":
                    self.decisions[row["key"]] = row
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"header": header})
        self.resumed = bool(self.answers or self.decisions)

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        """The records, split on newlines only (an answer may hold U+2028 and the like, which
        str.splitlines would split on). A torn last line, from a run killed mid-write, is cut off."""
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        records, good = [], 0
        for n, line in enumerate(lines):
            if not line.strip():
                good += len(line) + 1
                continue
            try:
                records.append(json.loads(line.decode("utf-8")))
            except (json.JSONDecodeError, UnicodeDecodeError):
                if n >= len(lines) - 2 and not any(x.strip() for x in lines[n + 1 :]):
                    with path.open("r+b") as f:
                        f.truncate(good)  # the torn tail: the next append starts on a clean line
                    break
                raise LedgerMismatch(f"{path}:{n + 1}: not a ledger record; use another --out") from None
            good += len(line) + 1
        return records

    def _append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def answer(self, key: str, **fields: Any) -> dict[str, Any]:
        row = {"event": "answer", "key": key, **fields}
        self._append(row)
        self.answers[key] = row
        return row

    def decide(self, key: str, **fields: Any) -> dict[str, Any]:
        row = {"event": "decision", "key": key, **fields}
        self._append(row)
        self.decisions[key] = row
        return row
