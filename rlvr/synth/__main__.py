"""`python -m rlvr.synth` (`make synth-data`): verified training data from a teacher model.

    python -m rlvr.synth --teacher http://127.0.0.1:8081/v1 [--model M] --mode solutions [--n 8] [--keep 2]
    python -m rlvr.synth --teacher URL --mode problems --n 50
Writes --out (JSONL in our problem schema, with `provenance` per row: SFT_DATASET=<out> and
TRAINING_DATASET=<out> read it), <out>.summary.json (kept, rejected by reason, requests, tokens, time) and
<out>.ledger.jsonl (what was asked and decided: running the same command again continues from it).
Training problems only: the eval split is never a source, MultiPL-E files are refused (their licence),
and new problems too close to any evaluation problem are rejected.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from ..data import (
    REPO_ROOT,
    DataError,
    detect_schema,
    load_problems,
    multipl_e_file,
    problem_from_row,
    read_rows,
)
from ..envconf import ConfigError
from ..verifier import OCamlNotFound, Verifier, VerifierConfig
from .common import verifier_version
from .dedup import DuplicateIndex
from .ledger import Ledger, LedgerMismatch
from .problems import run_problems
from .solutions import run_solutions
from .teacher import Teacher, TeacherError, TeacherSettings

MODES = ("solutions", "problems")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m rlvr.synth", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--teacher", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8081/v1"
    )
    ap.add_argument("--model", default=None, help="model name (default: the first the server lists)")
    ap.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="default: OPENAI_API_KEY")
    ap.add_argument("--mode", choices=MODES, default="solutions")
    ap.add_argument(
        "--n",
        type=int,
        default=None,
        help="solutions: samples a problem (8); problems: problems to ask for (20)",
    )
    ap.add_argument("--keep", type=int, default=2, help="solutions: distinct passing answers kept a problem")
    ap.add_argument(
        "--data",
        default="bundled",
        help="solutions: the problems to solve (train split); both: the existing set",
    )
    ap.add_argument("--limit", type=int, default=None, help="solutions: the first N problems only")
    ap.add_argument("--out", type=Path, default=None, help="default: data/synth/<mode>.jsonl")
    ap.add_argument("--merge", action="store_true", help="write the existing set's train problems too")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds for one request")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.n is None:
        args.n = 8 if args.mode == "solutions" else 20
    for name in ("n", "keep", "concurrency", "max_tokens"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    args.out = args.out or REPO_ROOT / "data" / "synth" / f"{args.mode}.jsonl"
    return args


def refuse_multipl_e(source: str) -> None:
    rows, name = read_rows(source)
    if rows and detect_schema(rows[0]) == "multipl-e":
        raise DataError(
            f"{name}: MultiPL-E is for evaluation only (its licence): it cannot be a source of training data"
        )


def evaluation_prompts(existing: list) -> list[tuple[str, str]]:
    """Every evaluation problem we know of: the set's eval split, the bundled eval split (what `make eval`
    and the pipeline hold out by default), and MultiPL-E where it is on disk."""
    out = [(f"eval:{p.id}", p.prompt) for p in existing if p.split == "eval"]
    out += [(f"bundled-eval:{p.id}", p.prompt) for p in load_problems("bundled", split="eval")[0]]
    try:
        mbpp, _ = load_problems(str(multipl_e_file()), on_error="skip")
        out += [(f"multipl-e:{p.id}", p.prompt) for p in mbpp]
    except DataError:
        pass
    return out


def problems_digest(problems: list) -> str:
    """The source's content: decisions made on other prompts or tests are not reused."""
    h = hashlib.sha256()
    for p in problems:
        h.update(json.dumps([p.id, p.prompt, list(p.tests), p.split]).encode())
    return h.hexdigest()[:12]


def train_rows(source: str) -> list[dict]:
    """The source's train rows as written, for --merge (each row's split as the loaders read it)."""
    raw, name = read_rows(source)
    out = []
    for n, row in enumerate(raw, 1):
        if detect_schema(row) == "multipl-e":
            raise DataError(
                f"{name}:{n}: MultiPL-E is for evaluation only: it cannot be merged into training data"
            )
        if problem_from_row(row, f"{name}:{n}").split == "train":
            out.append(row)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        refuse_multipl_e(args.data)
        existing, _ = load_problems(args.data)
        train = [p for p in existing if p.split == "train"]
        settings = TeacherSettings(
            base_url=args.teacher, model=args.model, api_key=args.api_key, temperature=args.temperature,
            top_p=args.top_p, max_tokens=args.max_tokens, concurrency=args.concurrency, retries=args.retries,
            timeout_s=args.timeout,
        )  # fmt: skip
        teacher = Teacher(settings)
        version = verifier_version()
        # what must not change between a run and its continuation (the teacher's address may: a restarted
        # server on another port is the same teacher)
        sampling = {k: v for k, v in teacher.settings.provenance().items() if k != "teacher"}
        header = {
            "mode": args.mode, "data": args.data, "data_digest": problems_digest(existing), "n": args.n,
            "keep": args.keep, "limit": args.limit, **sampling, "verifier": version,
        }  # fmt: skip
        ledger = Ledger(args.out.with_name(args.out.name + ".ledger.jsonl"), header)
        verifier = Verifier(VerifierConfig.from_env())
    except (DataError, ConfigError, TeacherError, LedgerMismatch, OCamlNotFound, ValueError) as e:
        print(f"synth-data: {e}", file=sys.stderr)
        return 2
    if ledger.resumed:
        print(
            f"synth-data: continuing {ledger.path} ({len(ledger.answers)} answers, {len(ledger.decisions)} decided)"
        )
    provenance = {**teacher.settings.provenance(), "verifier": version, "mode": args.mode}
    with verifier:
        if args.mode == "solutions":
            problems = train[: args.limit] if args.limit else train
            rows, tally, left = run_solutions(
                problems, teacher, verifier, ledger, args.n, args.keep, provenance, not args.no_progress
            )
            units = {"problems": len(problems), "eval_problems_skipped": len(existing) - len(train)}
        else:
            index = DuplicateIndex(
                [(f"{p.split}:{p.id}", p.prompt) for p in existing] + evaluation_prompts(existing)
            )
            rows, tally, left = run_problems(
                args.n, train[:2], teacher, verifier, ledger, {p.id for p in existing}, index, provenance,
                not args.no_progress,
            )  # fmt: skip
            units = {"asked_for": args.n}
    teacher.close()
    base = train_rows(args.data) if args.merge else []
    write_jsonl(args.out, base + rows)
    summary = {
        "mode": args.mode, "output": str(args.out), "ledger": str(ledger.path), "merged_with": args.data if args.merge else None,
        **units, "undecided": left, **tally.as_dict(), "teacher": teacher.settings.provenance(), "verifier": version,
    }  # fmt: skip
    args.out.with_name(args.out.name + ".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    rejected = ", ".join(f"{k} {v}" for k, v in summary["rejected"].items()) or "none"
    print(f"synth-data: kept {tally.kept} (rejected: {rejected}); {tally.requests} requests "
          f"({tally.failed_requests} failed, {tally.reused} reused), {tally.prompt_tokens}+{tally.completion_tokens} "
          f"tokens, {summary['seconds']} s -> {args.out}")  # fmt: skip
    if left:
        print(f"synth-data: {left} left undecided (failed requests): run the same command again to continue")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
