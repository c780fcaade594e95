"""An index of ``completions.jsonl``: one compact row per line, grouped by (step, problem).

Each row holds the line's byte offset and length plus the few fields the browser
filters on (step, problem id, group index, reward, stage, and for a multi-turn episode its number
of tool calls, -1 for a single-turn line).  Text stays on disk:
a page of groups is served by reading just its lines with ``pread``.

The index is built *backwards* from the end of the file: the newest chunk by a
background thread, so the newest steps are browsable within milliseconds even
for a file with a million lines, and the older lines behind them by a parse
process (:mod:`dashboard.offload`), so that the work does not slow requests
down by holding the GIL; lines appended later
are indexed forwards by a :class:`~dashboard.tail.JsonlTail`.  Fields are pulled
out of each line with a regular expression (no full JSON parse); a line where
that fails falls back to ``json.loads``, and a line that is not JSON is counted
as corrupt.

An episode's line is the trap: its ``conversation`` holds the model's own tool calls,
``"tool_calls": [{"name": "check", "arguments": {...}}]``, whose arguments the model writes
and may fill with any key (``"tool_calls": 99``, ``"stage": "pass"``).  So on a line with a
``"conversation": [`` key (which cannot occur inside a JSON string: its quotes would be
escaped) only the bytes before it are scanned, where every field is a top-level scalar, as
``rlvr.grpo.reward_log`` writes them; a line where a field comes after the conversation (not
our writer's order) is parsed in full, so the index never reads a nested key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import mmap
import re
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dashboard.offload import Offloaded, OffloadError, OffloadStopped
from dashboard.tail import JsonlTail, clean_value, parse_line, stat_file
from rlvr.verifier.scoring import STAGES

log = logging.getLogger(__name__)

UNKNOWN_STAGE = "unknown"
BACK_CHUNK = 4 << 20
SEARCH_SOFT_S = 0.3
SEARCH_HARD_S = 2.0
_FIELD_RE = re.compile(
    rb'"(step|problem_id|group_index|reward|stage|tool_calls)"\s*:\s*'
    rb'("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|null|NaN|-?Infinity|true|false)'
)
_HEAD = 320
_TAIL = 900
TEXT_FIELDS = ("prompt", "completion", "error", "problem_id")
# every line has these; `tool_calls` only episodes do (rlvr.grpo.reward_log)
_BASE = {b"step", b"problem_id", b"group_index", b"reward", b"stage"}
_EPISODE = _BASE | {b"tool_calls"}
# the top-level conversation key; inside a JSON string its closing quote would be escaped
_CONVERSATION = b'"conversation"'
_AFTER_KEY = re.compile(rb"\s*:\s*\[")
CALLS_MAX = 32767  # tool calls are kept as int16 (2 bytes a row); more count as this many


def _extract(raw: bytes) -> dict[bytes, bytes] | None:
    """Pull the indexed fields out of a raw line; ``None`` if it does not look like JSON."""
    if not raw.startswith(b"{"):
        raw = raw.strip()
        if not raw.startswith(b"{"):
            return None
    conv = _conversation_at(raw)
    if conv >= 0:
        # an episode: read only what precedes the conversation (see the module docstring)
        found = _scan(raw, conv)
        if not found.keys() >= _EPISODE:
            return {}  # a field after the conversation (or none): json.loads, never a nested key
    elif len(raw) <= _HEAD + _TAIL:
        found = dict(_FIELD_RE.findall(raw))
    else:
        found = dict(_FIELD_RE.findall(raw, 0, _HEAD))
        if not found.keys() >= _BASE:
            found.update((k, v) for k, v in _FIELD_RE.findall(raw, len(raw) - _TAIL) if k not in found)
        if not found.keys() >= _BASE:
            found = dict(_FIELD_RE.findall(raw))
    if not raw.rstrip().endswith(b"}"):
        return None
    return found


def _conversation_at(raw: bytes) -> int:
    """Offset of the ``"conversation": [`` key in a line, or -1 (a plain ``find``: cheap on every line)."""
    i = raw.find(_CONVERSATION)
    while i >= 0:
        if _AFTER_KEY.match(raw, i + len(_CONVERSATION)):
            return i
        i = raw.find(_CONVERSATION, i + 1)  # the string "conversation" as a value, not the key
    return -1


def _scan(raw: bytes, end: int) -> dict[bytes, bytes]:
    """The indexed fields in ``raw[:end]``, a part holding only top-level scalars (first match wins).

    The head and the tail of that part first, where the fields sit around the prompt and
    completion; the whole of it only when they lack one.
    """
    found: dict[bytes, bytes] = {}
    if end <= _HEAD + _TAIL:
        spans = [(0, end)]
    else:
        spans = [(0, _HEAD), (end - _TAIL, end), (0, end)]
    for lo, hi in spans:
        for k, v in _FIELD_RE.findall(raw, lo, hi):
            found.setdefault(k, v)
        if found.keys() >= _EPISODE:
            break
    return found


def _json_scalar(v: bytes | None) -> Any:
    """Decode one JSON scalar cheaply (plain strings and numbers without ``json.loads``)."""
    if v is None:
        return None
    first = v[:1]
    if first == b'"':
        if b"\\" not in v:
            return v[1:-1].decode("utf-8", "replace")
    elif first.isdigit() or first == b"-":
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return None
    elif v == b"null":
        return None
    try:
        return json.loads(v, parse_constant=lambda _c: None)
    except ValueError:
        return None


@dataclass
class Rows:
    """Growable column arrays for index rows."""

    offset: array = field(default_factory=lambda: array("q"))
    length: array = field(default_factory=lambda: array("q"))
    step: array = field(default_factory=lambda: array("q"))
    problem: array = field(default_factory=lambda: array("l"))
    gidx: array = field(default_factory=lambda: array("l"))
    reward: array = field(default_factory=lambda: array("d"))
    stage: array = field(default_factory=lambda: array("b"))
    calls: array = field(default_factory=lambda: array("h"))  # tool calls of an episode; -1: single-turn

    def __len__(self) -> int:
        return len(self.offset)


class Codes:
    """Small integer codes for problem ids and stage names (the index stores codes)."""

    MAX_STAGES = 120

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.problem_codes: dict[str, int] = {}
        self.stage_names: list[str] = [*list(STAGES), UNKNOWN_STAGE]
        self.stage_codes: dict[str, int] = {s: i for i, s in enumerate(self.stage_names)}

    def problem(self, pid: Any) -> int:
        """The code of a problem id (``None`` counts as ``""``), assigned on first sight."""
        name = "" if pid is None else str(pid)
        code = self.problem_codes.get(name)
        if code is None:
            code = self.problem_codes[name] = len(self.problems)
            self.problems.append(name)
        return code

    def stage(self, stage: Any) -> int:
        """The code of a stage name; past ``MAX_STAGES`` names, new ones count as unknown."""
        name = stage if isinstance(stage, str) and stage else UNKNOWN_STAGE
        code = self.stage_codes.get(name)
        if code is None:
            if len(self.stage_names) >= self.MAX_STAGES:
                return self.stage_codes[UNKNOWN_STAGE]
            code = self.stage_codes[name] = len(self.stage_names)
            self.stage_names.append(name)
        return code


def index_line(rows: Rows, codes: Codes, off: int, length: int, raw: bytes) -> bool:
    """Append the row of one line; ``False`` (nothing appended) when it is not a JSON object."""
    found = _extract(raw)
    if found is None or b"step" not in found:
        obj = parse_line(raw)
        if obj is None:
            return False
        step, pid, gi, rew, stage, calls = (
            obj.get("step"),
            obj.get("problem_id"),
            obj.get("group_index"),
            obj.get("reward"),
            obj.get("stage"),
            obj.get("tool_calls"),
        )
    else:
        step = _json_scalar(found.get(b"step"))
        pid = _json_scalar(found.get(b"problem_id"))
        gi = _json_scalar(found.get(b"group_index"))
        rew = _json_scalar(found.get(b"reward"))
        stage = _json_scalar(found.get(b"stage"))
        calls = _json_scalar(found.get(b"tool_calls"))
    rows.offset.append(off)
    rows.length.append(length)
    rows.step.append(
        int(step)
        if isinstance(step, (int, float)) and not isinstance(step, bool) and math.isfinite(step)
        else -1
    )
    rows.problem.append(codes.problem(pid))
    rows.gidx.append(int(gi) if isinstance(gi, int) and not isinstance(gi, bool) else -1)
    rows.reward.append(
        float(rew) if isinstance(rew, (int, float)) and not isinstance(rew, bool) else math.nan
    )
    rows.stage.append(codes.stage(stage))
    rows.calls.append(
        min(calls, CALLS_MAX) if isinstance(calls, int) and not isinstance(calls, bool) and calls >= 0 else -1
    )
    return True


@dataclass
class BackChunk:
    """Rows of one chunk indexed by :func:`scan_back`, coded with the scan's own :class:`Codes`."""

    base: int
    """Offset of the chunk's first line: everything from here to the previous chunk is indexed."""
    rows: Rows
    """Newest line first."""
    problems: list[str]
    """Problem ids first seen in this chunk (their codes follow the earlier chunks' ids)."""
    stages: list[str]
    """Stage names first seen in this chunk, after the fixed ones."""
    corrupt: int


def scan_back(path: str, start: int, end: int, chunk_bytes: int) -> Iterator[BackChunk]:
    """Index the lines of ``[start, end)`` from the end backwards, about ``chunk_bytes`` at a time.

    ``start`` is 0 or a line start, ``end`` a line end.  Runs in a parse process
    (:mod:`dashboard.offload`) or in a thread; it touches no shared state.
    """
    codes = Codes()
    sent_problems, sent_stages = 0, len(codes.stage_names)
    with open(path, "rb") as fh:
        pos = end
        carry = b""
        while pos > start:
            lo = max(start, pos - chunk_bytes)
            fh.seek(lo)
            data = fh.read(pos - lo) + carry
            if lo > start:
                nl = data.find(b"\n")
                if nl < 0:
                    carry = data
                    pos = lo
                    continue
                carry = data[: nl + 1]
                body = data[nl + 1 :]
                base = lo + nl + 1
            else:
                carry = b""
                body = data
                base = lo
            pieces = body.split(b"\n")
            if pieces and pieces[-1] == b"":
                pieces.pop()
            offsets = []
            o = base
            for p in pieces:
                offsets.append(o)
                o += len(p) + 1
            rows = Rows()
            corrupt = 0
            for off, p in zip(reversed(offsets), reversed(pieces)):
                if p.strip() and not index_line(rows, codes, off, len(p) + 1, p):
                    corrupt += 1
            yield BackChunk(
                base=base,
                rows=rows,
                problems=codes.problems[sent_problems:],
                stages=codes.stage_names[sent_stages:],
                corrupt=corrupt,
            )
            sent_problems, sent_stages = len(codes.problems), len(codes.stage_names)
            pos = lo


@dataclass
class Snapshot:
    """Numpy view of the index at one version, in file order."""

    version: int
    offset: np.ndarray
    length: np.ndarray
    step: np.ndarray
    problem: np.ndarray
    gidx: np.ndarray
    reward: np.ndarray
    stage: np.ndarray
    calls: np.ndarray
    key: np.ndarray
    complete: bool
    partial_step: int | None
    _order: np.ndarray | None = None
    _sorted: np.ndarray | None = None

    def group_rows(self, k: int) -> np.ndarray:
        """Row indices of group ``k`` in file order."""
        if self._order is None or self._sorted is None:
            self._order = np.argsort(self.key, kind="stable")
            self._sorted = self.key[self._order]
        sk = self._sorted
        return self._order[np.searchsorted(sk, k, "left") : np.searchsorted(sk, k, "right")]


class CompletionsIndex:
    """Index of one ``completions.jsonl`` file; see the module docstring."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._search_cache: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._reset_state()

    # ----------------------------------------------------------------- building
    def _reset_state(self) -> None:
        self.generation = getattr(self, "generation", 0) + 1
        self.version = 0
        self.back = Rows()  # newest first, covers [back_lo, boundary)
        self.fwd = Rows()  # file order, covers [boundary, tail.offset)
        self.codes = Codes()
        self.boundary = 0
        self.back_lo = 0
        self.back_done = True
        self.tail: JsonlTail | None = None
        self.corrupt = 0
        self.resets = getattr(self, "resets", 0)
        self._snap: Snapshot | None = None
        self._first_chunk = threading.Event()
        self._search_cache = OrderedDict()

    def ensure_started(self, wait_s: float = 5.0) -> None:
        """Start indexing on first use; wait until the newest chunk is indexed."""
        with self.lock:
            if self.tail is None:
                self._start()
            first = self._first_chunk
        first.wait(wait_s)

    def _start(self) -> None:
        st = stat_file(self.path)
        boundary = 0
        if st.ino and st.size:
            boundary = _last_newline_end(self.path, st.size)
        self.boundary = boundary
        self.back_lo = boundary
        self.tail = JsonlTail(self.path, offset=boundary, ino=st.ino)
        self.back_done = boundary == 0
        if self.back_done:
            self._first_chunk.set()
            return
        gen = self.generation
        self._thread = threading.Thread(
            target=self._build_back, args=(gen,), name="completions-index", daemon=True
        )
        self._thread.start()

    def _build_back(self, gen: int) -> None:
        """Index ``[0, boundary)`` from the end backwards.

        The newest chunk is indexed in this thread, so the first page can be served
        at once; the rest of the file is indexed by a parse process whose chunks are
        merged here as they arrive (falling back to this thread if it dies).
        """
        with contextlib.suppress(OSError):
            first = next(scan_back(self.path, 0, self.boundary, BACK_CHUNK), None)
            if first is not None and self._merge_back(gen, first, [], []) and first.base > 0:
                job = Offloaded(scan_back, self.path, 0, first.base, BACK_CHUNK)
                try:
                    self._merge_all(gen, job)
                except OffloadStopped:
                    return
                except OffloadError as exc:
                    log.warning("dashboard: %s; indexing %s in a thread instead", exc, self.path)
                    with self.lock:
                        lo = self.back_lo if gen == self.generation else 0
                    if lo > 0:
                        self._merge_all(gen, scan_back(self.path, 0, lo, BACK_CHUNK))
        with self.lock:
            if gen == self.generation:
                self.back_done = True
                self._first_chunk.set()

    def _merge_all(self, gen: int, chunks: Iterable[BackChunk]) -> None:
        """Merge the chunks of one backward scan, in order; stop if the index was reset."""
        problem_map: list[int] = []
        stage_map: list[int] = []
        for item in chunks:
            if not self._merge_back(gen, item, problem_map, stage_map):
                break

    def _merge_back(self, gen: int, item: BackChunk, problem_map: list[int], stage_map: list[int]) -> bool:
        """Append a scanned chunk (older than everything indexed) to ``back``.

        ``problem_map``/``stage_map`` translate the scan's codes into this index's
        and grow with each chunk.  Returns False when the index was reset meanwhile.
        """
        with self.lock:
            if gen != self.generation:
                return False
            problem_map.extend(self.codes.problem(n) for n in item.problems)
            stage_map.extend(self.codes.stage(n) for n in item.stages)
            rows, b = item.rows, self.back
            for name in ("offset", "length", "step", "gidx", "reward", "calls"):
                getattr(b, name).extend(getattr(rows, name))
            if len(rows):
                fixed = len(STAGES) + 1
                smap = np.array([*range(fixed), *stage_map], dtype=np.int8)
                b.problem.frombytes(
                    np.array(problem_map, dtype=np.dtype("l"))[
                        np.frombuffer(rows.problem, np.dtype("l"))
                    ].tobytes()
                )
                b.stage.frombytes(smap[np.frombuffer(rows.stage, np.int8)].tobytes())
            self.corrupt += item.corrupt
            self.back_lo = item.base
            self.version += 1
            if item.base == 0:
                self.back_done = True
            self._first_chunk.set()
            return True

    def refresh(self) -> str | None:
        """Index lines appended since the last refresh; returns a reset reason if the file restarted."""
        self.ensure_started()
        with self.lock:
            assert self.tail is not None
            res = self.tail.poll()
            if res.reset:
                resets = self.resets + 1
                self._reset_state()
                self.resets = resets
                self._start()
                reason = res.reset
            else:
                reason = None
                for off, length, raw in res.lines:
                    if not index_line(self.fwd, self.codes, off, length, raw):
                        self.corrupt += 1
                if res.lines:
                    self.version += 1
        if reason:
            self._first_chunk.wait(5.0)
        return reason

    # ----------------------------------------------------------------- querying
    def progress(self) -> dict[str, Any]:
        """How much of the file is indexed."""
        with self.lock:
            total = self.tail.offset if self.tail else 0
            done = total - self.back_lo if total else 0
            return {
                "complete": self.back_done,
                "indexed_bytes": done,
                "total_bytes": total,
                "rows": len(self.back) + len(self.fwd),
                "corrupt": self.corrupt,
            }

    def snapshot(self) -> Snapshot:
        """Numpy arrays of all indexed rows in file order (cached per version)."""
        with self.lock:
            if (
                self._snap is not None
                and self._snap.version == self.version
                and self._snap.complete == self.back_done
            ):
                return self._snap

            def cat(name: str, dtype: Any) -> np.ndarray:
                b = (
                    np.frombuffer(getattr(self.back, name), dtype=dtype)[::-1]
                    if len(self.back)
                    else np.empty(0, dtype)
                )
                f = (
                    np.frombuffer(getattr(self.fwd, name), dtype=dtype)
                    if len(self.fwd)
                    else np.empty(0, dtype)
                )
                return np.concatenate([b, f])

            snap_step = cat("step", np.int64)
            problem = cat("problem", np.dtype("l"))
            nprob = max(1, len(self.codes.problems))
            # Within a step, groups are listed by problem id (alphabetical).
            rank = np.empty(nprob, dtype=np.int64)
            rank[np.argsort(np.array(self.codes.problems or [""], dtype=object), kind="stable")] = np.arange(
                nprob
            )
            key = snap_step * nprob + (nprob - 1 - rank[problem]) if len(problem) else snap_step
            partial = None
            if not self.back_done and len(self.back):
                partial = int(self.back.step[-1])
            self._snap = Snapshot(
                version=self.version,
                offset=cat("offset", np.int64),
                length=cat("length", np.int64),
                step=snap_step,
                problem=problem,
                gidx=cat("gidx", np.dtype("l")),
                reward=cat("reward", np.float64),
                stage=cat("stage", np.int8),
                calls=cat("calls", np.int16),
                key=key,
                complete=self.back_done,
                partial_step=partial,
            )
            return self._snap

    def facets(self) -> dict[str, Any]:
        """Summary for the filter controls: steps, stage counts, problem ids."""
        snap = self.snapshot()
        with self.lock:
            stage_names = list(self.codes.stage_names)
            problems = list(self.codes.problems)
        counts = (
            np.bincount(snap.stage.astype(np.int64), minlength=len(stage_names)) if len(snap.stage) else []
        )
        steps = snap.step[snap.step >= 0]
        used = np.unique(snap.problem) if len(snap.problem) else []
        return {
            "rows": len(snap.step),
            "step_min": int(steps.min()) if len(steps) else None,
            "step_max": int(steps.max()) if len(steps) else None,
            "stages": {stage_names[i]: int(c) for i, c in enumerate(counts) if c},
            "problems": sorted(problems[i] for i in used[:5000]),
            "n_problems": len(used),
            # episodes by number of tool calls ({} for a single-turn run)
            "tool_calls": {
                str(n): int(c) for n, c in zip(*np.unique(snap.calls[snap.calls >= 0], return_counts=True))
            },
        }

    def _read_row(self, snap: Snapshot, i: int, mm: Any) -> dict[str, Any] | None:
        off = int(snap.offset[i])
        obj = parse_line(mm[off : off + int(snap.length[i])])
        return clean_value(obj) if obj is not None else None

    def query(
        self,
        stages: list[str] | None = None,
        reward_min: float | None = None,
        reward_max: float | None = None,
        problem: str | None = None,
        step: int | None = None,
        step_min: int | None = None,
        step_max: int | None = None,
        q: str | None = None,
        page: int = 0,
        page_size: int = 10,
        tool_calls: int | None = None,
        tool_calls_min: int | None = None,
    ) -> dict[str, Any]:
        """One page of groups (newest step first) whose completions match the filters.

        A group is listed when at least one of its completions matches; all of the
        group's completions are returned, each with ``match`` telling which did.
        """
        snap = self.snapshot()
        with self.lock:
            stage_codes = dict(self.codes.stage_codes)
            problem_codes = dict(self.codes.problem_codes)
        mask = np.ones(len(snap.step), dtype=bool)
        if snap.partial_step is not None:
            mask &= snap.step != snap.partial_step
        if stages:
            codes = [stage_codes[s] for s in stages if s in stage_codes]
            mask &= np.isin(snap.stage, np.array(codes, dtype=np.int8))
        if reward_min is not None:
            mask &= snap.reward >= reward_min
        if reward_max is not None:
            mask &= snap.reward <= reward_max
        if problem:
            code = problem_codes.get(problem)
            if code is None:
                mask &= False
            else:
                mask &= snap.problem == code
        if step is not None:
            mask &= snap.step == step
        if step_min is not None:
            mask &= snap.step >= step_min
        if step_max is not None:
            mask &= snap.step <= step_max
        if tool_calls is not None:
            mask &= snap.calls == tool_calls
        if tool_calls_min is not None:
            mask &= snap.calls >= tool_calls_min
        keys = np.unique(snap.key[mask])[::-1]
        page = max(0, page)
        page_size = max(1, min(page_size, 100))
        exact = True
        scanned = 1.0
        if q:
            found, exact, scanned = self._search(
                snap,
                mask,
                keys,
                q,
                (page + 1) * page_size,
                (
                    stages,
                    reward_min,
                    reward_max,
                    problem,
                    step,
                    step_min,
                    step_max,
                    tool_calls,
                    tool_calls_min,
                ),
            )
            total = len(found)
            page_keys = found[page * page_size : (page + 1) * page_size]
        else:
            total = len(keys)
            page_keys = keys[page * page_size : (page + 1) * page_size].tolist()
        groups = self._load_groups(snap, mask, page_keys)
        return {
            "total": total,
            "total_exact": exact,
            "search_scanned": scanned,
            "page": page,
            "page_size": page_size,
            "groups": groups,
            "index": self.progress(),
            "stage_names": list(STAGES),
        }

    def _load_groups(self, snap: Snapshot, mask: np.ndarray, page_keys: list[int]) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        with _Mapped(self.path) as mm:
            if mm is None:
                return groups
            for k in page_keys:
                rows = snap.group_rows(k)
                items = []
                for i in rows.tolist():
                    obj = self._read_row(snap, i, mm)
                    if obj is None:
                        continue
                    obj["match"] = bool(mask[i])
                    obj["_offset"] = int(snap.offset[i])
                    items.append(obj)
                items.sort(
                    key=lambda o: o.get("group_index") if isinstance(o.get("group_index"), int) else 1 << 30
                )
                if not items:
                    continue
                rewards = [o.get("reward") for o in items if isinstance(o.get("reward"), (int, float))]
                first = items[0]
                groups.append(
                    {
                        "step": first.get("step"),
                        "problem_id": first.get("problem_id"),
                        "prompt": first.get("prompt"),
                        "n": len(items),
                        "reward_mean": (sum(rewards) / len(rewards)) if rewards else None,
                        "reward_max": max(rewards) if rewards else None,
                        "completions": [{k: v for k, v in o.items() if k != "prompt"} for o in items],
                    }
                )
        return groups

    def _search(
        self, snap: Snapshot, mask: np.ndarray, keys: np.ndarray, q: str, need: int, fkey: tuple
    ) -> tuple[list[int], bool, float]:
        """Groups (in display order) with a completion matching ``q`` in its text fields.

        Scans from the newest group, stopping once ``need`` groups are found and a
        time budget is spent; the scan state is cached so later pages continue it.
        """
        ckey = (snap.version, q, repr(fkey))
        state = self._search_cache.get(ckey)
        if state is None:
            state = {"pos": 0, "found": []}
            self._search_cache[ckey] = state
            while len(self._search_cache) > 16:
                self._search_cache.popitem(last=False)
        ql = q.lower()
        needles = {json.dumps(ql)[1:-1].encode(), json.dumps(ql, ensure_ascii=False)[1:-1].encode("utf-8")}
        t0 = time.monotonic()
        with _Mapped(self.path) as mm:
            if mm is None:
                return [], True, 1.0
            keys_list = keys
            while state["pos"] < len(keys_list):
                elapsed = time.monotonic() - t0
                if elapsed > SEARCH_HARD_S or (len(state["found"]) >= need and elapsed > SEARCH_SOFT_S):
                    break
                k = keys_list[state["pos"]]
                state["pos"] += 1
                for i in snap.group_rows(int(k)).tolist():
                    if not mask[i]:
                        continue
                    off = int(snap.offset[i])
                    raw = mm[off : off + int(snap.length[i])].lower()
                    if not any(n in raw for n in needles):
                        continue
                    obj = parse_line(raw)
                    if obj is None:
                        continue
                    if any(isinstance(obj.get(f), str) and ql in obj[f] for f in TEXT_FIELDS):
                        state["found"].append(int(k))
                        break
        return list(state["found"]), state["pos"] >= len(keys), state["pos"] / max(1, len(keys))


class _Mapped:
    """``with _Mapped(path) as mm``: a read-only mmap of the file (``None`` if unreadable/empty)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.mm: mmap.mmap | None = None

    def __enter__(self) -> mmap.mmap | None:
        try:
            with open(self.path, "rb") as fh:
                self.mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            self.mm = None
        return self.mm

    def __exit__(self, *exc: object) -> None:
        if self.mm is not None:
            self.mm.close()


def _last_newline_end(path: str, size: int) -> int:
    """Offset just past the last newline in the first ``size`` bytes of the file."""
    try:
        with open(path, "rb") as fh:
            pos = size
            while pos > 0:
                start = max(0, pos - 65536)
                fh.seek(start)
                data = fh.read(pos - start)
                nl = data.rfind(b"\n")
                if nl >= 0:
                    return start + nl + 1
                pos = start
    except OSError:
        pass
    return 0
