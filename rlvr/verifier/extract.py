"""Pull the OCaml code out of a model's raw answer.

The protocol (doc/reward.md): take the first ```ocaml (or unlabelled) fenced block; with no fence take
the whole text; with an unclosed final fence (a truncated generation) take the text after it.
Extraction happens before anything is assembled with the problem's signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+.-]*)[ \t]*$")
_OCAML_TAGS = {"", "ocaml", "ml", "mli", "caml", "oc"}


@dataclass(frozen=True)
class Extraction:
    """What was found in a completion: the code and facts the style rules need."""

    code: str
    n_blocks: int  # fenced blocks of any language, an unclosed final one included
    fenced: bool  # the code came from a fence (closed or not)
    closed: bool  # False when the chosen block was cut off (no closing fence)
    prose_after: str  # text after the last closing fence, stripped


def extract_code(text: str) -> Extraction:
    """Return the OCaml code of `text` following the extraction protocol."""
    lines = text.split("\n")
    blocks: list[tuple[str, list[str], bool]] = []  # (tag, lines, closed)
    last_close = -1
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, tag = m.group(1), m.group(2).lower()
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            c = _FENCE.match(lines[j])
            if c and c.group(1)[0] == fence[0] and len(c.group(1)) >= len(fence) and not c.group(2):
                closed = True
                break
            body.append(lines[j])
            j += 1
        blocks.append((tag, body, closed))
        if closed:
            last_close = j
        i = j + 1
    if not blocks:
        return Extraction(code=text.strip("\n"), n_blocks=0, fenced=False, closed=True, prose_after="")
    prose_after = "\n".join(lines[last_close + 1 :]).strip() if last_close >= 0 else ""
    chosen = next((b for b in blocks if b[0] in _OCAML_TAGS), None)
    if chosen is None:
        # Only foreign-language fences (```python ...): there is no OCaml to score.
        return Extraction(code="", n_blocks=len(blocks), fenced=True, closed=True, prose_after=prose_after)
    _tag, body, closed = chosen
    return Extraction(
        code="\n".join(body).strip("\n"),
        n_blocks=len(blocks),
        fenced=True,
        closed=closed,
        prose_after=prose_after,
    )
