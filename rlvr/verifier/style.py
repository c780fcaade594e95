"""Style penalty and degenerate-output detection, computed from the completion's text alone.

Every rule and threshold is listed in doc/reward.md, each with a test that shows a true positive and a
legitimate near miss that is not penalised (tests/verifier/test_style.py).
"""

from __future__ import annotations

import re
import zlib

from .extract import Extraction
from .ocaml_source import strip_comments

# Style: applies only to answers whose tests all pass ("otherwise perfect").
STYLE_EXTRA_BLOCK = 0.02  # per fenced code block beyond the first
STYLE_PROSE_AFTER = 0.03  # more than PROSE_AFTER_CHARS of prose after the final fence
PROSE_AFTER_CHARS = 30
STYLE_MAX = 0.10

# Degenerate output: flagged, and the total loses DEGENERATE_PENALTY (once, whatever the reasons).
DEGENERATE_PENALTY = 0.25
REPETITIVE_MIN_CHARS = 400  # compression ratio is only judged on texts at least this long
REPETITIVE_MAX_RATIO = 0.20  # zlib-compressed size / raw size below this = repetitive
REPEATED_LINE_MIN_CHARS = 12  # a line this long (stripped) ...
REPEATED_LINE_TIMES = 6  # ... appearing this many times = repetitive
LOW_CODE_MIN_CHARS = 400  # the code ratio is only judged on texts at least this long
LOW_CODE_RATIO = 0.25  # code characters / all characters below this = mostly prose
MAX_CODE_BLOCKS = 3  # more fenced blocks than this = code-block spam

_STUB_BODY = re.compile(
    r"""^\(?\s*(?:fun(?:ction)?\b[^-]*->\s*)?
        (?:failwith\s*\(?\s*"[^"]*"\s*\)?
          |assert\s+false
          |invalid_arg\s*\(?\s*"[^"]*"\s*\)?
          |raise\s*\(?\s*[A-Z][\w.]*(?:\s*\(?\s*"[^"]*"\s*\)?)?\s*\)?
          |Obj\.magic\s*\(\s*\)
          |\.\.\.|TODO|todo|\(\s*\))
        \s*\)?\s*(?:;;)?\s*$""",
    re.VERBOSE | re.DOTALL,
)


def style_penalty(ex: Extraction) -> tuple[float, list[str]]:
    """Penalty for a correct answer wrapped in clutter: extra code blocks, trailing prose."""
    penalty, reasons = 0.0, []
    if ex.n_blocks > 1:
        penalty += STYLE_EXTRA_BLOCK * (ex.n_blocks - 1)
        reasons.append(f"{ex.n_blocks} code blocks (one expected)")
    if len(ex.prose_after) > PROSE_AFTER_CHARS:
        penalty += STYLE_PROSE_AFTER
        reasons.append(f"{len(ex.prose_after)} characters of prose after the code")
    return round(min(penalty, STYLE_MAX), 6), reasons


def function_body(code: str, name: str, is_full_definition: bool) -> str:
    """The body of `name` in `code` (the whole code when it is a body-only answer)."""
    code = strip_comments(code)
    if not is_full_definition:
        return code.strip()
    m = re.search(rf"(?m)^[ \t]*(?:let(?:[ \t]+rec)?|and)[ \t]+{re.escape(name)}\b[^=]*=", code)
    if not m:
        return code.strip()
    rest = code[m.end() :]
    nxt = re.search(r"(?m)^(?:let|and|type|module|exception|open)\b", rest)
    return (rest[: nxt.start()] if nxt else rest).strip()


def degenerate_reasons(text: str, ex: Extraction, name: str, is_full_definition: bool) -> list[str]:
    """Why this completion looks degenerate (empty list: it does not)."""
    reasons = []
    raw = text.encode()
    if len(raw) >= REPETITIVE_MIN_CHARS and len(zlib.compress(raw, 6)) / len(raw) < REPETITIVE_MAX_RATIO:
        reasons.append("repetitive text")
    else:
        counts: dict[str, int] = {}
        for line in text.split("\n"):
            s = line.strip()
            if len(s) >= REPEATED_LINE_MIN_CHARS:
                counts[s] = counts.get(s, 0) + 1
        if counts and max(counts.values()) >= REPEATED_LINE_TIMES:
            reasons.append("a line repeated many times")
    if len(text) >= LOW_CODE_MIN_CHARS and len(ex.code) / len(text) < LOW_CODE_RATIO:
        reasons.append("mostly prose, little code")
    if ex.n_blocks > MAX_CODE_BLOCKS:
        reasons.append(f"code-block spam ({ex.n_blocks} blocks)")
    if ex.code.strip() and _STUB_BODY.match(function_body(ex.code, name, is_full_definition)):
        reasons.append("stub body (failwith/assert false/raise only)")
    return reasons
