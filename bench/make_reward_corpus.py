"""Write bench/reward_corpus.jsonl: a fixed mix of completions for `make bench-reward`.

The corpus imitates the completions of early GRPO training (many failures): reference solutions from
the project's problems (passes), mutations of them (wrong constants or operators -> partial passes;
inserted ill-typed expressions -> type errors; deleted parentheses or truncated generations -> syntax
errors), stubs that raise, a few non-terminating answers, and prose without code. Each row is
self-contained: `{"problem": {id, prompt, tests}, "completion", "kind", "stage"}`.

Every candidate is scored by the real verifier while the corpus is built; its `kind` is the class of
that verdict (`classify`: a constant mutation that still passes every test is a "pass", not a
"partial"), and it is kept only while that kind is under its quota (`MIX`), so the mix is what `MIX`
says. `stage` records the verifier's stage.

The output is committed: the benchmark must not change when data/ does. Rebuild it only on purpose:

    PYTHONPATH=. .venv/bin/python bench/make_reward_corpus.py [--out bench/reward_corpus.jsonl]

It is deterministic for a given data/ocaml_problems.jsonl and verifier (seeded choices, sorted inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rlvr.problems import Problem
from rlvr.verifier import Outcome, Verifier, VerifierConfig
from rlvr.verifier.extract import extract_code

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240611
GROUP = 8  # completions per problem, as in a GRPO group
PROBLEMS = 72  # 72 x 8 = 576 completions
# kind -> share of the corpus. Early training: a fifth pass, most of the rest fail somewhere.
MIX = {
    "pass": 0.20,
    "partial": 0.25,
    "wrong": 0.03,  # compiles, fails every test
    "exception": 0.05,  # stubs and answers that raise
    "type_error": 0.25,
    "syntax_error": 0.15,
    "link_error": 0.02,  # type-checks against a library that is not linked (Unix, Str)
    "stack_overflow": 0.01,  # unbounded non-tail recursion: fails fast
    "loop": 0.01,  # never terminates: costs the whole test budget
    "no_code": 0.03,  # prose or an empty fence
}


def classify(o: Outcome) -> str:
    """The kind a verifier verdict belongs to (the corpus keeps only rows whose kind is under quota)."""
    if o.stage == "test_failure":
        if "Stack overflow" in (o.error or ""):
            return "stack_overflow"
        if o.tests_passed == 0:
            return "exception" if " raised " in (o.error or "") else "wrong"
        return "partial"
    return {
        "pass": "pass",
        "type_error": "type_error",
        "syntax_error": "syntax_error",
        "compile_error": "link_error",
        "timeout": "loop",
        "empty": "no_code",
    }.get(o.stage, o.stage)


NOTES = ["", "", "straightforward", "one pass", "uses the standard library", "recursive", "linear time"]
PROSE = [
    "Here is an implementation:",
    "Sure! Here's the OCaml code:",
    "We can solve this recursively.",
    "The idea is to walk the input once.",
    "",
]
AFTER = [
    "",
    "",
    "This runs in linear time.",
    "The helper keeps an accumulator so the recursion is tail-recursive and works on long lists.",
]


def load_problems() -> list[dict]:
    """The project's problems that have a reference solution, sorted by id."""
    rows = []
    with open(ROOT / "data" / "ocaml_problems.jsonl") as f:
        rows += [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("solution") and r.get("tests")]
    return sorted(rows, key=lambda r: r["id"])


def signature_line(prompt: str) -> str:
    """The last line of the prompt that starts with `let` (the problem's signature)."""
    return [ln for ln in prompt.split("\n") if ln.startswith("let")][-1]


def wrap(rng: random.Random, code: str) -> str:
    """Present code the way a model would: fenced with or without prose, or bare."""
    r = rng.random()
    if r < 0.45:
        return f"```ocaml\n{code}\n```"
    if r < 0.8:
        return f"{rng.choice(PROSE)}\n\n```ocaml\n{code}\n```\n\n{rng.choice(AFTER)}".strip()
    return code


def as_body(solution: str, prompt: str) -> str | None:
    """The solution without its signature line (a body-only answer), when it starts with it."""
    sig = signature_line(prompt).strip()
    first, _, rest = solution.partition("\n")
    if first.strip() == sig and rest.strip():
        return rest
    return None


# -- mutations (each returns None when it does not apply) ------------------------------------------

_INT = re.compile(r"(?<![A-Za-z0-9_'.])(\d+)(?![A-Za-z0-9_.])")
_OPS = [(" + ", " - "), (" - ", " + "), (" < ", " <= "), (" <= ", " < "), (" > ", " >= "), (" >= ", " > ")]
_OPS += [(" && ", " || "), (" || ", " && "), (" * ", " + "), ("true", "false"), ("false", "true")]


