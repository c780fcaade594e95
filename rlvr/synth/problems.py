"""New problems from the teacher, kept only when the verifier validates them like the bundled set
(rlvr.validate: the tests compile, the reference scores 1.0, a stub and a constant answer do not pass
every test), their id is new and they are no near-duplicate of an existing or an evaluation problem."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from ..data import DataError, problem_from_row
from ..problems import Problem
from ..validate import validate
from ..verifier import Verifier
from ..verifier.sandbox import SandboxError
from .common import Tally, ask_all
from .dedup import NEAR_DUPLICATE, DuplicateIndex
from .ledger import Ledger
from .teacher import Teacher

TOPICS = (
    "lists and recursion", "folds over lists", "strings and characters", "options and results",
    "binary trees (a variant type)", "association lists and maps", "integer arithmetic and number theory",
    "records", "sorting and searching", "sets of integers (as sorted lists)", "tail recursion with an accumulator",
    "higher-order functions", "pairs and tuples", "run-length encoding and grouping", "simple parsing of strings",
)  # fmt: skip
DIFFICULTY_CYCLE = ("easy", "medium", "hard")

INSTRUCTIONS = """Write one new, original OCaml programming problem as a JSON object with these fields:
- "id": a short snake_case name, unique, made of [a-z0-9_]
- "prompt": an OCaml doc comment (** ... *) describing the function with one or two examples, then the
  signature line alone on the last line, e.g. `let f (xs : int list) : int =`
- "tests": a list of 5 to 8 OCaml boolean expressions that call the function, covering edge cases
- "solution": a correct reference solution, a full definition of the function (`let` or `let rec`)
- "difficulty": "{difficulty}"
- "tags": a list of one to three short topic words
Topic: {topic}. Use only OCaml's standard library. Reply with the JSON object in a ```json block and nothing else.

Two examples of the format:
{examples}"""


def problem_messages(k: int, examples: Sequence[Problem]) -> list[dict[str, str]]:
    """Request k: a topic and a difficulty that vary with k (for diversity), and two examples."""
    shown = "\n".join(
        "```json\n" + json.dumps(
            {"id": p.id, "prompt": p.prompt, "tests": list(p.tests)[:5], "solution": p.solution,
             "difficulty": p.difficulty, "tags": list(p.tags)}, indent=1,
        ) + "\n```"
        for p in examples
    )  # fmt: skip
    text = INSTRUCTIONS.format(
        topic=TOPICS[k % len(TOPICS)], difficulty=DIFFICULTY_CYCLE[k % len(DIFFICULTY_CYCLE)], examples=shown
    )
    return [
        {"role": "system", "content": "You write precise programming exercises."},
        {"role": "user", "content": text},
    ]


def parse_problem(text: str, where: str) -> Problem:
    """The problem in the teacher's answer (a ```json block, or the first {...}), or DataError."""
    m = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.S)
    raw = m.group(1) if m else text[text.find("{") : text.rfind("}") + 1]
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: the answer is not a JSON object ({e.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("tests"), list):
        raise DataError(f"{where}: expected an object with id, prompt, tests (a list), solution")
    row = {**row, "split": "train"}
    if row.get("difficulty") not in DIFFICULTY_CYCLE:
        row.pop("difficulty", None)
    return problem_from_row(row, where, schema="ours")


def reason_of(failures: Sequence[str]) -> str:
    f = failures[0]
    if f.startswith("no signature"):
        return "no_signature"
    if f.startswith("tests do not compile"):
        return "tests_do_not_compile"
    if f.startswith("reference solution scores"):
        return "reference_fails"
    return "tests_do_not_discriminate"


def run_problems(
    count: int,
    examples: Sequence[Problem],
    teacher: Teacher,
    verifier: Verifier,
    ledger: Ledger,
    taken_ids: set[str],
    index: DuplicateIndex,
    provenance: dict[str, Any],
    progress: bool = True,
) -> tuple[list[dict[str, Any]], Tally, int]:
    """Ask for `count` problems; (rows kept, tally, requests left unanswered)."""
    tally = Tally()
    for d in ledger.decisions.values():  # problems accepted by an earlier part of this run
        for row in d["rows"]:
            taken_ids.add(row["id"])
            index.add(row["id"], row["prompt"])

    def decide(key: str) -> None:
        if key in ledger.decisions:
            return
        try:
            p = parse_problem(ledger.answers[key]["text"], key)
        except DataError as e:
            ledger.decide(key, rows=[], rejected=["malformed"], why=str(e))
            return
        if not p.solution:
            ledger.decide(key, rows=[], rejected=["no_reference"], why="no solution field")
            return
        if p.id in taken_ids:
            ledger.decide(key, rows=[], rejected=["duplicate_id"], why=f"id {p.id!r} exists")
            return
        near, similarity = index.closest(p.prompt)
        if similarity >= NEAR_DUPLICATE:
            why = f"prompt {similarity:.2f} similar to {near}"
            ledger.decide(key, rows=[], rejected=["near_duplicate"], why=why)
            return
        try:
            failures = validate([p], verifier)[0].failures
        except SandboxError as e:  # the sandbox failed, not the problem: the next run decides it
            print(f"synth-data: {key}: not validated now ({e})", file=sys.stderr)
            return
        if any("infra_error" in f for f in failures):
            return
        if failures:
            ledger.decide(key, rows=[], rejected=[reason_of(failures)], why=failures[0])
            return
        taken_ids.add(p.id)
        index.add(p.id, p.prompt)
        row = {
            "id": p.id, "prompt": p.prompt, "tests": list(p.tests), "solution": p.solution,
            "difficulty": p.difficulty, "tags": list(p.tags), "split": "train",
            "provenance": {**provenance, "request": key,
                           "tokens": {"prompt": ledger.answers[key].get("prompt_tokens"),
                                      "completion": ledger.answers[key].get("completion_tokens")}},
        }  # fmt: skip
        ledger.decide(key, rows=[row], rejected=[])

    requests = [(f"new#{k}", problem_messages(k, examples), k) for k in range(count)]
    ask_all(teacher, ledger, requests, tally, decide, progress)
    rows = []
    for key, _, _ in requests:
        d = ledger.decisions.get(key)
        if d:
            rows += d["rows"]
            tally.kept += len(d["rows"])
            tally.rejected.update(d["rejected"])
    return rows, tally, sum(key not in ledger.decisions for key, _, _ in requests)
