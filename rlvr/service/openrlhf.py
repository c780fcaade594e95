"""OpenRLHF's reward protocol, shared by the server's `POST /openrlhf` (its `--remote_rm_url http://…`)
and the local `reward_func` file (its `--remote_rm_url /path/to/openrlhf_reward_func.py`).

OpenRLHF hands over `queries` (prompt + response, decoded with the chat template's special tokens),
`prompts` (the prompt texts) and `labels` (the dataset's `--label_key` column: here, the problem id), and
reads back `rewards` (advantages), `scores` (its dynamic filtering, in [0, 1]) and `extra_logs` (logged
per sample). OpenRLHF cannot mask a sample, so an infrastructure failure scores 0 and is flagged in
`extra_logs["infra_error"]`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..completions import apply_stop_tokens
from ..problems import Problem
from ..verifier import Outcome
from ..verifier.scoring import TYPE_CHECK_MAX

# Special tokens that end a decoded query (the response is the text before them).
TRAILING_SPECIAL = re.compile(r"(?:\s*(?:<\|[A-Za-z_]+\|>|</s>|<eos>|<end_of_turn>))+\s*$")


class ProtocolError(ValueError):
    """A request that does not follow the protocol; the message names the field and the index."""


def response_of(query: str, prompt: str | None) -> str:
    """The response part of a query: what follows its prompt, less the trailing special tokens."""
    text = query
    if prompt:
        if query.startswith(prompt):
            text = query[len(prompt) :]
        else:
            at = query.find(prompt.strip())
            if at < 0:
                raise ValueError("the query does not contain its prompt")
            text = query[at + len(prompt.strip()) :]
    return TRAILING_SPECIAL.sub("", text)


def items_of(
    problems: Mapping[str, Problem],
    queries: Sequence[str],
    prompts: Sequence[str] | None,
    labels: Sequence[str | None] | None,
    max_chars: int | None = None,
) -> tuple[list[tuple[Problem, str] | None], dict[int, str]]:
    """(problem, completion) for each query, None where the query cannot be scored (its prompt is not
    in it, or it is over `max_chars`), and why for those. What is wrong with the request as a whole
    (counts that differ, labels missing or unknown: OpenRLHF's setup) raises ProtocolError."""
    n = len(queries)
    for name, values in (("prompts", prompts), ("labels", labels)):
        if values is not None and len(values) != n:
            raise ProtocolError(f"{len(values)} {name} for {n} queries: expected one each")
    if not labels:
        raise ProtocolError(
            "labels are missing: OpenRLHF must send the problem id of each query (--label_key)"
        )
    items: list[tuple[Problem, str] | None] = []
    unscored: dict[int, str] = {}
    for i, query in enumerate(queries):
        problem = problems.get(labels[i] or "")
        if problem is None:
            raise ProtocolError(f"labels[{i}]: unknown problem id {labels[i]!r}")
        try:
            response = response_of(query, prompts[i] if prompts else None)
        except ValueError as e:
            unscored[i] = f"query[{i}]: {e}"
            items.append(None)
            continue
        if max_chars is not None and len(response) > max_chars:
            unscored[i] = f"query[{i}]: a response of {len(response)} characters; at most {max_chars}"
            items.append(None)
            continue
        items.append((problem, apply_stop_tokens(problem, response)))
    return items, unscored


def score_request(
    score: Callable[[list[tuple[Problem, str]]], Sequence[Outcome]],
    items: Sequence[tuple[Problem, str] | None],
    unscored: Mapping[int, str],
) -> list[Outcome]:
    """Outcomes in query order: `score` on the scorable items, infra_error for the others (OpenRLHF has
    no mask: they score 0 with extra_logs["infra_error"] 1, and the reason goes to stderr)."""
    for why in unscored.values():
        print(f"openrlhf reward: not scored: {why}", file=sys.stderr)
    scored = iter(score([it for it in items if it is not None]))
    return [
        next(scored)
        if it is not None
        else Outcome(id="", total_reward=None, stage="infra_error", error=unscored[n])
        for n, it in enumerate(items)
    ]


def reply(outcomes: Sequence[Outcome], wrap: Callable[[list[float]], Any] = list) -> dict[str, Any]:
    """The answer OpenRLHF reads; `wrap` makes each column a tensor for the local form."""
    rewards = [o.total_reward if o.total_reward is not None else 0.0 for o in outcomes]
    return {
        "rewards": wrap(rewards),
        "scores": wrap(rewards),
        "extra_logs": {
            "pass": wrap([float(o.stage == "pass") for o in outcomes]),
            "type_checked": wrap([float(o.type_check == TYPE_CHECK_MAX) for o in outcomes]),
            "tests_fraction": wrap(
                [o.tests_passed / o.tests_total if o.tests_total else 0.0 for o in outcomes]
            ),
            "infra_error": wrap([float(o.stage == "infra_error") for o in outcomes]),
        },
    }
