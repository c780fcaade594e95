"""What crosses the wire between the reward server and its clients: problems and outcomes as JSON.

A problem goes over exactly as the verifier sees it (prompt unstripped, tests as expressions, reference,
MultiPL-E stop tokens), so a remote score is the in-process score of the same record.
"""

from __future__ import annotations

from typing import Any

from ..data import DataError
from ..problems import ID_PATTERN, SPLITS, Problem
from ..verifier import Outcome
from ..verifier.ocaml_source import SignatureError, parse_signature

OUTCOME_FIELDS = tuple(Outcome.__dataclass_fields__)


def problem_to_wire(p: Problem) -> dict[str, Any]:
    return {
        "id": p.id,
        "prompt": p.prompt,
        "tests": list(p.tests),
        "solution": p.solution,
        "difficulty": p.difficulty,
        "tags": list(p.tags),
        "split": p.split,
        "stop_tokens": list(p.extra.get("stop_tokens") or []),
    }


def problem_from_wire(row: Any, where: str) -> Problem:
    """A Problem from its wire form, or DataError naming `where` and the field."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a problem object, found {type(row).__name__}")
    pid = row.get("id")
    if not isinstance(pid, str) or not ID_PATTERN.match(pid):
        raise DataError(f"{where}: field 'id' must be a string of [A-Za-z0-9_.-], found {pid!r}")
    prompt = row.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{where}: field 'prompt' is missing or empty (id {pid})")
    try:
        parse_signature(prompt)
    except SignatureError as e:
        raise DataError(f"{where}: the prompt of {pid} has no usable signature: {e}") from None
    tests = row.get("tests")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t.strip() for t in tests):
        raise DataError(f"{where}: field 'tests' must be a non-empty list of OCaml expressions (id {pid})")
    solution = row.get("solution")
    if solution is not None and not isinstance(solution, str):
        raise DataError(f"{where}: field 'solution' must be a string or null (id {pid})")
    split = row.get("split") or "train"
    if split not in SPLITS:
        raise DataError(
            f"{where}: field 'split' is {split!r} (id {pid}); expected one of {', '.join(SPLITS)}"
        )
    stops = row.get("stop_tokens") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise DataError(f"{where}: field 'stop_tokens' must be a list of strings (id {pid})")
    tags = row.get("tags") or []
    return Problem(
        id=pid,
        prompt=prompt,
        tests=tuple(tests),
        solution=solution or None,
        difficulty=row.get("difficulty") if isinstance(row.get("difficulty"), str) else None,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        split=split,
        source="request",
        extra={"stop_tokens": stops} if stops else {},
    )


def outcome_from_wire(row: dict[str, Any]) -> Outcome:
    """An Outcome from the server's JSON (fields it does not know, from a newer server, are dropped)."""
    return Outcome(**{k: v for k, v in row.items() if k in OUTCOME_FIELDS})