def _code_spans(code: str) -> list[tuple[int, int]]:
    """Spans of `code` outside string literals and comments (mutations stay out of literals)."""
    spans, i, start, n = [], 0, 0, len(code)
    while i < n:
        if code[i] == '"' or code.startswith("(*", i):
            spans.append((start, i))
            end = code.find('"', i + 1) if code[i] == '"' else code.find("*)", i + 2)
            i = n if end < 0 else end + (1 if code[i] == '"' else 2)
            start = i
        else:
            i += 1
    spans.append((start, n))
    return spans


def _in_code(code: str, pos: int) -> bool:
    return any(a <= pos < b for a, b in _code_spans(code))


def _body_start(code: str) -> int:
    """Offset just after the first line (the definition's head), so mutations hit the body."""
    nl = code.find("\n")
    return nl + 1 if nl >= 0 else 0


def wrong_constant(rng: random.Random, code: str) -> str | None:
    hits = [m for m in _INT.finditer(code, _body_start(code)) if _in_code(code, m.start())]
    if not hits:
        return None
    m = rng.choice(hits)
    new = str(int(m.group(1)) + rng.choice([1, -1, 2])) if m.group(1) != "0" else "1"
    return code[: m.start()] + new + code[m.end() :]


def wrong_operator(rng: random.Random, code: str) -> str | None:
    hits = [
        (m.start(), a, b)
        for a, b in _OPS
        for m in re.finditer(re.escape(a), code[_body_start(code) :])
        if _in_code(code, m.start() + _body_start(code))
    ]
    if not hits:
        return None
    pos, a, b = rng.choice(hits)
    pos += _body_start(code)
    return code[:pos] + b + code[pos + len(a) :]


def ill_typed(rng: random.Random, code: str) -> str | None:
    """Insert an ill-typed expression or a common model mistake."""
    choice = rng.randrange(6)
    if choice == 0:  # an int where a string is expected, or vice versa
        hits = [m for m in _INT.finditer(code, _body_start(code)) if _in_code(code, m.start())]
        if not hits:
            return None
        m = rng.choice(hits)
        return code[: m.start()] + f'"{m.group(1)}"' + code[m.end() :]
    if choice == 1:  # a misremembered library function
        for a, b in [
            ("List.fold_left", "List.fold"),
            ("String.length", "String.size"),
            ("List.length", "List.len"),
            ("List.rev", "List.reverse"),
            ("String.concat", "String.join"),
            ("List.iter", "List.for_each"),
            ("Hashtbl.find_opt", "Hashtbl.get"),
        ]:
            if a in code:
                return code.replace(a, b, 1)
        return None
    if choice == 2:  # a helper with a type error in front of a correct answer
        return f'let helper x = x + "1"\n\n{code}'
    if choice == 3:  # several independent bad helpers (exercises error counting)
        k = rng.randint(2, 4)
        bad = [f"let aux{i} s = s ^ {i}" for i in range(k)]
        return "\n".join(bad) + "\n\n" + code
    if choice == 4:  # float arithmetic on ints
        if " + " in code[_body_start(code) :]:
            pos = code.index(" + ", _body_start(code))
            return code[:pos] + " +. " + code[pos + 3 :]
        return None
    # wrong result type at the end of the body
    lines = code.rstrip().split("\n")
    lines[-1] = lines[-1] + " |> string_of_int"
    return "\n".join(lines)


