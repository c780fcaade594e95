"""The run files the reward functions feed: batch_metrics.jsonl, completions.jsonl and
rewards/<name>.jsonl (doc/metrics.md). Only rank 0 writes; the other ranks' records are gathered to it.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Sequence

from ..runlog import RunDir, now_iso
from ..verifier import STAGES, Outcome, error_class

HISTOGRAM_EDGES = [round(i / 10, 1) for i in range(11)]


def prompt_text(prompt) -> str:
    """A conversational prompt as one string (role: content lines); a string prompt as it is."""
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt if isinstance(m, dict))
    return str(prompt)


def gather(records: list[dict]) -> list[dict]:
    """All processes' records on every rank (the records themselves when not distributed).

    A failed gather raises: rank 0 would otherwise write a part of the batch as if it were the whole.
    """
    from accelerate import PartialState

    if PartialState().num_processes <= 1:
        return records
    from accelerate.utils import gather_object

    return list(gather_object(records))


class RewardLog:
    """Writes one run's reward files; `run=None` writes nothing (scoring outside a training run)."""

    def __init__(self, run: RunDir | None):
        self.run = run
        self._logged_batches: OrderedDict[int, None] = OrderedDict()

    def log_batch(
        self,
        batch_key: int,
        step: int,
        prompts,
        problem_ids,
        texts,
        outcomes: Sequence[Outcome],
        episodes: Sequence[dict] | None = None,
    ) -> None:
        """batch_metrics.jsonl and completions.jsonl for a generation batch (once per batch). `episodes`
        (multi-turn runs: rlvr.environment.episode_record) add each episode's conversation, tool calls
        and check cost; the logged reward is then the episode's (the verdict minus the cost)."""
        if self.run is None or batch_key in self._logged_batches:
            return
        self._logged_batches[batch_key] = None
        while len(self._logged_batches) > 64:
            self._logged_batches.popitem(last=False)
        records = gather(
            [
                {
                    "problem_id": pid,
                    "prompt": prompt_text(p),
                    "completion": t,
                    "outcome": o.to_dict(),
                    **({"episode": episodes[n]} if episodes is not None else {}),
                }
                for n, (p, pid, t, o) in enumerate(zip(prompts, problem_ids, texts, outcomes))
            ]
        )
        if not self.run.main or not records:
            return
        self.run.write("batch_metrics.jsonl", batch_metrics(step, records))
        seen: Counter[str] = Counter()
        lines = []
        for r in records:
            o = r["outcome"]
            line = {
                "step": step,
                "problem_id": r["problem_id"],
                "group_index": seen[r["problem_id"]],
                "prompt": r["prompt"],
                "completion": r["completion"],
                "reward": o["total_reward"],
                "stage": o["stage"],
                "error": o["error"],
                "tests_passed": o["tests_passed"],
                "tests_total": o["tests_total"],
            }
            ep = r.get("episode")
            if ep is not None:
                if line["reward"] is not None:
                    line["reward"] = round(line["reward"] - ep["check_cost"], 6)
                line.update(
                    tool_calls=ep["tool_calls"], check_cost=ep["check_cost"], conversation=ep["conversation"]
                )
            lines.append(line)
            seen[r["problem_id"]] += 1
        self.run.write("completions.jsonl", *lines)

    def log_rewards(
        self, name: str, step: int, problem_ids, outcomes: Sequence[Outcome], values: Sequence[float | None]
    ) -> None:
        """rewards/<name>.jsonl: the Outcome of each completion with the value this reward gave it."""
        if self.run is None:
            return
        records = gather(
            [
                {**o.to_dict(), "step": step, "problem_id": pid, "reward_name": name, "reward": v}
                for pid, o, v in zip(problem_ids, outcomes, values)
            ]
        )
        if self.run.main:
            self.run.write(f"rewards/{name}.jsonl", *records)


def batch_metrics(step: int, records: list[dict]) -> dict:
    """pass@1, pass@k (k = group size), stage counts, reward histogram and error classes of a batch."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["problem_id"], []).append(r["outcome"])
    k = max(len(g) for g in groups.values())
    pass1 = sum(sum(o["stage"] == "pass" for o in g) / len(g) for g in groups.values()) / len(groups)
    passk = sum(any(o["stage"] == "pass" for o in g) for g in groups.values()) / len(groups)
    outcomes = [r["outcome"] for r in records]
    rewards = [o["total_reward"] for o in outcomes if o["total_reward"] is not None]
    counts = [0] * 10
    for v in rewards:
        counts[min(9, int(v * 10))] += 1
    mean = sum(rewards) / len(rewards) if rewards else None
    std = (sum((v - mean) ** 2 for v in rewards) / len(rewards)) ** 0.5 if rewards else None
    stages = Counter(o["stage"] for o in outcomes)
    return {
        "step": step,
        "time": time.time(),
        "n_completions": len(outcomes),
        "n_problems": len(groups),
        "k": k,
        "pass@1": pass1,
        "pass@k": passk,
        "reward_mean": mean,
        "reward_std": std,
        "stage_counts": {s: stages.get(s, 0) for s in STAGES},
        "partial_tests": sum(1 for o in outcomes if 0 < o["tests_passed"] < o["tests_total"]),
        "reward_histogram": {"edges": HISTOGRAM_EDGES, "counts": counts},
        "infra_errors": stages.get("infra_error", 0),
        **({"tool_calls": tool_call_summary(records)} if any("episode" in r for r in records) else {}),
        "error_classes": dict(
            Counter(c for o in outcomes if (c := error_class(o["error"])) and o["stage"] != "pass")
        ),
        "logged_at": now_iso(),
    }


def tool_call_summary(records: list[dict]) -> dict:
    """batch_metrics.jsonl's `tool_calls` for a multi-turn batch: the mean per episode, how many
    episodes made each number of calls, and the mean episode reward (verdict minus cost) by calls."""
    counts: Counter[int] = Counter()
    rewards: dict[int, list[float]] = {}
    for r in records:
        ep = r.get("episode") or {"tool_calls": 0, "check_cost": 0.0}
        n = ep["tool_calls"]
        counts[n] += 1
        if r["outcome"]["total_reward"] is not None:
            rewards.setdefault(n, []).append(r["outcome"]["total_reward"] - ep["check_cost"])
    return {
        "mean": sum(n * c for n, c in counts.items()) / max(1, sum(counts.values())),
        "episodes_by_calls": {str(n): counts[n] for n in sorted(counts)},
        "reward_by_calls": {str(n): round(sum(v) / len(v), 6) for n, v in sorted(rewards.items())},
    }
