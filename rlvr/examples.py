"""The examples a problem's prompt states in its comments, as OCaml boolean expressions.

A multi-turn environment lets a model run these *visible* examples against its answer (never the
hidden `tests`). `doc_examples` finds them in the text; `visible_examples` keeps those that compile
against the signature and that the reference solution passes.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import weakref

from .problems import Problem
from .verifier.ocaml_source import SignatureError, strip_comments
from .verifier.sandbox import SandboxError

MAX_EXAMPLES = 8

_OPS = r"!$%&*+\-./:<=>?@^|~"
_EQUALS = re.compile(rf"(?<![{_OPS}])=(?![{_OPS}])")
_ARROW = re.compile(rf"(?<![{_OPS}])(?:==>|=>|->)(?![{_OPS}])|\s(?:returns|evaluates to|gives)\s")
_BINDS_ARROWS = re.compile(r"\b(?:fun|function|match|try|let)\b")
_CHAR = re.compile(r"'(?:[^\\']|\\(?:[\\'\"ntbr ]|[0-9]{3}|x[0-9a-fA-F]{2}|o[0-3][0-7]{2}))'")
_LEAD = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+)?")
_MARKER = re.compile(r"(?i)\b(?:examples?|e\.g\.|for (?:example|instance))\s*[:,]?\s*")
_BLOCK = re.compile(r"\{\[(.*?)\]\}|\{v(.*?)v\}", re.S)
_TOPLEVEL_IN = re.compile(r"^\s*(?:utop\s*(?:\[\d+\])?\s*)?#\s+(.*)$")
_TOPLEVEL_OUT = re.compile(r"^\s*-\s*:\s*.*?\s=\s(.*)$", re.S)
_DOCTEST_IN = re.compile(r"^\s*>>>\s*(.*)$")
_BINDING = re.compile(rf"^\s*(?:let\s+)?([a-z_][\w']*)\s*=(?![{_OPS}])")
_SEPARATOR = re.compile(r"[,;]|(?<!\d)\.(?=\s+[\[A-Z\0])")  # `,` `;` and the end of a sentence
_LOWER_WORD = re.compile(r"(?<![\w'.~?])[a-z_][\w']*(?![\w']|\s*=(?!=))")
_CONSTANTS = {"true", "false", "max_int", "min_int", "infinity", "neg_infinity", "nan", "not", "ref"}
_BINDER = re.compile(r"\b(?:with|for|let|where)\s*$")


def doc_examples(problem: Problem) -> tuple[str, ...]:
    """The examples stated in the prompt's comments, as OCaml boolean expressions, in order and
    without duplicates (at most MAX_EXAMPLES). Pure text: nothing is compiled, so an example may
    still be ill-typed or wrong (`visible_examples` checks them). () when the prompt states none."""
    try:
        name = problem.signature.name
        line = problem.signature.line
    except SignatureError:
        return ()
    prompt = problem.prompt.rstrip()
    # strip_comments keeps every offset, so the signature (code) is found there and cut off here.
    cut = strip_comments(prompt).rfind(line)
    found: list[tuple[int, int, str]] = []
    for c, body in enumerate(_comments(prompt[: cut if cut >= 0 else len(prompt)])):
        blocks = [
            (m.start(), m.group(1) if m.group(1) is not None else m.group(2)) for m in _BLOCK.finditer(body)
        ]
        prose = _BLOCK.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), body)
        here, bindings = _span_examples(prose, name)
        here += _line_examples(prose, name, equations=False)
        for start, text in blocks:
            here += [(start + pos, e) for pos, e in _line_examples(text, name, equations=True)]
        for pos, expr in sorted(here):
            bound = set()
            for bpos, var, value in reversed(bindings):  # the latest binding of a name before the example
                if bpos < pos and var not in bound and _mentions(expr, var):
                    expr, bound = f"let {var} = {value} in {expr}", bound | {var}
            found.append((c, pos, expr))
    out: dict[str, str] = {}
    for _c, _pos, expr in sorted(found):
        if "..." not in _mask(expr, nested=False):  # "[x1; x2; ...]" is notation, not OCaml
            out.setdefault(_squash(expr), _squash(expr))
    return tuple(out.values())[:MAX_EXAMPLES]


_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def visible_examples(problem: Problem, verifier) -> tuple[str, ...]:
    """The `doc_examples` that are safe to run a model's answer against: each compiles against the
    problem's signature and, when the problem has a reference solution, the reference passes it (a
    wrong example would mislead the model). Cached per verifier and (id, prompt, solution);
    SandboxError propagates and is not cached."""
    key = (problem.id, problem.prompt, problem.solution)
    with _cache_lock:
        hit = _cache.get(verifier, {}).get(key)
    if hit is not None:
        return hit
    examples = _type_checked(problem, verifier, doc_examples(problem))
    if examples and problem.solution:
        [check] = verifier.check_batch([(dataclasses.replace(problem, tests=examples), problem.solution)])
        if check.outcome.stage == "infra_error":
            raise SandboxError(f"checking the examples of {problem.id!r}: {check.outcome.error}")
        examples = tuple(e for e, v in zip(examples, check.test_verdicts) if v == "pass")
    with _cache_lock:
        _cache.setdefault(verifier, {})[key] = examples
    return examples


def _type_checked(problem: Problem, verifier, examples: tuple[str, ...]) -> tuple[str, ...]:
    def ok(tests: tuple[str, ...]) -> bool:
        return verifier.check_problem(dataclasses.replace(problem, tests=tests, solution=None)) is None

    if not examples or ok(examples):
        return examples
    return tuple(e for e in examples if ok((e,))) if len(examples) > 1 else ()


# -- text -----------------------------------------------------------------------------------------


def _literal_end(s: str, i: int) -> int:
    """The end of the string or char literal starting at s[i], or i if none starts there."""
    if s[i] == '"':
        j = i + 1
        while j < len(s) and s[j] != '"':
            j += 2 if s[j] == "\\" else 1
        return min(j + 1, len(s))
    m = _CHAR.match(s, i) if s[i] == "'" else None
    return m.end() if m else i


def _comments(src: str) -> list[str]:
    """The bodies of the outermost comments of `src`, without their `(*`, `*`, `*)` markers."""
    bodies, i, depth, start = [], 0, 0, 0
    while i < len(src):
        if src.startswith("(*", i):
            depth, i = depth + 1, i + 2
            start = i if depth == 1 else start
        elif depth and src.startswith("*)", i):
            depth, i = depth - 1, i + 2
            if not depth:
                bodies.append(re.sub(r"(?m)^[ \t]*\*(?=[ \t]|$)", "", src[start : i - 2].lstrip("*")))
        else:
            i = max(i + 1, _literal_end(src, i))
    return bodies


def _walk(s: str, opens: str = "([{", closes: str = ")]}"):
    """(start, end, depth, is_literal) of each char or literal of `s`; a bracket has the depth
    outside it."""
    depth, i = 0, 0
    while i < len(s):
        if (j := _literal_end(s, i)) > i:
            yield i, j, depth, True
            i = j
            continue
        depth -= s[i] in closes
        yield i, i + 1, depth, False
        depth += s[i] in opens
        i += 1


def _mask(s: str, nested: bool = True) -> str:
    """`s` with its literals blanked and, if `nested`, its brackets and all inside them: what is left
    is its top level."""
    return "".join(
        "\0" * (j - i) if lit or (nested and (d or s[i] in "([{)]}")) else s[i] for i, j, d, lit in _walk(s)
    )


def _span_end(s: str, i: int) -> int:
    """The index of the `]` closing the `[` at s[i] (literals skipped), or -1."""
    return next(
        (i + k for k, _j, d, lit in _walk(s[i:], "[", "]") if s[i + k] == "]" and not d and not lit), -1
    )


def _depth(s: str) -> int:
    """How many brackets `s` leaves open (negative: more closed than opened)."""
    return sum((s[i] in "([{") - (s[i] in ")]}") for i, _j, _d, lit in _walk(s) if not lit)


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w'.]){re.escape(name)}(?![\w'])", text) is not None


def _spans(text: str):
    """(offset, content) of each OCamldoc code span `[...]` of `text`."""
    i = 0
    while (i := text.find("[", i)) >= 0:
        end = _span_end(text, i)
        if end < 0:
            i += 1  # unbalanced (prose like "[0, n)"): not a span
            continue
        yield i, text[i + 1 : end]
        i = end + 1


def _span_examples(text: str, name: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """The code spans `[f x = v]` (or `[f x => v]`) that mention the function, as (offset, example),
    and those that name a value for the examples after them (`with [t = Node ...]`, `with [let s =
    ref []]`), as (offset, variable, value)."""
    examples, bindings = [], []
    for pos, body in _spans(text):
        mask = _mask(body)
        definition = body.lstrip().startswith("let") and not re.search(r"\bin\b", mask)  # no value
        binding = _BINDING.match(body)
        if binding and binding.group(1) != name and _BINDER.search(text[max(0, pos - 12) : pos]):
            if definition or not body.lstrip().startswith("let"):
                bindings.append((pos, binding.group(1), body[binding.end() :].strip()))
        elif _mentions(body, name) and _EQUALS.search(mask) and not definition:
            examples.append((pos, body))
        elif _mentions(body, name) and (arrow := _arrow(body, name)):
            examples.append((pos, arrow))
    return examples, bindings


def _line_examples(text: str, name: str, equations: bool) -> list[tuple[int, str]]:
    """Toplevel transcripts (`# f 1;;` then `- : int = 3`), doctests (`>>> f 1` then `3`), arrow
    lines (`f 1 => 3`, `Example: f 1 -> 3`) and, in code blocks (`equations`), lines `f 1 = 3`."""
    lines, pos = [], 0
    for line in text.split("\n"):
        lines.append((pos, line))
        pos += len(line) + 1
    found, k = [], 0
    while k < len(lines):
        pos, line = lines[k]
        k += 1
        if (m := _TOPLEVEL_IN.match(line)) or (m := _DOCTEST_IN.match(line)):
            phrase = m.group(1)
            while ";;" not in phrase and m.re is _TOPLEVEL_IN and k < len(lines) and phrase.count("\n") < 8:
                phrase, k = phrase + "\n" + lines[k][1], k + 1
            j = k
            while j < len(lines) and not lines[j][1].strip():
                j += 1
            if j == len(lines) or not _mentions(phrase, name):
                continue
            result, after = _balanced(lines, j)
            if out := _TOPLEVEL_OUT.match(result):
                result = out.group(1).strip()
            elif m.re is _TOPLEVEL_IN or _DOCTEST_IN.match(result) or _TOPLEVEL_IN.match(result):
                continue
            result = result.strip()
            if result and not re.search(r"<fun>|<abstr>|\.\.\.|^Exception\b|^Traceback\b", result):
                found.append((pos, f"({phrase.split(';;')[0].strip()}) = ({result})"))
                k = after
            continue
        rest = line[m.end() :] if (m := _MARKER.search(line)) else _LEAD.sub("", line, count=1)
        for piece in _pieces(rest):
            piece = re.sub(r"^\s*(?:and|or|but|then|while)\s+", "", piece)
            if not re.match(rf"\s*\[?{re.escape(name)}(?![\w'])", piece):
                continue
            if arrow := _arrow(piece, name):
                found.append((pos + line.find(piece), arrow))
            elif equations and _EQUALS.search(_mask(piece)) and _applies(piece, name):
                found.append((pos + line.find(piece), piece.strip()))
    return found


def _balanced(lines: list[tuple[int, str]], k: int) -> tuple[str, int]:
    """Line k, joined with the lines after it while its brackets are open or it ends in `=` (at most
    8 lines)."""
    text, k = lines[k][1], k + 1
    while (_depth(text) > 0 or text.rstrip().endswith("=")) and k < len(lines) and text.count("\n") < 8:
        text, k = text + "\n" + lines[k][1], k + 1
    return text, k


def _pieces(text: str) -> list[str]:
    """`text` split at its top-level `,`, `;` and sentence ends, a piece without an arrow joining the one before
    (`f 1 => 2, f 2 => 4` is two pieces, `f 1 => 1, 2` one)."""
    pieces: list[str] = []
    start = 0
    for cut in [m.start() for m in _SEPARATOR.finditer(_mask(text))] + [len(text)]:
        if pieces and not _ARROW.search(_mask(text[start:cut])):
            pieces[-1] += text[start - 1 : cut]  # with the separator
        else:
            pieces.append(text[start:cut])
        start = cut + 1
    return pieces


def _applies(lhs: str, name: str) -> bool:
    return re.match(rf"\s*{re.escape(name)}(?![\w'])\s*\S", lhs) is not None


def _arrow(text: str, name: str) -> str | None:
    """`f 1 2 => 3` (also `==>`, `->`, "returns", "evaluates to", "gives") as `(f 1 2) = (3)`: the last
    top-level arrow, its left side an application of `name` with no `fun` or `match` of its own."""
    mask = _mask(text)
    arrows = list(_ARROW.finditer(mask))
    if not arrows:
        return None
    a = arrows[-1]
    lhs, rhs = text[: a.start()].strip(), text[a.end() :].strip().rstrip(",;")
    if rhs.endswith("."):  # the sentence's (so `f 1 => 2.` reads as the int 2)
        rhs = rhs[:-1].rstrip()
    if lhs.startswith("[") and _span_end(lhs, 0) == len(lhs) - 1:  # [f 1 2] returns [3] (and prose)
        end = _span_end(rhs, 0) if rhs.startswith("[") else -1
        lhs, rhs = lhs[1:-1].strip(), rhs[1:end].strip() if end > 0 else rhs
    lhs, rhs = (
        s[1:-1] if len(s) > 2 and s[0] == s[-1] == "`" and s.count("`") == 2 else s for s in (lhs, rhs)
    )
    top = _mask(lhs)
    if not rhs or not _applies(lhs, name) or _ARROW.search(top) or _EQUALS.search(top):
        return None
    if _BINDS_ARROWS.search(top) or _depth(rhs) != 0:
        return None
    if a.group(0).strip()[0].isalpha() and any(
        w.group(0) not in _CONSTANTS for w in _LOWER_WORD.finditer(_mask(rhs, nested=False))
    ):
        return None  # "[f xs] returns [(lo, hi)] where ...": prose about variables, not a value
    return f"({lhs}) = ({rhs})"


def _squash(expr: str) -> str:
    """`expr` with each run of whitespace outside literals made one space."""
    out, last = [], 0
    for m in re.finditer(r"\s+", _mask(expr, nested=False)):
        out += [expr[last : m.start()], " "]
        last = m.end()
    return ("".join(out) + expr[last:]).strip()
