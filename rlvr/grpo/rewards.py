"""Named reward functions for TRL's GRPOTrainer/RLOOTrainer, all built on the one verifier.

Registry (doc/reward.md):
  ocaml              the graduated verifier score (type check 0.25 + compile 0.10 + tests 0.65, minus
                     style and degenerate penalties). The default.
  pass_partial_fail  +1.0 all tests pass / +0.2 compiles but fails / -0.5 does not compile; with
                     REWARD_QUALITY_BONUS=1, +0.05 each for a doc comment, lines <= 100 chars, a concise
                     answer and annotated parameters (on answers that compile).
  weighted           w_compile * compiled + w_tests * passed/total + w_style * clean-style, divided by
                     the sum of the weights (REWARD_WEIGHT_COMPILE / _TESTS / _STYLE).
  judge              an LLM's grade of the code's style in [0, 1], on answers that pass every test only
                     (0 on the others; None when the judge cannot answer): rlvr.grpo.judge, JUDGE_*.

Each function takes TRL's arguments (prompts, completions, completion_ids, problem_id column,
trainer_state, log_extra, log_metric) and returns one float per completion, or None for an
infrastructure failure (TRL masks it). The verifier runs once per completion per batch whatever the
number of reward functions. The run files they feed are rlvr.grpo.reward_log's.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..environment import episode_metrics, episode_record, final_answer
from ..problems import Problem
from ..runlog import RunDir
from ..verifier import Outcome, Verifier
from ..verifier.extract import extract_code
from ..verifier.scoring import COMPILE_MAX, TYPE_CHECK_MAX
from ..verifier.style import STYLE_MAX
from .judge import Judge
from .reward_log import RewardLog

COMPILED_STAGES = ("pass", "test_failure", "timeout")


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


class RewardContext:
    """What the reward functions of one training run share: the verifier and its cache of outcomes,
    the problems, the settings, and where their run files go (rlvr.reward_log)."""

    def __init__(
        self,
        verifier: Verifier,
        problems: Sequence[Problem],
        run: RunDir | None = None,
        settings: RewardSettings | None = None,
        judge: Judge | None = None,
        check_cost: float = 0.0,
    ):
        self.verifier = verifier
        self.check_cost = check_cost  # ENV_CHECK_COST: taken off an episode's reward per check
        self.judge = judge
        self.problems = {p.id: p for p in problems}
        self.settings = settings or RewardSettings()
        self.log = RewardLog(run)
        self._cache: OrderedDict[tuple[str, str], Outcome] = OrderedDict()

    def outcomes(self, problem_ids: Sequence[str], texts: Sequence[str]) -> list[Outcome]:
        """Verifier outcomes for a batch; pairs already scored in this run are not scored again."""
        missing = [(pid, t) for pid, t in zip(problem_ids, texts) if (pid, t) not in self._cache]
        if missing:
            unknown = sorted({pid for pid, _ in missing if pid not in self.problems})
            if unknown:
                raise KeyError(
                    f"reward: unknown problem id(s) {unknown[:3]} (the dataset and the problems disagree)"
                )
            fresh = self.verifier.score_batch(
                [(self.problems[pid], t) for pid, t in missing], ids=[pid for pid, _ in missing]
            )
            for key, o in zip(missing, fresh):
                self._cache[key] = o
            while len(self._cache) > 20000:
                self._cache.popitem(last=False)
        return [self._cache[(pid, t)] for pid, t in zip(problem_ids, texts)]


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
JUDGE = "judge"  # scored per batch by ctx.judge, not per outcome
REWARD_NAMES = (*SCORERS, JUDGE)


def judge_scores(ctx: RewardContext, problem_ids: Sequence[str], texts: Sequence[str], outcomes) -> list:
    """The judge's grade of each answer that passes every test; 0.0 for every other answer, except an
    infrastructure failure, which stays None (TRL masks a sample only when every column is None)."""
    if ctx.judge is None:
        raise ValueError("reward judge: no judge was configured (JUDGE_URL)")
    passing = [n for n, o in enumerate(outcomes) if o.stage == "pass"]
    graded = ctx.judge.scores([(ctx.problems[problem_ids[n]], extract_code(texts[n]).code) for n in passing])
    values: list[float | None] = [None if o.stage == "infra_error" else 0.0 for o in outcomes]
    for n, score in zip(passing, graded):
        values[n] = score
    return values


def make_reward_function(
    name: str, ctx: RewardContext, logs_metrics: bool = True
) -> Callable[..., list[float | None]]:
    """A TRL reward function named `name` (TRL logs it as rewards/<name>/mean). The one with
    `logs_metrics` (the first of a run's rewards) also logs the stage column and verifier/* metrics."""
    if name not in REWARD_NAMES:
        raise ValueError(f"unknown reward {name!r}; available: {', '.join(REWARD_NAMES)}")
    scorer = SCORERS.get(name)

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
        # multi-turn episodes (GRPO_ENVIRONMENT): TRL passes the environments; the answer is the last
        # ```ocaml block of the model's turns, never a tool's output
        environments = _columns.get("environments")
        if environments is not None:
            texts = [final_answer(c) for c in completions]
        else:
            texts = [completion_text(c) for c in completions]
        outcomes = ctx.outcomes(problem_id, texts)
        if scorer is None:
            values = judge_scores(ctx, problem_id, texts, outcomes)
        else:
            values = [scorer(o, t, ctx.settings) for o, t in zip(outcomes, texts)]
        episodes = None
        if environments is not None:
            episodes = [episode_record(c, e, ctx.check_cost) for c, e in zip(completions, environments)]
            if logs_metrics:  # the cost once per episode, on the run's first reward
                values = [
                    None if v is None else round(v - ep["check_cost"], 6) for v, ep in zip(values, episodes)
                ]
        # The optimizer step these completions train (metrics.jsonl logs that step after the update).
        step = int(getattr(trainer_state, "global_step", 0) or 0) + 1
        ctx.log.log_batch(id(completions), step, prompts, problem_id, texts, outcomes, episodes=episodes)
        ctx.log.log_rewards(name, step, problem_id, outcomes, values)
        if log_extra is not None and logs_metrics:
            log_extra("stage", [o.stage for o in outcomes])
        if log_metric is not None and logs_metrics:
            n = len(outcomes)
            log_metric("verifier/pass_rate", sum(o.stage == "pass" for o in outcomes) / n)
            log_metric("verifier/compile_rate", sum(o.stage in COMPILED_STAGES for o in outcomes) / n)
            log_metric("verifier/infra_errors", float(sum(o.stage == "infra_error" for o in outcomes)))
            if episodes is not None:
                for key, value in episode_metrics(episodes, values).items():
                    log_metric(key, value)
        return values

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


def build_reward_functions(specs: Sequence[str], ctx: RewardContext) -> tuple[list[Callable], list[float]]:
    """Parse `name[:weight]` specs (GRPO_REWARDS) into TRL reward functions and their weights."""
    funcs, weights = [], []
    for spec in specs:
        name, _, w = spec.partition(":")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ValueError(f"GRPO_REWARDS entry {spec!r}: the weight after ':' must be a number") from None
        funcs.append(make_reward_function(name.strip(), ctx, logs_metrics=not funcs))
        weights.append(weight)
    if not funcs:
        raise ValueError("GRPO_REWARDS is empty: name at least one reward (e.g. ocaml)")
    return funcs, weights
