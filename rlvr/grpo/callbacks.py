"""GRPO's trainer hooks: the signal guard (no reward variance, no gradient) and generation/reward timing."""

from __future__ import annotations

import time
from collections import deque

from transformers import TrainerCallback

from ..runlog import RunDir

NO_SIGNAL_FIXES = (
    "start from an SFT model (make pipeline, or make sft-train then BASE_MODEL_ID=sft_runs/latest/final)",
    "more completions per prompt (GRPO_NUM_GENERATIONS=8 or 16)",
    "easier problems (a TRAINING_DATASET of problems the model sometimes solves)",
    "a higher sampling temperature (GRPO_TEMPERATURE=1.0)",
)


class SignalGuardCallback(TrainerCallback):
    """Says plainly when GRPO has no gradient: >= `threshold` of the groups of the last `window`
    logged steps had zero reward variance (every completion of a prompt scored the same, so every
    advantage is 0 and the step changes nothing).

    It prints a warning to the training log and writes a `no_signal` event to metrics.jsonl when the
    run enters that state, and a `signal_restored` event when it leaves it; the dashboard shows the
    latest of the two.
    """

    def __init__(self, run: RunDir, window: int = 10, threshold: float = 0.9):
        self.run = run
        self.window = window
        self.threshold = threshold
        self.recent: deque[float] = deque(maxlen=window)
        self.warned = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        value = (logs or {}).get("frac_reward_zero_std")
        if not isinstance(value, int | float) or not state.is_world_process_zero:
            return
        self.recent.append(float(value))
        if len(self.recent) < self.window:
            return
        mean = sum(self.recent) / len(self.recent)
        if mean >= self.threshold and not self.warned:
            self.warned = True
            message = (
                f"no gradient: {mean:.0%} of the groups of the last {self.window} steps had zero reward "
                "variance, so the model is not learning"
            )
            print(f"WARNING: {message}. Fixes: " + "; ".join(NO_SIGNAL_FIXES), flush=True)
            self.run.write(
                "metrics.jsonl",
                {
                    "event": "no_signal",
                    "step": state.global_step,
                    "time": time.time(),
                    "frac_reward_zero_std_window": mean,
                    "window": self.window,
                    "message": message,
                    "fixes": list(NO_SIGNAL_FIXES),
                },
            )
        elif mean < self.threshold and self.warned:
            self.warned = False
            print(
                f"learning signal is back: {mean:.0%} of the last {self.window} steps' groups had zero variance"
            )
            self.run.write(
                "metrics.jsonl",
                {"event": "signal_restored", "step": state.global_step, "time": time.time(),
                 "frac_reward_zero_std_window": mean, "window": self.window},
            )  # fmt: skip


class TimingMixin:
    """Adds timing/generation_s and timing/reward_s (all reward functions of a batch, the verifier
    included) to the trainer's logged metrics."""

    def _generate(self, prompts):
        start = time.monotonic()
        try:
            return super()._generate(prompts)
        finally:
            self._metrics["train"]["timing/generation_s"].append(time.monotonic() - start)

    def _calculate_rewards(self, *args, **kwargs):
        start = time.monotonic()
        try:
            return super()._calculate_rewards(*args, **kwargs)
        finally:
            self._metrics["train"]["timing/reward_s"].append(time.monotonic() - start)


# Two rewards closer than this are equal: the verifier rounds every reward to 1e-6.
SAME_REWARD = 1e-6


class ZeroSpreadMixin:
    """Makes `frac_reward_zero_std` count every group whose rewards are all equal.

    TRL counts a group only when `torch.isclose(std, 0)` (atol 1e-8), and eight rewards of 0.21 have a
    float32 std of 1.6e-8: a group without any learning signal was logged as one with signal (over
    grpo30-shuffle's 30 steps, 0.033 logged against 0.100 exact), and the signal guard read it. Here a
    group counts when its total rewards span at most SAME_REWARD (unscorable rows left out)."""

    def _calculate_rewards(self, *args, **kwargs):
        rewards = super()._calculate_rewards(*args, **kwargs)
        self._rewards_for_spread = rewards
        return rewards

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        rewards = getattr(self, "_rewards_for_spread", None)
        mode = "train" if self.model.training else "eval"
        logged = self._metrics[mode].get("frac_reward_zero_std")
        if rewards is not None and logged:
            import torch

            size = (
                self.num_generations
                if mode == "train"
                else getattr(self, "num_generations_eval", self.num_generations)
            )
            total = (rewards * self.reward_weights.to(rewards.device).unsqueeze(0)).nansum(dim=1)
            total[torch.isnan(rewards).all(dim=1)] = torch.nan
            groups = total.view(-1, size)
            high = torch.where(torch.isnan(groups), -torch.inf, groups).max(dim=1).values
            low = torch.where(torch.isnan(groups), torch.inf, groups).min(dim=1).values
            same = ~(high - low > SAME_REWARD)  # an all-unscorable group (inf - inf = nan) counts too
            logged[-1] = same.float().mean().item()
        self._rewards_for_spread = None
        return out
