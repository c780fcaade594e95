"""Load problems from the bundled set, local files or the Hugging Face hub, in any supported schema.

Schemas (doc/data.md): ours (`id, prompt, tests: [expr], solution, difficulty, tags, split`);
kiranpg/ocaml-training-problems (`id, prompt, tests: "let () = assert ...;;"`);
kiranpg/ocaml-eval-problems (`id, problem, tests, difficulty`); MultiPL-E (`name, prompt, tests,
stop_tokens`). SFT pairs (`prompt, solution`, e.g. kiranpg/ocaml-sft-problems) load with `load_sft_pairs`.

Bad data never trains silently: a missing field, an empty test list, a duplicate id or an unusable
signature raises `DataError` naming the source, the row and the field, unless `on_error="skip"`,
in which case the row is skipped and counted in `LoadReport.skipped`.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .assertions import SplitError, split_assertions
from .problems import DIFFICULTIES, ID_PATTERN, SPLITS, Problem
from .verifier.ocaml_source import SignatureError, parse_signature

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_PROBLEMS = REPO_ROOT / "data" / "ocaml_problems.jsonl"  # what "bundled" means for a data source
MULTIPL_E_DIR_CANDIDATES = (
    REPO_ROOT / "shared" / "data" / "multipl-e",
    REPO_ROOT.parent / "shared" / "data" / "multipl-e",
)


class DataError(ValueError):
    """A dataset row that cannot be used, with where it is and what was expected."""


@dataclass
class LoadReport:
    """What a load did: rows read, problems kept, and rows skipped with their reasons."""

    source: str
    rows: int = 0
    kept: int = 0
    skipped: list[str] = field(default_factory=list)
    schema: str = ""

    def summary(self) -> str:
        reasons = Counter(s.split(": ", 1)[-1].split(" (")[0] for s in self.skipped)
        text = f"{self.source}: {self.kept}/{self.rows} problems loaded ({self.schema} schema)"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped: " + "; ".join(
                f"{n} x {r}" for r, n in reasons.most_common(5)
            )
        return text


def read_rows(source: str, split: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Rows of `source` as dicts, and a display name for messages.

    `source` is "bundled" (or empty), a local .jsonl/.json/.csv/.parquet file, or a Hugging Face dataset
    id, optionally with a config after a colon (`nuprl/MultiPL-E:mbpp-ml`). For a hub dataset `split`
    picks the split (default: train, else the first available).
    """
    if not source or source == "bundled":
        source = str(BUNDLED_PROBLEMS)
    path = Path(source).expanduser()
    if path.exists():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            rows = []
            with path.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
            return rows, str(path)
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list of objects")
            return data, str(path)
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f)), str(path)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist(), str(path)
        raise DataError(
            f"{path}: unsupported file type {suffix!r} (expected .jsonl, .json, .csv or .parquet)"
        )
    if os.sep in source and not _looks_like_hub_id(source):
        raise DataError(f"{source}: no such file")
    return _read_hub(source, split), source


def _looks_like_hub_id(source: str) -> bool:
    name = source.split(":", 1)[0]
    return name.count("/") == 1 and not name.startswith((".", "/", "~"))


def _read_hub(source: str, split: str | None) -> list[dict[str, Any]]:
    name, _, config = source.partition(":")
    try:
        import datasets

        ds = datasets.load_dataset(name, config or None)
    except Exception as e:  # offline, no such dataset, no token ...
        raise DataError(
            f"could not load the dataset {source!r} from the Hugging Face hub ({type(e).__name__}: {e}). "
            "Offline? Use the bundled set (TRAINING_DATASET=bundled) or a local .jsonl/.csv/.parquet file."
        ) from None
    chosen = split if split in ds else ("train" if "train" in ds else next(iter(ds)))
    return list(ds[chosen])


def detect_schema(row: dict[str, Any]) -> str:
    """Name the schema of a row: ours | kiranpg | kiranpg-eval | multipl-e | sft."""
    keys = set(row)
    if {"name", "prompt", "tests"} <= keys and "id" not in keys:
        return "multipl-e"
    if {"id", "problem", "tests"} <= keys:
        return "kiranpg-eval"
    if {"prompt", "tests"} <= keys:
        return "ours" if isinstance(row["tests"], list) or _is_json_list(row["tests"]) else "kiranpg"
    if {"prompt", "solution"} <= keys:
        return "sft"
    return "unknown"


