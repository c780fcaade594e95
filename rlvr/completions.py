"""Turn a raw model answer into the text the verifier scores, per the problem's conventions."""

from __future__ import annotations

from .problems import Problem


def apply_stop_tokens(problem: Problem, completion: str) -> str:
    """MultiPL-E convention: an unfenced completion is the function body that follows the prompt,
    cut at the first of the problem's stop tokens. Fenced answers and other problems pass unchanged."""
    stops = problem.extra.get("stop_tokens") or []
    if not stops or "```" in completion:
        return completion
    cut = len(completion)
    for stop in stops:
        k = completion.find(stop)
        if k >= 0:
            cut = min(cut, k)
    return completion[:cut]
