"""The canonical problem record every part of the project works with (doc/data.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from .verifier.ocaml_source import Signature, parse_signature

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
SPLITS = ("train", "eval")
DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Problem:
    """One OCaml task: a prompt ending in its signature, and boolean test expressions.

    `tests` are OCaml expressions of type bool, evaluated with the problem's function (and the prompt's
    types and modules) in scope and the real Stdlib. `solution` is a reference answer (body or full
    definition). `source` names where it was loaded from (for error messages and reports).
    """

    id: str
    prompt: str
    tests: tuple[str, ...]
    solution: str | None = None
    difficulty: str | None = None
    tags: tuple[str, ...] = ()
    split: str = "train"
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @cached_property
    def signature(self) -> Signature:
        """The function the problem asks for (raises SignatureError if the prompt has none)."""
        return parse_signature(self.prompt)
