"""Columnar metric series built incrementally from a JSONL tail, and downsampling.

:class:`SeriesStore` keeps, for every numeric key of a metrics file, the points
``(step, value)`` seen so far (``null``/NaN kept as gaps).  It is fed by a
:class:`~dashboard.tail.JsonlTail`, so each refresh parses only new lines.  When a
step goes backwards (a resume from a checkpoint, or an SFT eval line logged at the
same step as a train line) the points at or after that step are replaced.

:func:`downsample` reduces a long series to a fixed number of buckets, keeping each
bucket's mean and its min/max envelope, and keeping the last point exact.
"""

from __future__ import annotations

import itertools
import logging
import math
import mmap
import threading
from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np

from dashboard.offload import Offloaded, OffloadError, OffloadStopped
from dashboard.tail import JsonlTail, PollResult, clean_value, parse_line, stat_file

log = logging.getLogger(__name__)

DEFAULT_POINTS = 1000
SIGNIFICANT_DIGITS = 6
LOAD_CHUNK = 8 << 20
SYNC_LOAD_BYTES = 4 << 20


def _num(v: Any) -> float | None:
    """A finite or NaN float for JSON numbers/null; ``None`` when not a metric value."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _clean_list(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def _display(ys: np.ndarray) -> list[float | None]:
    """Chart values: rounded by :func:`round_significant` except the last, which stays exact."""
    out = round_significant(ys)
    if len(ys):
        out[-1] = ys[-1]
    return _clean_list(out.tolist())


def round_significant(a: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """``a`` rounded to ``digits`` significant digits, so that each value's JSON is short.

    A chart cannot show more, and a float such as 0.043016609478994244 takes 20
    bytes where 0.0430166 takes 9: the series payloads shrink by about half, and
    with them the encoding and gzip time of a page's first open.  Dividing the
    rounded integer by an exact power of ten gives the double nearest the short
    decimal, whose ``repr`` is that decimal.

    The step is never coarser than ``digits`` significant digits of the series' own
    range: a Unix time (~1.8e9 s) rounded to 6 digits alone moves in steps of
    10 000 s, so a run's pace read from its ``time`` series came out 20x too slow;
    a counter such as ``num_tokens`` has the same problem.  Large values with a
    small spread keep the decimals that their differences need.
    """
    out = np.array(a, dtype=np.float64, copy=True)
    nz = np.isfinite(out) & (out != 0)
    if not nz.any():
        return out
    v = out[nz]
    k = (digits - 1 - np.floor(np.log10(np.abs(v)))).astype(np.int64)
    finite = out[np.isfinite(out)]
    spread = float(finite.max() - finite.min())
    if spread > 0:
        k = np.maximum(k, int(digits - 1 - np.floor(np.log10(spread))))
    ok = np.abs(k) <= 22
    up = ok & (k >= 0)
    down = ok & (k < 0)
    v[up] = np.round(v[up] * 10.0 ** k[up]) / 10.0 ** k[up]
    v[down] = np.round(v[down] / 10.0 ** -k[down]) * 10.0 ** -k[down]
    out[nz] = v
    return out


def downsample(xs: np.ndarray, ys: np.ndarray, max_points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """Reduce ``(xs, ys)`` to at most ``max_points`` points.

    Short series come back point for point as ``{"x", "y"}``.  Longer ones are
    split into equal-count buckets; each gives its mean x, mean y (NaN ignored)
    and, in ``lo``/``hi``, the min and max y, so spikes stay visible.  The final
    point is its own bucket.  y values but the last (which stays exact) are
    rounded to :data:`SIGNIFICANT_DIGITS`; NaN becomes ``None``.
    """
    n = len(xs)
    if n <= max_points or max_points < 3:
        return {"x": _clean_list(xs.tolist()), "y": _display(ys), "n": n}
    body = n - 1
    nb = max_points - 1
    edges = np.unique(np.linspace(0, body, nb + 1).astype(np.int64))
    starts = edges[:-1]
    sizes = np.diff(edges)
    xb = xs[:body]
    yb = ys[:body]
    finite = np.isfinite(yb)
    sums = np.add.reduceat(np.where(finite, yb, 0.0), starts)
    counts = np.add.reduceat(finite.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    lo = np.fmin.reduceat(yb, starts)
    hi = np.fmax.reduceat(yb, starts)
    xm = np.add.reduceat(xb, starts) / sizes
    x_out = np.append(xm, xs[-1])
    return {
        "x": _clean_list(x_out.tolist()),
        "y": _display(np.append(mean, ys[-1])),
        "lo": _display(np.append(lo, ys[-1])),
        "hi": _display(np.append(hi, ys[-1])),
        "n": n,
    }


class Column:
    """Points of one metric key: parallel x (step) and y arrays."""

    __slots__ = ("xs", "ys")

    def __init__(self) -> None:
        self.xs = array("d")
        self.ys = array("d")

    def _rewind(self, x: float) -> None:
        xs = self.xs
        if xs and x <= xs[-1]:
            cut = len(xs)
            while cut and xs[cut - 1] >= x:
                cut -= 1
            del xs[cut:]
            del self.ys[cut:]

    def append(self, x: float, y: float) -> None:
        """Add a point; a step not after the last one replaces the points from it on."""
        self._rewind(x)
        self.xs.append(x)
        self.ys.append(y)

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> None:
        """Add points with strictly increasing ``xs`` (rewinding once, before the first)."""
        if not len(xs):
            return
        self._rewind(float(xs[0]))
        self.xs.frombytes(np.ascontiguousarray(xs, dtype=np.float64).tobytes())
        self.ys.frombytes(np.ascontiguousarray(ys, dtype=np.float64).tobytes())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the points as numpy arrays."""
        return (
            np.frombuffer(self.xs, dtype=np.float64).copy(),
            np.frombuffer(self.ys, dtype=np.float64).copy(),
        )


