"""Verifier results worth keeping between runs: a JSON map per kind of result and per context.

A result that depends only on its key (a problem's content) and on its context (the machine, the OCaml
installation, the harness's source) is kept in $OCAMLER_CACHE/<kind>/<hash of the context>.json. Another
context reads another file, so nothing measured elsewhere or under an older harness is ever reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..models import cache_root


def harness_digest() -> str:
    """A hash of the harness's source: what the test program is made of (harness.py)."""
    return hashlib.sha256(Path(__file__).with_name("harness.py").read_bytes()).hexdigest()[:12]


class DiskCache:
    """One kind of result for one context. `get` raises KeyError for a key never recorded here; `put`
    merges with what other processes wrote meanwhile and replaces the file atomically. A file that
    cannot be read or written only makes the verifier slower."""

    def __init__(self, kind: str, context: str, root: Path | None = None):
        self.context = context
        digest = hashlib.sha256(context.encode()).hexdigest()[:16]
        self.path = (root or cache_root() / kind) / f"{digest}.json"
        self._lock = threading.Lock()
        self._values: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("context") != self.context:
            return {}
        values = data.get("values")
        return dict(values) if isinstance(values, dict) else {}

    def get(self, key: str) -> Any:
        with self._lock:
            return self._values[key]

    def put(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._values = {**self._read(), **self._values, **values}
            with contextlib.suppress(OSError):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path.parent)
                with os.fdopen(fd, "w") as f:
                    json.dump({"context": self.context, "values": self._values}, f, indent=0, sort_keys=True)
                os.replace(tmp, self.path)