def syntax_break(rng: random.Random, code: str) -> str | None:
    choice = rng.randrange(3)
    if choice == 0:  # delete a closing parenthesis
        hits = [i for i, c in enumerate(code) if c == ")" and _in_code(code, i)]
        if not hits:
            return None
        i = rng.choice(hits)
        return code[:i] + code[i + 1 :]
    if choice == 1:  # delete an `in`
        hits = [m.start() for m in re.finditer(r"\bin\b", code) if _in_code(code, m.start())]
        if not hits:
            return None
        i = rng.choice(hits)
        return code[:i] + code[i + 2 :]
    # truncated generation: cut somewhere in the second half
    cut = rng.randrange(len(code) // 2, max(len(code) // 2 + 1, len(code) - 3))
    return code[:cut]


STUBS = [
    'failwith "TODO"',
    "raise Not_found",
    "assert false",
    'invalid_arg "not implemented"',
    'ignore (List.hd []);\n  failwith "unreachable"',
]


def candidates(rng: random.Random, kind: str, row: dict) -> str | None:
    """One candidate completion of `kind` for the problem, or None."""
    sol, prompt = row["solution"], row["prompt"]
    name = re.match(r"let(?:\s+rec)?\s+([A-Za-z_][A-Za-z0-9_']*)", signature_line(prompt)).group(1)
    if kind == "pass":
        body = as_body(sol, prompt)
        code = body if (body and rng.random() < 0.35) else sol
        note = rng.choice(NOTES)
        if note and not code.startswith("let"):
            code = f"(* {note} *)\n{code}"  # a body: the comment goes under the signature
        elif note:
            code = f"(* {name}: {note} *)\n{code}"
        return wrap(rng, code)
    if kind in ("partial", "wrong"):
        mut = wrong_constant if rng.random() < 0.5 else wrong_operator
        code = mut(rng, sol)
        if code and kind == "wrong" and rng.random() < 0.5:
            code = mut(rng, code)
        return wrap(rng, code) if code else None
    if kind == "exception":  # a body-only stub: it goes under the problem's signature
        return wrap(rng, rng.choice(STUBS))
    if kind == "type_error":
        code = ill_typed(rng, sol)
        return wrap(rng, code) if code else None
    if kind == "syntax_error":
        code = syntax_break(rng, sol)
        if code is None:
            return None
        if rng.random() < 0.4:  # a truncated generation leaves its fence open
            return f"```ocaml\n{code}"
        return wrap(rng, code)
    if kind == "link_error":
        extra = rng.choice(["ignore (Unix.getpid ());", 'ignore (Str.regexp "a");'])
        return wrap(rng, f"let () = {extra[:-1]}\n{sol}")
    if kind == "stack_overflow":  # bodies: unbounded non-tail recursion
        return wrap(
            rng,
            rng.choice(
                [
                    'let rec go n = 1 + go (n + 1) in\nignore (go 0);\nfailwith "unreachable"',
                    "let rec deep l = 1 + deep (0 :: l) in\nignore (deep []);\nassert false",
                ]
            ),
        )
    if kind == "loop":  # bodies that never terminate
        return wrap(
            rng,
            rng.choice(
                ["let rec spin n = spin (n + 1) in\nspin 0", 'while true do () done;\nfailwith "unreachable"']
            ),
        )
    if kind == "no_code":
        return rng.choice(
            [
                "I'm not sure how to solve this problem.",
                "```ocaml\n```",
                f"To implement `{name}`, iterate over the input and accumulate the result.",
                "",
            ]
        )
    raise ValueError(kind)


def build(out: Path, verbose: bool = True) -> Counter:
    """Write the corpus to `out`; returns the count of rows per kind."""
    rng = random.Random(SEED)
    problems = load_problems()
    chosen = sorted(rng.sample(problems, PROBLEMS), key=lambda r: r["id"])
    total = PROBLEMS * GROUP
    left = Counter({k: round(share * total) for k, share in MIX.items()})
    left["partial"] += total - sum(left.values())
    rows, made = [], Counter()
    with Verifier(VerifierConfig()) as verifier:
        for p_idx, row in enumerate(chosen):
            problem = Problem(id=row["id"], prompt=row["prompt"], tests=tuple(row["tests"]))
            # Distinct code per problem: the verifier scores an identical (problem, code) pair once per
            # batch, and the benchmark is about the work each completion needs.
            seen: set[str] = set()
            for _slot in range(GROUP):
                wanted = rng.choices(sorted(left), weights=[left[k] for k in sorted(left)])[0]
                for _attempt in range(15):
                    text = candidates(rng, wanted, row)
                    if text is None or extract_code(text).code in seen:
                        continue
                    o = verifier.score(problem, text)
                    if left[classify(o)] > 0:  # a mutation may land in another kind: keep it if needed
                        break
                else:  # this problem does not give that kind: take one that always can be made
                    for fallback in ("syntax_error", "type_error", "exception", "pass"):
                        text = candidates(rng, fallback, row)
                        if text is None or extract_code(text).code in seen:
                            continue
                        o = verifier.score(problem, text)
                        if left[classify(o)] > 0 or fallback == "pass":
                            break
                kind = classify(o)
                left[kind] -= 1
                seen.add(extract_code(text).code)
                made[kind] += 1
                rows.append(
                    {
                        "problem": {"id": row["id"], "prompt": row["prompt"], "tests": row["tests"]},
                        "completion": text,
                        "kind": kind,
                        "stage": o.stage,
                    }
                )
            if verbose:
                print(f"{p_idx + 1}/{PROBLEMS} {row['id']} {dict(+left)}", file=sys.stderr)
    with open(out, "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "reward_corpus.jsonl"))
    args = ap.parse_args()
    made = build(Path(args.out))
    size = os.path.getsize(args.out)
    print(
        f"wrote {sum(made.values())} rows ({size / 1e6:.2f} MB) to {args.out}: {dict(sorted(made.items()))}"
    )


if __name__ == "__main__":
    main()
