"""Named reward functions for TRL's GRPOTrainer/RLOOTrainer, all built on the one verifier.

Registry (doc/reward.md):
  ocaml              the graduated verifier score (type check 0.25 + compile 0.10 + tests 0.65, minus
                     style and degenerate penalties). The default.
  pass_partial_fail  +1.0 all tests pass / +0.2 compiles but fails / -0.5 does not compile; with
                     REWARD_QUALITY_BONUS=1, +0.05 each for a doc comment, lines <= 100 chars, a concise
                     answer and annotated parameters (on answers that compile).
  weighted           w_compile * compiled + w_tests * passed/total + w_style * clean-style, divided by
                     the sum of the weights (REWARD_WEIGHT_COMPILE / _TESTS / _STYLE).

Each function takes TRL's arguments (prompts, completions, completion_ids, problem_id column,
trainer_state, log_extra, log_metric) and returns one float per completion, or None for an
infrastructure failure (TRL masks it). The verifier runs once per completion per batch whatever the
number of reward functions. The first function called on a batch also writes batch_metrics.jsonl and
completions.jsonl; each writes rewards/<its name>.jsonl.
"""

from __future__ import annotations

import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .problems import Problem
from .runlog import RunDir, now_iso
from .verifier import STAGES, Outcome, Verifier, error_class
from .verifier.extract import extract_code
from .verifier.scoring import COMPILE_MAX, TYPE_CHECK_MAX
from .verifier.style import STYLE_MAX

COMPILED_STAGES = ("pass", "test_failure", "timeout")
HISTOGRAM_EDGES = [round(i / 10, 1) for i in range(11)]


@dataclass(frozen=True)
class RewardSettings:
    quality_bonus: bool = False
    weight_compile: float = 0.3
    weight_tests: float = 0.6
    weight_style: float = 0.1


def completion_text(completion) -> str:
    """TRL passes a string (standard format) or a list of messages (conversational)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def prompt_text(prompt) -> str:
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt if isinstance(m, dict))
    return str(prompt)


class RewardContext:
    """Shared state of the reward functions of one training run."""

    def __init__(
        self,
        verifier: Verifier,
        problems: Sequence[Problem],
        run: RunDir | None = None,
        settings: RewardSettings | None = None,
    ):
        self.verifier = verifier
        self.problems = {p.id: p for p in problems}
        self.run = run
        self.settings = settings or RewardSettings()
        self._cache: OrderedDict[tuple[str, str], Outcome] = OrderedDict()
        self._logged_batches: OrderedDict[int, None] = OrderedDict()
        self.reward_seconds = 0.0  # verifier time since the trainer last read it

    def outcomes(self, problem_ids: Sequence[str], texts: Sequence[str]) -> list[Outcome]:
        """Verifier outcomes for a batch; pairs already scored in this run are not scored again."""
        missing = [(pid, t) for pid, t in zip(problem_ids, texts) if (pid, t) not in self._cache]
        if missing:
            unknown = sorted({pid for pid, _ in missing if pid not in self.problems})
            if unknown:
                raise KeyError(
                    f"reward: unknown problem id(s) {unknown[:3]} (the dataset and the problems disagree)"
                )
            start = time.monotonic()
            fresh = self.verifier.score_batch(
                [(self.problems[pid], t) for pid, t in missing], ids=[pid for pid, _ in missing]
            )
            self.reward_seconds += time.monotonic() - start
            for key, o in zip(missing, fresh):
                self._cache[key] = o
            while len(self._cache) > 20000:
                self._cache.popitem(last=False)
        return [self._cache[(pid, t)] for pid, t in zip(problem_ids, texts)]

    def log_batch(
        self, batch_key: int, step: int, prompts, problem_ids, texts, outcomes: list[Outcome]
    ) -> None:
        """batch_metrics.jsonl and completions.jsonl for a generation batch (once per batch)."""
        if self.run is None or batch_key in self._logged_batches:
            return
        self._logged_batches[batch_key] = None
        while len(self._logged_batches) > 64:
            self._logged_batches.popitem(last=False)
        records = _gather(
            [
                {"problem_id": pid, "prompt": prompt_text(p), "completion": t, "outcome": o.to_dict()}
                for p, pid, t, o in zip(prompts, problem_ids, texts, outcomes)
            ]
        )
        if not self.run.main or not records:
            return
        self.run.write("batch_metrics.jsonl", batch_metrics(step, records))
        seen: Counter[str] = Counter()
        lines = []
        for r in records:
            o = r["outcome"]
            lines.append(
                {
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
            )
            seen[r["problem_id"]] += 1
        self.run.write("completions.jsonl", *lines)

    def log_rewards(
        self, name: str, step: int, problem_ids, outcomes: list[Outcome], values: list[float | None]
    ) -> None:
        if self.run is None:
            return
        records = _gather(
            [
                {**o.to_dict(), "step": step, "problem_id": pid, "reward_name": name, "reward": v}
                for pid, o, v in zip(problem_ids, outcomes, values)
            ]
        )
        if self.run.main:
            self.run.write(f"rewards/{name}.jsonl", *records)


def _gather(records: list[dict]) -> list[dict]:
    """All processes' records on rank 0 (identity when not distributed)."""
    try:
        from accelerate import PartialState

        state = PartialState()
        if state.num_processes > 1:
            from accelerate.utils import gather_object

            return list(gather_object(records))
    except (ImportError, ValueError, RuntimeError):
        pass
    return records


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
        "error_classes": dict(
            Counter(c for o in outcomes if (c := error_class(o["error"])) and o["stage"] != "pass")
        ),
        "logged_at": now_iso(),
    }


