"""Incremental JSONL tailing by byte offset.

A :class:`JsonlTail` remembers how far into a file it has read (a byte offset just
past the last complete line) and the file's identity (inode).  Each :meth:`poll`
reads only the bytes written since, in binary chunks, and yields whole lines:

* a partial last line (no trailing newline yet) is left for the next poll;
* a file that became smaller than the offset was truncated, and a file with a new
  inode was rotated: the tail resets to offset 0 and reports it;
* a complete line that is not a JSON object is skipped and counted as corrupt;
* ``NaN``/``Infinity`` parse to ``None`` so that every record can be sent to a browser.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

CHUNK_SIZE = 1 << 20


def _reject_constant(_name: str) -> None:
    """``parse_constant`` hook: NaN/Infinity/-Infinity become ``None``."""
    return None


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """Parse one JSONL line into a dict, or return ``None`` when it is not a JSON object."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    return obj


def clean_value(value: Any) -> Any:
    """Replace non-finite floats (anywhere in a JSON value) with ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_value(v) for v in value]
    return value


@dataclass
class FileState:
    """Identity of a file as last seen: inode and size (``ino`` 0 = missing)."""

    ino: int = 0
    size: int = 0


def stat_file(path: str) -> FileState:
    """Return the file's inode and size, or an all-zero state when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return FileState()
    return FileState(ino=st.st_ino, size=st.st_size)


@dataclass
class PollResult:
    """What one :meth:`JsonlTail.poll` found."""

    start: int
    """Byte offset the new lines start at (0 after a reset)."""
    end: int
    """Byte offset just past the last complete line read."""
    lines: list[tuple[int, int, bytes]] = field(default_factory=list)
    """``(offset, length, raw_bytes)`` of each complete non-empty line."""
    reset: str | None = None
    """``"truncated"``, ``"rotated"`` or ``"missing"`` when the tail restarted."""


class JsonlTail:
    """Follow one JSONL file by byte offset; see the module docstring."""

    def __init__(self, path: str, offset: int = 0, ino: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.ino = ino
        self.corrupt = 0

    def check_reset(self) -> tuple[FileState, str | None]:
        """Stat the file and reset the offset if it was truncated, rotated or removed."""
        st = stat_file(self.path)
        reason: str | None = None
        if st.ino == 0:
            if self.offset or self.ino:
                reason = "missing"
        elif self.ino and st.ino != self.ino:
            reason = "rotated"
        elif st.size < self.offset:
            reason = "truncated"
        elif self.offset and not _newline_before(self.path, self.offset):
            # The offset no longer sits on a line boundary: the file was rewritten.
            reason = "truncated"
        if reason is not None:
            self.offset = 0
            self.corrupt = 0
        self.ino = st.ino
        return st, reason

    def poll(self, max_bytes: int | None = None) -> PollResult:
        """Read complete lines written since the last poll (at most ~``max_bytes``)."""
        st, reason = self.check_reset()
        result = PollResult(start=self.offset, end=self.offset, reset=reason)
        if st.ino == 0 or st.size <= self.offset:
            return result
        limit = st.size if max_bytes is None else min(st.size, self.offset + max_bytes)
        result.lines, result.end = read_lines(self.path, self.offset, limit)
        if result.end == self.offset and max_bytes is not None and limit < st.size:
            # One line longer than max_bytes: read up to the end of that line.
            result.lines, result.end = read_lines(self.path, self.offset, st.size)
        self.offset = result.end
        return result

    def poll_records(self, max_bytes: int | None = None) -> tuple[PollResult, list[dict[str, Any]]]:
        """Like :meth:`poll` but also parse the lines; corrupt ones are counted in ``corrupt``."""
        res = self.poll(max_bytes)
        records: list[dict[str, Any]] = []
        for _off, _len, raw in res.lines:
            obj = parse_line(raw)
            if obj is None:
                self.corrupt += 1
            else:
                records.append(obj)
        return res, records


def _newline_before(path: str, offset: int) -> bool:
    """True when the byte just before ``offset`` is a newline (a line boundary)."""
    if offset <= 0:
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(offset - 1)
            return fh.read(1) == b"\n"
    except OSError:
        return False


def read_lines(
    path: str, start: int, end: int, chunk_size: int = CHUNK_SIZE
) -> tuple[list[tuple[int, int, bytes]], int]:
    """Complete lines in ``[start, end)`` and the offset just past the last newline.

    Each line is ``(offset, length_including_newline, raw)``; blank lines are consumed
    but not returned.  Bytes after the last newline (a partial line) are left unread.
    """
    try:
        with open(path, "rb") as fh:
            return _read_lines(fh, start, end, chunk_size)
    except OSError:
        return [], start


def _read_lines(fh: Any, start: int, end: int, chunk_size: int) -> tuple[list[tuple[int, int, bytes]], int]:
    lines: list[tuple[int, int, bytes]] = []
    consumed = start
    fh.seek(start)
    pos = start
    carry = b""
    while pos < end:
        data = fh.read(min(chunk_size, end - pos))
        if not data:
            break
        pos += len(data)
        buf = carry + data if carry else data
        base = pos - len(buf)
        last_nl = buf.rfind(b"\n")
        if last_nl < 0:
            carry = buf
            continue
        i = 0
        for piece in buf[:last_nl].split(b"\n"):
            n = len(piece) + 1
            if piece.strip():
                lines.append((base + i, n, piece))
            i += n
        consumed = base + last_nl + 1
        carry = buf[last_nl + 1 :]
    return lines, consumed
