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
) -> list[tuple[Problem, str]]:
    """(problem, completion) pairs of a request, or ProtocolError saying what is wrong where."""
    n = len(queries)
    for name, values in (("prompts", prompts), ("labels", labels)):
        if values is not None and len(values) != n:
            raise ProtocolError(f"{len(values)} {name} for {n} queries: expected one each")
    if not labels:
        raise ProtocolError(
            "labels are missing: OpenRLHF must send the problem id of each query (--label_key)"
        )
    items = []
    for i, query in enumerate(queries):
        problem = problems.get(labels[i] or "")
        if problem is None:
            raise ProtocolError(f"labels[{i}]: unknown problem id {labels[i]!r}")
        try:
            response = response_of(query, prompts[i] if prompts else None)
        except ValueError as e:
            raise ProtocolError(f"query[{i}]: {e}") from None
        if max_chars is not None and len(response) > max_chars:
            raise ProtocolError(f"query[{i}]: a response of {len(response)} characters; at most {max_chars}")
        items.append((problem, apply_stop_tokens(problem, response)))
    return items


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