def _as_floats(values: list[Any]) -> np.ndarray | None:
    """Numbers/None as a float array (None → NaN), or ``None`` if any value is not numeric."""
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.ndim == 1 and len(arr) == len(values) else None


class SeriesStore:
    """All numeric series of one JSONL metrics file, refreshed incrementally.

    ``flatten`` names dict-valued keys whose numeric members become series
    ``<key>/<member>`` (e.g. ``stage_counts/pass``).

    A large file is first parsed in a child process (:mod:`dashboard.offload`),
    which hands back the finished columns; until then :meth:`payload` answers from
    a sample of evenly spaced lines (plus the exact last line) so that a page opens
    at once, and says so (``sampled``).  A loaded store caches its last payload per
    (file position, keys, points), so re-opening a page costs nothing until the
    file grows.
    """

    _LOCAL = ("lock", "_loader", "_start_lock", "loaded", "_cache", "child_offset")

    def __init__(self, path: str, flatten: tuple[str, ...] = ()) -> None:
        self.path = path
        self.flatten = flatten
        self.lock = threading.RLock()
        self.tail = JsonlTail(path)
        self._loader: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.loaded = False
        self.child_offset = 0
        """How far a parse process has got (for progress while loading)."""
        self._cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._clear()

    @classmethod
    def create(cls, path: str, flatten: tuple[str, ...] = ()) -> SeriesStore:
        """A new empty store of this class (subclasses fix their own ``flatten``)."""
        return cls(path, flatten) if cls is SeriesStore else cls(path)

    def __getstate__(self) -> dict[str, Any]:
        """The parsed state, without locks, threads or caches (sent back by a parse process)."""
        return {k: v for k, v in self.__dict__.items() if k not in self._LOCAL}

    def _clear(self) -> None:
        self.columns: dict[str, Column] = {}
        self.last: dict[str, Any] = {}
        self.last_record: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.n_records = 0
        self.resets = 0
        self.on_clear()

    def on_clear(self) -> None:
        """Hook for subclasses: forget derived state."""

    def on_records(self, recs: list[dict[str, Any]]) -> None:
        """Hook for subclasses: fold parsed (non-event) records into derived state."""

    @property
    def corrupt(self) -> int:
        """Complete lines that were not JSON objects."""
        return self.tail.corrupt

    @property
    def offset(self) -> int:
        """Byte offset just past the last line ingested."""
        return self.tail.offset

    @property
    def ino(self) -> int:
        """Inode of the file as last seen (0 when missing)."""
        return self.tail.ino

    # ------------------------------------------------------------------ loading
    def refresh(self, chunk_bytes: int = LOAD_CHUNK) -> PollResult:
        """Ingest lines written since the last refresh (resetting on truncation/rotation).

        Works in chunks of ``chunk_bytes`` and takes the lock per chunk, so readers
        are never blocked for long.  Returns the combined result.
        """
        total: PollResult | None = None
        while True:
            res, more = self._refresh_chunk(chunk_bytes)
            if total is None:
                total = res
            else:
                total.end = res.end
                total.reset = total.reset or res.reset
            if not more:
                return total

    def _refresh_chunk(self, chunk_bytes: int) -> tuple[PollResult, bool]:
        """Ingest up to about ``chunk_bytes`` of new lines; True when more are waiting."""
        with self.lock:
            res = self.tail.poll(chunk_bytes)
            if res.reset:
                resets = self.resets + 1
                self._clear()
                self.resets = resets
            recs: list[dict[str, Any]] = []
            for _off, _len, raw in res.lines:
                rec = parse_line(raw)
                if rec is None:
                    self.tail.corrupt += 1
                else:
                    recs.append(rec)
            self.ingest_many(recs)
            return res, bool(res.lines) and self.tail.offset < stat_file(self.path).size

    def _load_all(self, offload: bool = False) -> None:
        """The initial full parse: in a child process when ``offload``, then the rest here."""
        try:
            if offload and not self._adopt_parsed():
                return
            self.refresh()
        finally:
            self.loaded = True

    def _adopt_parsed(self) -> bool:
        """Take over the state of a copy of this store parsed in a child process.

        Skipped (the caller's refresh parses in this thread) if the child fails or
        if this store ingested anything meanwhile.  False when the process is exiting.
        """
        state: dict[str, Any] | None = None
        try:
            for item in Offloaded(_parse_store, type(self), self.path, self.flatten, LOAD_CHUNK):
                if isinstance(item, int):
                    self.child_offset = item
                else:
                    state = item
        except OffloadStopped:
            return False
        except OffloadError as exc:
            log.warning("dashboard: %s; parsing %s in a thread instead", exc, self.path)
        if state is not None:
            with self.lock:
                if self.tail.offset == 0 and self.n_records == 0:
                    self.__dict__.update(state)
        return True

    def ensure_loading(self) -> bool:
        """Start the initial full parse (in the background for big files); True once complete."""
        if self.loaded:
            return True
        with self._start_lock:
            if self._loader is None:
                if stat_file(self.path).size - self.tail.offset <= SYNC_LOAD_BYTES:
                    self._load_all()
                    return True
                self._loader = threading.Thread(
                    target=self._load_all, args=(True,), name="series-load", daemon=True
                )
                self._loader.start()
        return self.loaded

    # ------------------------------------------------------------------ ingesting
    def ingest_many(self, recs: list[dict[str, Any]]) -> None:
        """Fold parsed records (in file order) into the series, column by column."""
        self.n_records += len(recs)
        seg: list[dict[str, Any]] = []
        for rec in recs:
            if "event" in rec:
                self._ingest_segment(seg)
                seg = []
                self._ingest_event(rec)
            else:
                seg.append(rec)
        self._ingest_segment(seg)

    def _ingest_event(self, rec: dict[str, Any]) -> None:
        step = _num(rec.get("step"))
        ev: dict[str, Any] = {
            "event": str(rec.get("event")),
            "step": step if step is not None and math.isfinite(step) else None,
        }
        if isinstance(rec.get("time"), (int, float)):
            ev["time"] = rec["time"]
        self.events.append(ev)

    def _ingest_segment(self, seg: list[dict[str, Any]]) -> None:
        if not seg:
            return
        steps = [r.get("step") for r in seg]
        xs = _as_floats(steps)
        if xs is None or np.isnan(xs).any():
            keep = [i for i, v in enumerate(steps) if (_num(v) is not None and math.isfinite(_num(v) or 0.0))]
            seg = [seg[i] for i in keep]
            if not seg:
                return
            xs = np.array([float(seg[i]["step"]) for i in range(len(seg))])
        if len(xs) > 1 and not bool(np.all(np.diff(xs) > 0)):
            # Steps go back inside this batch (resume, same-step lines): split at each drop.
            cuts = [0, *(np.nonzero(np.diff(xs) <= 0)[0] + 1).tolist(), len(seg)]
            for a, b in itertools.pairwise(cuts):
                self._ingest_run(seg[a:b], xs[a:b])
            return
        self._ingest_run(seg, xs)

    def _ingest_run(self, seg: list[dict[str, Any]], xs: np.ndarray) -> None:
        """Fold records whose steps strictly increase (``xs``) into the columns."""
        keys: dict[str, None] = {}
        for r in seg:
            keys.update(dict.fromkeys(r))
        for key in keys:
            if key == "step":
                continue
            present = [key in r for r in seg]
            allp = all(present)
            vals = [r.get(key) for r in seg] if allp else [r[key] for r in seg if key in r]
            kx = xs if allp else xs[np.array(present, dtype=bool)]
            ys = _as_floats(vals)
            if ys is None:
                ok = [i for i, v in enumerate(vals) if _num(v) is not None]
                if key in self.flatten:
                    self._ingest_nested(key, [vals[i] for i in range(len(vals))], kx)
                if not ok:
                    continue
                ys = np.array([_num(vals[i]) for i in ok], dtype=np.float64)
                kx = kx[np.array(ok, dtype=np.int64)]
            col = self.columns.get(key)
            if col is None:
                col = self.columns[key] = Column()
            col.extend(kx, ys)
            y = float(ys[-1])
            self.last[key] = y if math.isfinite(y) else None
        self.last["step"] = float(xs[-1])
        self.last_record = seg[-1]
        self.on_records(seg)

    def _ingest_nested(self, key: str, values: list[Any], xs: np.ndarray) -> None:
        members: dict[str, None] = {}
        for v in values:
            if isinstance(v, dict):
                members.update(dict.fromkeys(v))
        for m in members:
            idx = [i for i, v in enumerate(values) if isinstance(v, dict) and _num(v.get(m, "")) is not None]
            if not idx:
                continue
            ys = np.array([_num(values[i][m]) for i in idx], dtype=np.float64)
            name = f"{key}/{m}"
            col = self.columns.get(name)
            if col is None:
                col = self.columns[name] = Column()
            col.extend(xs[np.array(idx, dtype=np.int64)], ys)

    # ------------------------------------------------------------------ reading
    def keys(self) -> list[str]:
        """Series names, sorted."""
        return sorted(self.columns)

    def series(self, keys: list[str] | None = None, max_points: int = DEFAULT_POINTS) -> dict[str, Any]:
        """Downsampled series for ``keys`` (all when ``None``)."""
        with self.lock:
            names = self.keys() if keys is None else [k for k in keys if k in self.columns]
            arrays = {k: self.columns[k].arrays() for k in names}
        return {k: downsample(x, y, max_points) for k, (x, y) in arrays.items()}

    def extra(self) -> dict[str, Any]:
        """Subclass-specific payload fields."""
        return {}

    def payload(self, keys: list[str] | None = None, max_points: int = DEFAULT_POINTS) -> dict[str, Any]:
        """Everything a page needs: series, last values, events, stream position.

        Exact once the initial parse has finished; before that, built from a sample
        of about ``max_points`` evenly spaced lines (``sampled: true``).
        """
        if self.ensure_loading():
            res = self.refresh()
            with self.lock:
                key = (self.ino, self.offset, self.resets, None if keys is None else tuple(keys), max_points)
                if res.reset is None and self._cache is not None and self._cache[0] == key:
                    return dict(self._cache[1])
                out = self._payload_from(self, keys, max_points)
                out.update(
                    pos={"ino": self.ino, "offset": self.offset}, reset=res.reset, sampled=False, progress=1.0
                )
                if res.reset is None:
                    self._cache = (key, out)
                return dict(out)
        st = stat_file(self.path)
        key = ("sampled", st.ino, st.size, None if keys is None else tuple(keys), max_points)
        cached = self._cache
        if cached is not None and cached[0] == key:
            out = dict(cached[1])
        else:
            # One line fewer than the points, as the exact last line is added: no bucketing.
            sample, end, ino = self._sample(max_points - 1)
            out = self._payload_from(sample, keys, max_points)
            out.update(pos={"ino": ino, "offset": end}, reset=None, sampled=True, lines=None)
            self._cache = (key, out)
            out = dict(out)
        out["progress"] = min(1.0, max(self.offset, self.child_offset) / max(1, out["pos"]["offset"]))
        return out

    def _payload_from(self, store: SeriesStore, keys: list[str] | None, max_points: int) -> dict[str, Any]:
        return {
            "lines": store.n_records,
            "corrupt": self.corrupt,
            "resets": self.resets,
            "keys": store.keys(),
            "series": store.series(keys, max_points),
            "last": clean_value(store.last),
            "last_record": clean_value(store.last_record),
            "events": clean_value(store.events[-200:]),
            **store.extra(),
        }

    def _sample(self, n: int) -> tuple[SeriesStore, int, int]:
        """A throwaway store built from ~``n`` evenly spaced lines and the last line."""
        st = stat_file(self.path)
        sample = type(self).create(self.path, self.flatten)
        recs: list[dict[str, Any]] = []
        end = 0
        # mmap: slicing does not release the GIL, so a busy loader thread cannot
        # stall thousands of small reads (the convoy effect of seek/readline).
        try:
            with open(self.path, "rb") as fh:
                if st.size == 0:
                    raise OSError("empty")
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    size = len(mm)
                    end = mm.rfind(b"\n", 0, size) + 1
                    starts: list[int] = []
                    for i in range(n):
                        pos = (end * i) // n
                        if pos > 0:
                            nl = mm.find(b"\n", pos - 1, end)
                            pos = nl + 1 if nl >= 0 else end
                        if pos < end and (not starts or pos > starts[-1]):
                            starts.append(pos)
                    if end > 0:
                        last_start = mm.rfind(b"\n", 0, end - 1) + 1
                        if not starts or starts[-1] != last_start:
                            starts.append(last_start)
                    for pos in starts:
                        nl = mm.find(b"\n", pos, end)
                        rec = parse_line(mm[pos : nl if nl >= 0 else end])
                        if rec is not None:
                            recs.append(rec)
        except (OSError, ValueError):
            pass
        sample.ingest_many(recs)
        return sample, end, st.ino