# -- the reward functions ------------------------------------------------------------------------


def ocaml_score(o: Outcome, text: str, settings: RewardSettings) -> float | None:
    return o.total_reward


def pass_partial_fail(o: Outcome, text: str, settings: RewardSettings) -> float | None:
    if o.stage == "infra_error":
        return None
    if o.stage == "pass":
        base = 1.0
    elif o.stage in COMPILED_STAGES:
        base = 0.2
    else:
        return -0.5
    return round(base + (quality_bonus(text) if settings.quality_bonus else 0.0), 6)


def quality_bonus(text: str) -> float:
    """+0.05 each: a doc comment, every line <= 100 characters, a concise answer, annotated parameters."""
    ex = extract_code(text)
    code = ex.code
    bonus = 0.0
    if "(**" in code:
        bonus += 0.05
    if code and all(len(line) <= 100 for line in code.split("\n")):
        bonus += 0.05
    outside = len(text) - len(code)
    if outside <= 80 and not ex.prose_after:
        bonus += 0.05
    if re.search(r"(?m)^let(?:\s+rec)?\s+\w+\s*\(\s*\w+\s*:", code):
        bonus += 0.05
    return bonus


# `weighted`: an answer that did not build gets at most this share of the compile term, in proportion
# to the verifier's type-check + compile credit (whose maximum is TYPE_CHECK_MAX + COMPILE_MAX).
PARTIAL_COMPILE_SHARE = 0.5


def weighted(o: Outcome, text: str, settings: RewardSettings) -> float | None:
    if o.stage == "infra_error":
        return None
    if o.stage in COMPILED_STAGES:
        compiled = 1.0
    else:
        compiled = (o.type_check + o.compile) / (TYPE_CHECK_MAX + COMPILE_MAX) * PARTIAL_COMPILE_SHARE
    tests = o.tests_passed / o.tests_total if o.tests_total else 0.0
    style = 0.0 if o.is_degenerate else max(0.0, 1.0 - o.style_penalty / STYLE_MAX)
    w = settings.weight_compile + settings.weight_tests + settings.weight_style
    return round(
        (settings.weight_compile * compiled + settings.weight_tests * tests + settings.weight_style * style)
        / w,
        6,
    )


SCORERS: dict[str, Callable[[Outcome, str, RewardSettings], float | None]] = {
    "ocaml": ocaml_score,
    "pass_partial_fail": pass_partial_fail,
    "weighted": weighted,
}


def make_reward_function(name: str, ctx: RewardContext) -> Callable[..., list[float | None]]:
    """A TRL reward function named `name` (TRL logs it as rewards/<name>/mean)."""
    if name not in SCORERS:
        raise ValueError(f"unknown reward {name!r}; available: {', '.join(SCORERS)}")
    scorer = SCORERS[name]

    def reward(
        prompts,
        completions,
        completion_ids=None,
        problem_id=None,
        trainer_state=None,
        log_extra=None,
        log_metric=None,
        **_columns,
    ) -> list[float | None]:
        if problem_id is None:
            raise KeyError("reward: the dataset has no 'problem_id' column")
        texts = [completion_text(c) for c in completions]
        outcomes = ctx.outcomes(problem_id, texts)
        values = [scorer(o, t, ctx.settings) for o, t in zip(outcomes, texts)]
        # The optimizer step these completions train (metrics.jsonl logs that step after the update).
        step = int(getattr(trainer_state, "global_step", 0) or 0) + 1
        ctx.log_batch(id(completions), step, prompts, problem_id, texts, outcomes)
        ctx.log_rewards(name, step, problem_id, outcomes, values)
        if log_extra is not None and name == _first_name(ctx):
            log_extra("stage", [o.stage for o in outcomes])
        if log_metric is not None and name == _first_name(ctx):
            n = len(outcomes)
            log_metric("verifier/pass_rate", sum(o.stage == "pass" for o in outcomes) / n)
            log_metric("verifier/compile_rate", sum(o.stage in COMPILED_STAGES for o in outcomes) / n)
            log_metric("verifier/infra_errors", float(sum(o.stage == "infra_error" for o in outcomes)))
        return values

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


def _first_name(ctx: RewardContext) -> str:
    return getattr(ctx, "first_reward", "ocaml")


def build_reward_functions(specs: Sequence[str], ctx: RewardContext) -> tuple[list[Callable], list[float]]:
    """Parse `name[:weight]` specs (GRPO_REWARDS) into TRL reward functions and their weights."""
    funcs, weights = [], []
    for spec in specs:
        name, _, w = spec.partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ValueError(f"GRPO_REWARDS entry {spec!r}: the weight after ':' must be a number") from None
        funcs.append(make_reward_function(name.strip(), ctx))
        weights.append(weight)
    if not funcs:
        raise ValueError("GRPO_REWARDS is empty: name at least one reward (e.g. ocaml)")
    ctx.first_reward = funcs[0].__name__
    return funcs, weights
