"""What a model reads after checking a candidate: the verifier's Check as an OCaml programmer sees it.

A compile error reads as `ocamlc` prints it (location, source excerpt with carets, message), with
lines numbered from the first line of the model's own code, not of the file the harness assembled.
A candidate that compiles reads "compiles", then, when examples ran, which of the problem's visible
examples failed and how. The check problem holds only what the model may see (the signature and the
doc comment's examples: rlvr.environment.check_problem), so nothing here can tell of hidden tests.
Every text is cut to a byte budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .verifier import Check

# the first test of a check problem is the signature's type test (rlvr.environment); examples follow it
SIGNATURE_TEST = 0

_HEADER = re.compile(r'^File "candidate\.ml", line(s?) (\d+)(?:-(\d+))?(.*)$')
_EXCERPT = re.compile(r"^(\d+) \|")
_TESTS_HEADER = re.compile(r'^File "tests\.ml".*$')
CUT = "\n... (cut)"


def renumber(block: str, offset: int) -> str:
    """The compiler's report on candidate.ml with lines counted from the model's code (`offset` lines
    of the problem's own code come before it) and no file name: `Line 3, characters 2-5:`."""
    out = []
    for line in block.split("\n"):
        m = _HEADER.match(line)
        if m:
            first = int(m.group(2)) - offset
            if first < 1:
                out.append("In the problem's own code (before your answer)" + m.group(4))
                continue
            span = f"{first}-{int(m.group(3)) - offset}" if m.group(3) else str(first)
            out.append(f"Line{m.group(1)} {span}{m.group(4)}")
            continue
        e = _EXCERPT.match(line)
        if e and int(e.group(1)) > offset:
            number = str(int(e.group(1)) - offset)
            # keep the carets under the code: the excerpt's margin is the number's width + " | "
            out.append(number.rjust(len(e.group(1))) + line[len(e.group(1)) :])
            continue
        out.append(line)
    return "\n".join(out)


def error_message(block: str) -> str:
    """The `Error: ...` part of a report (without location and excerpt)."""
    lines = block.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("Error")), 0)
    return "\n".join(lines[start:])


_ESCAPE = re.compile(r'\\(["\\\'ntbr ]|\d{3})')
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "r": "\r"}


def unescape(text: str) -> str:
    """Undo OCaml's String.escaped (how the harness reports an exception)."""

    def one(m: re.Match) -> str:
        c = m.group(1)
        return chr(int(c)) if c.isdigit() else _ESCAPES.get(c, c)

    return _ESCAPE.sub(one, text)


def describe_verdict(verdict: str | None) -> str:
    if verdict is None:
        return "was not run (the time for this check ran out)"
    if verdict == "fail":
        return "is false"
    if verdict == "timeout":
        return "timed out"
    if verdict.startswith("exn "):
        return "raised " + unescape(verdict[4:])
    if verdict == "startup":
        return "never ran: the program stopped before the examples started"
    return "stopped the program (" + verdict.split(" ", 1)[0] + ")"


def render(check: Check, examples: Sequence[str], run_examples: bool, function: str) -> str:
    """The text for `check` of an answer to a problem whose check problem had the signature test and
    `examples`; `run_examples` False reports the compile verdict only."""
    o = check.outcome
    if o.stage == "infra_error":
        return "The checker could not run this time (an infrastructure failure, not your code): check again."
    if o.stage == "empty":
        return "There is no code to check: pass your whole answer (the OCaml definition) as `code`."
    if check.diagnostic_file == "candidate.ml" and check.diagnostic:
        text = renumber(check.diagnostic, check.code_line_offset)
        if o.type_errors > 1:
            more = "10 or more" if o.type_errors >= 10 else str(o.type_errors)
            text += f"\n({more} independent type errors in all; this is the first.)"
        return text
    if check.diagnostic_file == "tests.ml" and check.diagnostic and o.stage == "type_error":
        message = error_message(check.diagnostic)
        test = check.error_test
        if test is None or test == SIGNATURE_TEST or test - 1 >= len(examples):
            return (
                f"Your code compiles on its own, but `{function}` does not have the type the problem's "
                f"signature asks for:\n{message}"
            )
        return (
            f"Your code compiles on its own, but the problem's example `{examples[test - 1]}` does not "
            f"type-check with it:\n{message}"
        )
    if o.stage == "compile_error":
        return "Your code type-checks, but it does not build: " + (o.error or "the compiler failed")
    if o.stage == "timeout" and not check.test_verdicts:
        return "Compiling your code took too long (the compiler was stopped)."
    verdicts = list(check.test_verdicts)
    if not verdicts:  # built, but the harness refused to run it (rlvr.verifier: runtime tampering, forgery)
        return "Your code compiles, but it was not run: " + (o.error or "the program could not run")
    startup = bool(verdicts) and verdicts[SIGNATURE_TEST] == "startup"
    if startup:
        return (
            "Your code compiles, but the program stopped before any example ran (at module initialisation)."
        )
    if not run_examples:
        return "Your code compiles (it type-checks against the signature and builds)."
    if not examples:
        return "Your code compiles. The problem states no examples to run."
    shown = verdicts[1 : 1 + len(examples)]
    shown += [None] * (len(examples) - len(shown))
    failed = [(e, v) for e, v in zip(examples, shown) if v != "pass"]
    if not failed:
        return f"Your code compiles, and all {len(examples)} of the problem's examples hold."
    verb = "does" if len(failed) == 1 else "do"
    lines = [
        f"Your code compiles, but {len(failed)} of the problem's {len(examples)} examples {verb} not hold:"
    ]
    lines += [f"- `{e}` {describe_verdict(v)}" for e, v in failed]
    return "\n".join(lines)


def clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes (at a character boundary, marked as cut)."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    keep = max(0, max_bytes - len(CUT.encode()))
    return data[:keep].decode(errors="ignore") + CUT