def _parse_store(
    cls: type[SeriesStore], path: str, flatten: tuple[str, ...], chunk_bytes: int
) -> Iterator[int | dict[str, Any]]:
    """Parse a whole metrics file into a new ``cls`` store (in a parse process).

    Yields the byte offset reached after each chunk, then the store's state.
    """
    store = cls.create(path, flatten)
    while True:
        _res, more = store._refresh_chunk(chunk_bytes)
        if not more:
            break
        yield store.offset
    yield store.__getstate__()


class BatchStore(SeriesStore):
    """``batch_metrics.jsonl``: series plus latest histogram and error-class totals."""

    def __init__(self, path: str) -> None:
        super().__init__(path, flatten=("stage_counts",))

    def on_clear(self) -> None:
        self.error_totals: dict[str, int] = {}
        self.last_histogram: dict[str, Any] | None = None
        self.last_batch: dict[str, Any] = {}

    def on_records(self, recs: list[dict[str, Any]]) -> None:
        totals = self.error_totals
        for rec in recs:
            classes = rec.get("error_classes")
            if isinstance(classes, dict):
                for name, n in classes.items():
                    if isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n):
                        totals[str(name)] = totals.get(str(name), 0) + int(n)
        for rec in reversed(recs):
            hist = rec.get("reward_histogram")
            if (
                isinstance(hist, dict)
                and isinstance(hist.get("edges"), list)
                and isinstance(hist.get("counts"), list)
            ):
                self.last_histogram = {
                    "step": rec.get("step"),
                    "edges": hist["edges"],
                    "counts": hist["counts"],
                }
                break
        if recs:
            self.last_batch = recs[-1]

    def extra(self) -> dict[str, Any]:
        totals = sorted(self.error_totals.items(), key=lambda kv: (-kv[1], kv[0]))
        last_classes = self.last_batch.get("error_classes")
        return {
            "histogram": clean_value(self.last_histogram),
            "error_classes": [{"name": k, "count": v} for k, v in totals[:20]],
            "error_classes_last": clean_value(last_classes) if isinstance(last_classes, dict) else {},
        }
