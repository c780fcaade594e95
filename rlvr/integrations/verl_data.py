"""Any problem set the loaders read, as verl's RL parquet: `python -m rlvr.integrations.verl_data
--data <bundled|file|hub id> --split train --out <file.parquet>` (`make verl-data`).

One row per problem, in the layout verl's RLHFDataset reads:
  data_source   "ocamler-grpo"  (verl's reward managers key on it; our reward ignores it)
  prompt        the chat messages the project trains and evaluates with (rlvr.prompts.build_messages)
  ability       "coding.ocaml"
  reward_model  {"style": "rule", "ground_truth": <the problem as JSON: prompt, tests, reference>}
  extra_info    {"index", "problem_id", "split", "difficulty"}
  problem_id    the id again, as a column of its own: OpenRLHF's `--label_key problem_id` on the same file
MultiPL-E files are for evaluation only (their licence): they convert for `--split eval`, never train.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..data import DataError, detect_schema, load_problems, read_rows
from ..problems import Problem
from ..prompts import build_messages
from ..service.wire import problem_to_wire

DATA_SOURCE = "ocamler-grpo"


def verl_row(problem: Problem, index: int) -> dict[str, Any]:
    return {
        "data_source": DATA_SOURCE,
        "prompt": build_messages(problem),
        "ability": "coding.ocaml",
        "problem_id": problem.id,  # OpenRLHF's --label_key (it reads the same file)
        "reward_model": {"style": "rule", "ground_truth": json.dumps(problem_to_wire(problem))},
        "extra_info": {
            "index": index,
            "problem_id": problem.id,
            "split": problem.split,
            "difficulty": problem.difficulty or "",
        },
    }


def convert(source: str, split: str | None, out: Path) -> int:
    """Write `source`'s problems (of `split`, or all) to `out`; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, name = read_rows(source)
    if rows and detect_schema(rows[0]) == "multipl-e" and split != "eval":
        raise DataError(
            f"{name}: MultiPL-E is for evaluation only (its licence): convert it with --split eval"
        )
    problems, _ = load_problems(source, split=split)
    if not problems:
        raise DataError(f"{name}: no problems in split {split!r}")
    table = pa.Table.from_pylist([verl_row(p, n) for n, p in enumerate(problems)])
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return len(problems)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m rlvr.integrations.verl_data", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--data", default="bundled", help="problem set: bundled, a .jsonl/.csv/.parquet file or a hub id"
    )
    ap.add_argument("--split", choices=["train", "eval", "all"], default="train")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        n = convert(args.data, None if args.split == "all" else args.split, args.out)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {n} problems ({args.split}) in verl's layout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
