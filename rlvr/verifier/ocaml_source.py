"""Plain-text facts about OCaml source: comments, signatures, phrases and compiler messages.

Nothing here runs a compiler; the callers feed it source text or the compiler's own output
(`-dparsetree` dumps, error messages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIG_LINE = re.compile(r"^let(?:\s+rec)?\s+([A-Za-z_][A-Za-z0-9_']*)")


def strip_comments(src: str) -> str:
    """Replace every (possibly nested) comment with spaces, keeping string and char literals intact.

    Newlines inside comments are kept so line numbers do not move.
    """
    out: list[str] = []
    i, n, depth = 0, len(src), 0
    while i < n:
        c = src[i]
        if depth == 0 and c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i : j + 1])
            i = j + 1
        elif depth == 0 and c == "'" and _char_literal_len(src, i):
            k = _char_literal_len(src, i)
            out.append(src[i : i + k])
            i += k
        elif src.startswith("(*", i):
            depth += 1
            out.append("  ")
            i += 2
        elif depth > 0 and src.startswith("*)", i):
            depth -= 1
            out.append("  ")
            i += 2
        elif depth > 0:
            out.append("\n" if c == "\n" else " ")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _char_literal_len(src: str, i: int) -> int:
    """Length of the char literal starting at src[i] == "'", or 0 (a type variable, a prime)."""
    m = re.match(r"'(?:[^\\']|\\(?:[\\'\"ntbr ]|[0-9]{3}|x[0-9a-fA-F]{2}|o[0-3][0-7]{2}))'", src[i : i + 8])
    return len(m.group(0)) if m else 0


@dataclass(frozen=True)
class Signature:
    """The function a problem asks for, taken from the last `let` line of its prompt."""

    name: str
    line: str  # the signature text, from `let` to the final `=` (may span lines)
    prefix: str  # the prompt before the signature, comments removed (types, modules, exceptions)
    is_rec: bool


class SignatureError(ValueError):
    """The prompt does not end with a usable `let ... =` signature."""


def parse_signature(prompt: str) -> Signature:
    """Find the signature: the last line that starts (column 0) with `let`, through the end of the prompt.

    Anchored at line start and searched in code, never in prose: `let` inside a doc comment is blanked
    out before the search, so English like "let x be ..." in a comment cannot win.
    """
    code = strip_comments(prompt.rstrip())
    lines = code.split("\n")
    for idx in range(len(lines) - 1, -1, -1):
        m = _SIG_LINE.match(lines[idx])
        if m:
            line = "\n".join(lines[idx:]).strip()
            if not line.endswith("="):
                raise SignatureError(f"the signature {line[:80]!r} does not end with '='")
            prefix = "\n".join(lines[:idx]).rstrip()
            return Signature(
                name=m.group(1), line=line, prefix=prefix, is_rec=bool(re.match(r"let\s+rec\b", line))
            )
    raise SignatureError("no line starting with 'let' (the function's signature) in the prompt")


def defines_name(code: str, name: str) -> bool:
    """True when `code` contains its own definition of `name` (`let [rec] name` or `and name`)."""
    pattern = rf"(?m)^[ \t]*(?:let(?:[ \t]+rec)?|and)[ \t]+{re.escape(name)}(?![A-Za-z0-9_'])"
    return re.search(pattern, strip_comments(code)) is not None


@dataclass(frozen=True)
class Phrase:
    """One top-level structure item of a file, as the OCaml parser sees it."""

    start_line: int  # 1-based, inclusive
    end_line: int
    start: int  # character offsets into the source
    end: int
    names: tuple[str, ...]  # values bound by a `let` phrase; empty for other phrases


_ITEM = re.compile(r"^  structure_item \([^\[]*\[(\d+),(\d+)\+(\d+)\]\.\.\[(\d+),(\d+)\+(\d+)\]\)")
_PVAR = re.compile(r'Ppat_var "([^"]+)"')


def phrases_from_parsetree(dump: str) -> list[Phrase]:
    """Read the top-level phrases and the names each binds from `ocamlc -dparsetree` output."""
    phrases: list[Phrase] = []
    lines = dump.split("\n")
    i = 0
    while i < len(lines):
        m = _ITEM.match(lines[i])
        if not m:
            i += 1
            continue
        sl, sb, sc, el, eb, ec = (int(g) for g in m.groups())
        names: list[str] = []
        j = i + 1
        in_pattern = False
        while j < len(lines) and not _ITEM.match(lines[j]) and lines[j] != "]":
            text = lines[j]
            indent = len(text) - len(text.lstrip(" "))
            if indent == 8 and text.strip().startswith("pattern"):
                in_pattern = True
            elif indent <= 8:
                in_pattern = False
            elif in_pattern:
                v = _PVAR.search(text)
                if v:
                    names.append(v.group(1))
            j += 1
        is_value = i + 1 < len(lines) and lines[i + 1].strip().startswith("Pstr_value")
        phrases.append(Phrase(sl, el, sb + sc, eb + ec, tuple(names) if is_value else ()))
        i = j
    return phrases


@dataclass(frozen=True)
class CompilerError:
    """The first error the compiler reported."""

    file: str | None
    line: int | None
    kind: str  # "syntax" | "type" | "other"
    message: str  # the error text, without the source excerpt
    block: str = ""  # the whole report as the compiler printed it: location, source excerpt, error


_LOC = re.compile(r'^File "([^"]+)", lines? (\d+)')
_SYNTAX = re.compile(
    r"Error: (Syntax error|Illegal character|String literal not terminated|Comment not terminated|"
    r"This '.*' might be unmatched|Unterminated|Illegal escape|Integer literal exceeds|Invalid literal|"
    r"Comment not terminated|Quoted string)"
)


def first_error(output: str) -> CompilerError | None:
    """Parse the first `File ..., line N ... Error: ...` block of compiler output."""
    lines = output.split("\n")
    for i, text in enumerate(lines):
        if not text.startswith("Error"):
            continue
        file, line, loc_at = None, None, i
        for k in range(i - 1, -1, -1):
            loc = _LOC.match(lines[k])
            if loc:
                file, line, loc_at = loc.group(1), int(loc.group(2)), k
                break
        body = [text]
        for follow in lines[i + 1 :]:
            if not follow.startswith((" ", "\t")) or not follow.strip():
                break
            body.append(follow)
        message = " ".join(s.strip() for s in body)
        kind = "syntax" if _SYNTAX.match(text) else "type"
        block = "\n".join(lines[loc_at:i] + body)
        return CompilerError(file, line, kind, message, block)
    return None
