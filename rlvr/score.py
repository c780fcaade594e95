"""Score model outputs offline: `python -m rlvr.score --problems P --completions C [--out O] [--jobs N]`.

P: problems in any supported schema (a file or a Hugging Face dataset id; see doc/data.md).
C: JSONL rows `{"id": <problem id or MultiPL-E name>, "completion": <raw model text>}`.
Writes one Outcome JSON object per completion, in input order, to O (or stdout), and a summary to stderr.
Exit status: 0 on success, 2 on bad input (the message names the file and line).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .completions import apply_stop_tokens
from .data import DataError, load_problems
from .problems import Problem
from .verifier import OCamlNotFound, Verifier, VerifierConfig


class InputError(ValueError):
    """Bad completions input; the message names the file and line."""


def read_completions(path: Path, problems: dict[str, Problem]) -> list[tuple[str, str]]:
    """(problem id, completion) pairs from a JSONL file, validated against the known problem ids."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{n}: expected a JSON object with fields id and completion")
            missing = [k for k in ("id", "completion") if k not in row]
            if missing:
                raise InputError(
                    f"{path}:{n}: missing field {', '.join(repr(m) for m in missing)} (expected id and completion)"
                )
            pid, text = str(row["id"]), row["completion"]
            if not isinstance(text, str):
                raise InputError(
                    f"{path}:{n}: field 'completion' must be a string, found {type(text).__name__}"
                )
            if pid not in problems:
                raise InputError(f"{path}:{n}: unknown problem id {pid!r} (not in the problems file)")
            out.append((pid, text))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlvr.score", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--problems", required=True, help="problems: file (.jsonl/.json/.csv/.parquet), 'bundled' or HF id"
    )
    ap.add_argument("--completions", required=True, type=Path, help="JSONL of {id, completion}")
    ap.add_argument("--out", type=Path, help="write outcomes here instead of stdout")
    ap.add_argument(
        "--jobs", type=int, default=None, help="parallel workers (default: VERIFIER_JOBS or one per core)"
    )
    ap.add_argument(
        "--sandbox", choices=["bwrap", "rlimit"], default=None, help="default: VERIFIER_SANDBOX or bwrap"
    )
    args = ap.parse_args(argv)
    try:
        config = VerifierConfig.from_env()
        overrides = {k: v for k, v in (("jobs", args.jobs), ("sandbox", args.sandbox)) if v is not None}
        if overrides:
            config = VerifierConfig(**{**config.__dict__, **overrides})
        problems, _report = load_problems(args.problems)
        by_id = {p.id: p for p in problems}
        pairs = read_completions(args.completions, by_id)
        verifier = Verifier(config)
    except (DataError, InputError, ValueError, OCamlNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with verifier:
        items = [(by_id[pid], apply_stop_tokens(by_id[pid], text)) for pid, text in pairs]
        outcomes = verifier.score_batch(items, ids=[pid for pid, _ in pairs])
    sink = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    try:
        for o in outcomes:
            sink.write(json.dumps(o.to_dict(), ensure_ascii=False) + "\n")
    finally:
        if args.out:
            sink.close()
    stages = Counter(o.stage for o in outcomes)
    scored = [o.total_reward for o in outcomes if o.total_reward is not None]
    mean = sum(scored) / len(scored) if scored else float("nan")
    print(
        f"scored {len(outcomes)} completions: mean reward {mean:.4f}; "
        + ", ".join(f"{s} {n}" for s, n in stages.most_common()),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
