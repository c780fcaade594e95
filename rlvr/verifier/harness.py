"""Assemble the files that are compiled for one completion, and read back what the tests reported.

Three compilation units, compiled and linked in this order by one `ocamlc` call:
1. `<nonce unit>` (written once per verifier): reads "<nonce> <first-index>" from stdin and deletes the
   program file, before any candidate code runs. The candidate cannot learn the nonce: stdin is already
   consumed, the nonce is not in any file, and the unit's name is random.
2. `candidate.ml`: the problem's prefix (types, modules) + the completion (body under the signature, or
   the completion's own full definition). Compiled first and alone: it sees none of the tests.
3. `tests.ml`: written here. It captures the real Stdlib under a random alias *before* opening the
   candidate (whose types and constructors the tests may need), re-opens the real Stdlib after it, and
   binds only the problem's function name from the candidate. A candidate that redefines `(=)`,
   `Printf`, `Stdlib` or `assert` changes nothing here. Each assertion runs on its own, inside a handler
   that catches every exception, and reports `<nonce> <i> start` then `<nonce> <i> pass|fail|exn ...`;
   after the last one, `<nonce> -1 done <CPU seconds the program used>`. A test after which the stack limit (OCAMLRUNPARAM=l, set by
   the verifier) is not what it was when the program started fails: the tail-recursion tests depend on it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from .ocaml_source import Signature, defines_name


def assemble_candidate(sig: Signature, code: str) -> tuple[str, bool, int]:
    """Return (candidate source, whether the code was a full definition, line offset of the code).

    A completion that defines the function itself (`let [rec] name ...`) is taken as a full definition;
    anything else is the body and goes under the problem's signature. The problem's prefix (its types,
    exceptions, modules) comes first inside `include struct ... end`, so that an answer which repeats
    those definitions shadows them instead of being rejected as a duplicate definition.
    """
    prefix = f"include struct\n{sig.prefix}\nend\n" if sig.prefix.strip() else ""
    if defines_name(code, sig.name):
        return prefix + code + "\n", True, prefix.count("\n")
    head = prefix + sig.line + "\n"
    return head + code + "\n", False, head.count("\n")


@dataclass(frozen=True)
class HarnessNames:
    """Random names used by one verifier instance's harness; the candidate cannot guess them."""

    nonce_unit: str  # compilation unit name of the nonce reader (file <lowercase>.ml)
    stdlib_alias: str
    helper_module: str

    @staticmethod
    def fresh() -> HarnessNames:
        tag = secrets.token_hex(6)
        return HarnessNames(f"Nonce_{tag}", f"Stdlib_{tag}", f"Harness_{tag}")


# What a test reports when the candidate raised the stack limit (Gc.set) that the tail-recursion tests
# rely on: a failure of that test.
STACK_CHANGED = "exn the answer changed the stack limit (Gc.stack_limit)"

# The test program's minor heap, in words (16 MiB; OCaml's default is 256 Ki words, 2 MiB): the
# tests that build lists of a million elements spend a quarter less CPU time in the garbage collector.
# Set by the nonce unit before any candidate code runs; the address-space limit is unchanged.
MINOR_HEAP_WORDS = 2 * 1024 * 1024


def nonce_unit_source() -> str:
    """The first unit linked: consumes stdin and removes the program file before the candidate runs."""
    return (
        "let nonce, start =\n"
        '  try Scanf.sscanf (input_line stdin) "%s %d" (fun a b -> (a, b))\n'
        '  with _ -> ("", max_int)\n'
        "let () = try Sys.remove Sys.executable_name with _ -> ()\n"
        f"let () = Gc.set {{ (Gc.get ()) with Gc.minor_heap_size = {MINOR_HEAP_WORDS} }}\n"
        "let stack_limit = (Gc.get ()).Gc.stack_limit\n"
        'let () = print_string ("\\n" ^ nonce ^ " -1 ready\\n"); flush stdout\n'
    )


def tests_source(names: HarnessNames, function_names: list[str], tests: list[str]) -> str:
    """The tests unit: each boolean test expression wrapped so that it runs and reports on its own."""
    s, h, n = names.stdlib_alias, names.helper_module, names.nonce_unit
    out = [
        f"module {s} = Stdlib",
        f"module {h} = struct",
        f"  let nonce = {n}.nonce",
        f"  let start = {n}.start",
        "  let report i what =",
        '    print_string ("\\n" ^ nonce ^ " " ^ string_of_int i ^ " " ^ what ^ "\\n");',
        "    flush stdout",
        "  let run i (t : unit -> bool) =",
        "    if i >= start then begin",
        '      report i "start";',
        "      let verdict =",
        '        match t () with true -> "pass" | false -> "fail"',
        '        | exception e -> "exn " ^ String.escaped (Printexc.to_string e)',
        "      in",
        f"      if (Gc.get ()).Gc.stack_limit <> {n}.stack_limit then",
        f'        report i "{STACK_CHANGED}"',
        "      else report i verdict",
        "    end",
        '  let finish () = report (-1) ("done " ^ Printf.sprintf "%.6f" (Sys.time ()))',
        "end",
        "open! Candidate",
        f"open! {s}",
    ]
    out += [f"let {fn} = Candidate.{fn}" for fn in function_names]
    for i, expr in enumerate(tests):
        out.append(f"let () = {h}.run {i} (fun () -> (\n{expr}\n : bool))")
    out.append(f"let () = {h}.finish ()")
    return "\n".join(out) + "\n"


def test_at_line(names: HarnessNames, function_names: list[str], tests: list[str], line: int) -> int | None:
    """The index of the test whose code holds `line` (1-based) of the tests unit, None for the header."""
    found = None
    for n, text in enumerate(tests_source(names, function_names, tests).split("\n"), start=1):
        if n > line:
            break
        m = re.match(rf"let \(\) = {names.helper_module}\.run (\d+) ", text)
        if m:
            found = int(m.group(1))
    return found


@dataclass
class TestReport:
    """What one run of the test program reported, read through the nonce."""

    verdicts: dict[int, str]  # index -> "pass" | "fail" | "exn <text>"
    started: int | None  # index started but never finished, if any
    done: bool
    tampered: bool  # an index reported twice, or out of range
    ready: bool  # the program started (the nonce unit ran)
    cpu_s: float | None = None  # the program's own CPU time (Sys.time), reported with `done`


_MARK = re.compile(
    r"(?:^|\s)(?P<nonce>[0-9a-f]{32}) (?P<i>-?\d+) (?P<what>start|pass|fail|done(?: [0-9.]+)?|ready|exn.*)$"
)


def read_report(marker_lines: list[str], nonce: str, total: int, start: int) -> TestReport:
    """Parse marker lines; only lines carrying this run's nonce count."""
    verdicts: dict[int, str] = {}
    started: set[int] = set()
    done = tampered = ready = False
    cpu_s: float | None = None
    for line in marker_lines:
        m = _MARK.search(line)
        if not m or m.group("nonce") != nonce:
            continue
        i, what = int(m.group("i")), m.group("what")
        if what == "ready" and i == -1:
            tampered |= ready
            ready = True
        elif what.startswith("done") and i == -1:
            done = True
            try:
                cpu_s = float(what[5:]) if len(what) > 5 else None
            except ValueError:
                tampered = True
        elif what == "start" and start <= i < total:
            if i in started:
                tampered = True
            started.add(i)
        elif start <= i < total and i in started:
            if i in verdicts:
                tampered = True
            verdicts[i] = what
        else:
            tampered = True
    pending = [i for i in started if i not in verdicts]
    return TestReport(verdicts, max(pending) if pending else None, done, tampered, ready, cpu_s)