def _is_json_list(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip().startswith("[")


def problem_from_row(row: dict[str, Any], where: str, schema: str | None = None) -> Problem:
    """Normalise one row to a Problem, or raise DataError naming `where` (file:row) and the field."""
    schema = schema or detect_schema(row)
    if schema in ("unknown", "sft") and ("prompt" in row or "problem" in row) and "tests" not in row:
        raise DataError(f"{where}: field 'tests' is missing (id {row.get('id') or row.get('name')})")
    if schema in ("unknown", "sft"):
        have = ", ".join(sorted(row)) or "nothing"
        raise DataError(
            f"{where}: cannot use this row as a problem: expected fields id, prompt, tests "
            f"(or MultiPL-E's name, prompt, tests), found {have}"
        )
    pid = row.get("name") if schema == "multipl-e" else row.get("id")
    prompt = row.get("problem") if schema == "kiranpg-eval" else row.get("prompt")
    if pid is None or str(pid).strip() == "":
        raise DataError(f"{where}: field 'id' is missing or empty")
    pid = str(pid)
    if not ID_PATTERN.match(pid):
        raise DataError(f"{where}: id {pid!r} has characters outside [A-Za-z0-9_.-]")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{where}: field 'prompt' is missing or empty (id {pid})")
    tests = _tests_of(row.get("tests"), where, pid)
    try:
        parse_signature(prompt)
    except SignatureError as e:
        raise DataError(f"{where}: the prompt of {pid} has no usable signature: {e}") from None
    split = row.get("split") or ("eval" if schema in ("kiranpg-eval", "multipl-e") else "train")
    if split not in SPLITS:
        raise DataError(
            f"{where}: field 'split' is {split!r} (id {pid}); expected one of {', '.join(SPLITS)}"
        )
    difficulty = row.get("difficulty") or None
    if difficulty is not None and schema == "ours" and difficulty not in DIFFICULTIES:
        raise DataError(
            f"{where}: field 'difficulty' is {difficulty!r} (id {pid}); expected one of {', '.join(DIFFICULTIES)}"
        )
    tags = row.get("tags") or ()
    if isinstance(tags, str):
        tags = [
            t.strip() for t in (json.loads(tags) if _is_json_list(tags) else tags.split(",")) if t.strip()
        ]
    extra = (
        {"stop_tokens": list(row["stop_tokens"])} if schema == "multipl-e" and row.get("stop_tokens") else {}
    )
    return Problem(
        id=pid,
        prompt=prompt.rstrip() if schema != "multipl-e" else prompt,
        tests=tuple(tests),
        solution=row.get("solution") or None,
        difficulty=str(difficulty) if difficulty is not None else None,
        tags=tuple(str(t) for t in tags),
        split=split,
        source=schema,
        extra=extra,
    )


def _tests_of(raw: Any, where: str, pid: str) -> list[str]:
    if raw is None:
        raise DataError(f"{where}: field 'tests' is missing (id {pid})")
    if _is_json_list(raw):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise DataError(
                f"{where}: field 'tests' looks like a JSON list but does not parse (id {pid})"
            ) from None
    if isinstance(raw, str):
        try:
            tests = split_assertions(raw)
        except SplitError:
            raise DataError(
                f"{where}: field 'tests' of {pid} has no `assert` to split into assertions"
            ) from None
    elif isinstance(raw, list | tuple):
        tests = [t for t in raw]
        bad = [i for i, t in enumerate(tests) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise DataError(f"{where}: field 'tests' of {pid}: item {bad[0]} is not a non-empty string")
    else:
        raise DataError(
            f"{where}: field 'tests' of {pid} is a {type(raw).__name__}; expected a list of OCaml expressions or a test-code string"
        )
    if not tests:
        raise DataError(f"{where}: field 'tests' of {pid} is empty; expected at least one assertion")
    return [t.strip() for t in tests]


def load_problems(
    source: str = "bundled",
    split: str | None = None,
    on_error: str = "raise",
    hub_split: str | None = None,
) -> tuple[list[Problem], LoadReport]:
    """Load and validate problems; keep only `split` ("train"/"eval") when given.

    on_error="raise" stops at the first bad row with a DataError; "skip" skips it and records why.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
    rows, name = read_rows(source, hub_split)
    report = LoadReport(source=name, rows=len(rows))
    if not rows:
        raise DataError(f"{name}: no rows")
    report.schema = detect_schema(rows[0])
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        where = f"{name}:{n}"
        try:
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, found {type(row).__name__}")
            p = problem_from_row(row, where)
            if p.id in seen:
                raise DataError(f"{where}: duplicate id {p.id!r} (first at row {seen[p.id]})")
            seen[p.id] = n
        except DataError as e:
            if on_error == "raise":
                raise
            report.skipped.append(str(e))
            continue
        if split is None or p.split == split:
            problems.append(p)
    report.kept = len(problems)
    return problems, report


def load_sft_pairs(source: str = "bundled", split: str = "train") -> list[tuple[str, str, str]]:
    """(id, prompt, solution) triples for SFT: rows with a reference solution, from `split` only.

    Accepts our schema and kiranpg/ocaml-sft-problems (`prompt, solution`). MultiPL-E is refused: its
    licence forbids training on it.
    """
    rows, name = read_rows(source)
    out = []
    for n, row in enumerate(rows, 1):
        where = f"{name}:{n}"
        schema = detect_schema(row)
        if schema == "multipl-e":
            raise DataError(
                f"{where}: MultiPL-E data is for evaluation only (its licence forbids training on it)"
            )
        if schema in ("ours", "kiranpg") and (row.get("split") or "train") != split:
            continue
        prompt, solution = row.get("prompt"), row.get("solution")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{where}: field 'prompt' is missing or empty")
        if not isinstance(solution, str) or not solution.strip():
            if schema == "sft":
                raise DataError(f"{where}: field 'solution' is missing or empty")
            continue
        out.append((str(row.get("id") or f"row{n}"), prompt.rstrip(), solution.strip()))
    if not out:
        raise DataError(f"{name}: no rows with a prompt and a solution in split {split!r}")
    return out


def multipl_e_file(name: str = "mbpp-ml-fixed.jsonl") -> Path:
    """Path of a MultiPL-E file from shared/data/multipl-e (evaluation only)."""
    for d in MULTIPL_E_DIR_CANDIDATES:
        if (d / name).exists():
            return d / name
    raise DataError(
        f"MultiPL-E file {name!r} not found in {', '.join(str(d) for d in MULTIPL_E_DIR_CANDIDATES)}"
    )
