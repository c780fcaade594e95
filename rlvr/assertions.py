"""Split a test-code string (`let () = assert (...); assert (...);;`) into boolean expressions.

Public datasets ship tests as one block of OCaml (kiranpg: `let () = assert (...); ...;;`; MultiPL-E:
`let assertions = let candidate = f in (assert (...)); ... ()`). The verifier runs each assertion on
its own, so the block is split here: a small OCaml lexer (comments nested, string, quoted-string and
char literals, brackets) finds each `assert` and its argument. `let x = e in` bindings that precede
assertions are kept in front of every later assertion. Whether every piece really is a well-typed
boolean expression is then checked by the OCaml compiler itself (Verifier.check_problem).
"""

from __future__ import annotations

import re

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = set(_OPEN.values())
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_']*")


class SplitError(ValueError):
    """The test code has no assertion that could be extracted."""


def _skip_literal(src: str, i: int) -> int:
    """If a comment or literal starts at i, return the index just after it; else i."""
    n = len(src)
    if src.startswith("(*", i):
        depth, j = 1, i + 2
        while j < n and depth:
            if src.startswith("(*", j):
                depth, j = depth + 1, j + 2
            elif src.startswith("*)", j):
                depth, j = depth - 1, j + 2
            elif src[j] == '"':
                j = _skip_literal(src, j)
            else:
                j += 1
        return j
    if src[i] == '"':
        j = i + 1
        while j < n and src[j] != '"':
            j += 2 if src[j] == "\\" else 1
        return j + 1
    m = re.match(r"\{([a-z_]*)\|", src[i:])
    if m:
        end = src.find("|" + m.group(1) + "}", i + m.end())
        return n if end < 0 else end + len(m.group(1)) + 2
    m = re.match(r"'(?:[^\\']|\\(?:[\\'\"ntbr ]|[0-9]{3}|x[0-9a-fA-F]{2}))'", src[i : i + 6])
    if m:
        return i + len(m.group(0))
    return i


def _tokens(src: str):
    """Yield (kind, start, end): kind is 'word', 'open', 'close', ';' or 'other'."""
    i, n = 0, len(src)
    while i < n:
        j = _skip_literal(src, i)
        if j != i:
            if not src.startswith("(*", i):  # comments are not tokens
                yield ("literal", i, j)
            i = j
            continue
        c = src[i]
        if c.isspace():
            i += 1
        elif _WORD.match(src, i) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] in "_'.")):
            m = _WORD.match(src, i)
            word = m.group(0)
            yield ("open" if word == "begin" else "close" if word == "end" else "word", i, m.end())
            i = m.end()
        elif c in _OPEN:
            yield ("open", i, i + 1)
            i += 1
        elif c in _CLOSE:
            yield ("close", i, i + 1)
            i += 1
        elif c == ";":
            yield (";", i, i + 1)
            i += 1
        else:
            yield ("other", i, i + 1)
            i += 1


def split_assertions(code: str) -> list[str]:
    """Return one boolean expression per `assert` in `code`, each with its preceding `let ... in`s."""
    toks = list(_tokens(code))
    out: list[str] = []
    bindings: list[str] = []
    k = 0
    seg_start = 0
    while k < len(toks):
        kind, s, e = toks[k]
        if kind == "word" and code[s:e] == "assert":
            bindings += _let_bindings(code[seg_start:s])
            k += 1
            arg_start = toks[k][1] if k < len(toks) else e
            depth = 0
            grouped = k < len(toks) and toks[k][0] == "open"
            while k < len(toks):
                kind2, _s2, _e2 = toks[k]
                if kind2 == "open":
                    depth += 1
                elif kind2 == "close":
                    if depth == 0:
                        break
                    depth -= 1
                    if depth == 0 and grouped:
                        k += 1
                        break
                elif depth == 0 and (
                    kind2 == ";" or (kind2 == "word" and code[_s2:_e2] in ("in", "let", "assert", "done"))
                ):
                    break
                k += 1
            arg_end = toks[k - 1][2] if k > 0 else len(code)
            expr = code[arg_start:arg_end].strip()
            if expr:
                prefix = "".join(b + " " for b in bindings)
                out.append(f"{prefix}({expr})" if prefix else expr)
            seg_start = toks[k][1] if k < len(toks) else len(code)
            continue
        k += 1
    if not out:
        raise SplitError("no `assert` found in the test code")
    return out


_LET_IN = re.compile(r"\blet\s+([a-z][A-Za-z0-9_']*)\s*=\s*((?:(?!\blet\b)[^=])+?)\s+in\b", re.S)


def _let_bindings(segment: str) -> list[str]:
    """`let x = e in` bindings in the text between two assertions (top-level `let () =` excluded)."""
    return [f"let {m.group(1)} = {m.group(2).strip()} in" for m in _LET_IN.finditer(segment)]
