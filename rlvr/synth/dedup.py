"""Near-duplicate problems: word 3-gram shingles of the prompt (comment markers and case removed),
compared by Jaccard similarity. A new problem this close to an existing or an evaluation problem is
rejected: it would be the same exercise under another name, or a leak of the held-out set."""

from __future__ import annotations

import re
from collections.abc import Iterable

NEAR_DUPLICATE = 0.5  # Jaccard of prompt shingles at or above which two problems count as one


def shingles(prompt: str, size: int = 3) -> frozenset[str]:
    words = re.findall(r"[a-z0-9_]+", prompt.lower().replace("(**", " ").replace("*)", " "))
    if len(words) < size:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class DuplicateIndex:
    """Prompts seen so far (existing sets, evaluation sets, problems accepted in this run)."""

    def __init__(self, named_prompts: Iterable[tuple[str, str]] = ()):
        self._items: list[tuple[str, frozenset[str]]] = []
        for name, prompt in named_prompts:
            self.add(name, prompt)

    def add(self, name: str, prompt: str) -> None:
        self._items.append((name, shingles(prompt)))

    def closest(self, prompt: str) -> tuple[str | None, float]:
        """The most similar prompt seen, by name, and its similarity."""
        mine = shingles(prompt)
        best: tuple[str | None, float] = (None, 0.0)
        for name, theirs in self._items:
            s = jaccard(mine, theirs)
            if s > best[1]:
                best = (name, s)
        return best
