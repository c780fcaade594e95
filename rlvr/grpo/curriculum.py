"""The order in which GRPO sees the train problems (GRPO_CURRICULUM).

GRPO learns only from groups whose rewards differ. A small model that solves nothing of a hard problem
and everything of a trivial one gets no gradient from either, so the order matters most when a run is
short (30 steps of one prompt each on CPU see 30 of the 260 train problems):

- `shuffle`: TRL's default, a seeded random order.
- `easy_first`: easy, then medium, then hard problems (a problem without a difficulty counts as
  medium); within a level, shorter reference solutions first. Deterministic.
- `results:<eval run dir or results.jsonl>`: the problems an earlier evaluation of the starting model
  (on the train split: `python -m eval.run --split train --n 4 ...`) answered with varied rewards come
  first, most varied first; then problems it did not evaluate; last the ones whose samples all scored
  the same (no signal for GRPO). Deterministic.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from ..envconf import ConfigError
from ..problems import Problem

CURRICULA = ("shuffle", "easy_first", "results:<path>")
LEVELS = {"easy": 0, "medium": 1, "hard": 2}


def check_spec(spec: str) -> str:
    """The spec, validated: one of CURRICULA, and for `results:` a file or run directory that exists."""
    if spec in ("shuffle", "easy_first"):
        return spec
    if spec.startswith("results:"):
        results_file(spec.removeprefix("results:"))
        return spec
    raise ConfigError(f"GRPO_CURRICULUM={spec!r}: expected one of {', '.join(CURRICULA)}")


def results_file(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "results.jsonl"
    if not p.is_file():
        raise ConfigError(
            f"GRPO_CURRICULUM=results:{path}: no {p} (an eval run directory or its results.jsonl is expected)"
        )
    return p


def per_problem_rewards(path: Path) -> dict[str, list[float]]:
    """problem_id -> the total rewards of its samples in an eval run's results.jsonl (infra failures,
    whose reward is null, are left out)."""
    rewards: dict[str, list[float]] = defaultdict(list)
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pid, reward = row["problem_id"], row["total_reward"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}:{n}: expected an eval results row with problem_id and total_reward ({exc})"
            ) from None
        if reward is not None:
            rewards[str(pid)].append(float(reward))
    return rewards


def shuffles(spec: str) -> bool:
    """Whether the trainer shuffles the prompts (`shuffle`); every other curriculum keeps its order."""
    return spec == "shuffle"


def order(problems: list[Problem], spec: str) -> list[Problem]:
    """The problems in curriculum order (for `shuffle`, as given: the trainer shuffles them)."""
    if shuffles(spec):
        return list(problems)
    if spec == "easy_first":

        def level(p: Problem) -> tuple[int, int, str]:
            return LEVELS.get(p.difficulty or "medium", 1), len(p.solution or p.prompt), p.id

        return sorted(problems, key=level)
    path = results_file(spec.removeprefix("results:"))
    rewards = per_problem_rewards(path)
    if not any(p.id in rewards for p in problems):
        raise ConfigError(
            f"GRPO_CURRICULUM={spec}: {path} has no rows for any train problem; evaluate the model GRPO "
            "starts from on the train split: python -m eval.run --split train --n 4 --model <model>"
        )

    def signal(p: Problem) -> tuple[int, float, str]:
        values = rewards.get(p.id)
        if not values:
            return 1, 0.0, p.id  # not evaluated: after the varied ones
        spread = statistics.pstdev(values)
        return (0 if spread > 0 else 2), -spread, p.id

    return sorted(problems, key=signal)
