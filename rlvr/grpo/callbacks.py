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
