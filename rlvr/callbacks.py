"""The trainer hook every trainer uses: metrics.jsonl lines, run status, a graceful stop on SIGTERM.

GRPO's own hooks (the signal guard, generation and reward timing) are rlvr.grpo.callbacks'.
"""

from __future__ import annotations

import signal
import time

from transformers import TrainerCallback

from .runlog import RunDir, now_iso


class RunFilesCallback(TrainerCallback):
    """Writes one metrics.jsonl line per logging step (TRL's keys plus time, elapsed and tokens/s)."""

    def __init__(self, run: RunDir):
        self.run = run
        self.start = time.time()
        self._last_tokens: tuple[float, float] | None = None  # (time, num_tokens)
        self.stop_requested = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        now = time.time()
        record = {"step": state.global_step, "epoch": state.epoch, "time": now, "elapsed_s": now - self.start}
        if "train_runtime" in logs:  # the trainer's end-of-training summary, not a step's metrics
            self.run.write("metrics.jsonl", {"event": "train_end", **record, **logs})
            return
        record.update(logs)
        tokens = logs.get("num_tokens")
        if isinstance(tokens, int | float):
            if self._last_tokens and now > self._last_tokens[0] and tokens >= self._last_tokens[1]:
                record["tokens_per_second"] = (tokens - self._last_tokens[1]) / (now - self._last_tokens[0])
            self._last_tokens = (now, float(tokens))
        gen, rew, step = logs.get("timing/generation_s"), logs.get("timing/reward_s"), logs.get("step_time")
        if isinstance(gen, float) and isinstance(rew, float) and isinstance(step, float):
            record["timing/update_s"] = max(0.0, step - gen - rew)
        self.run.write("metrics.jsonl", record)

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop_requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.run.update_info(last_checkpoint_step=state.global_step, updated_at=now_iso())

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the current step, save a checkpoint, stop (`make stop`)."""

        def handler(signum, frame):
            if self.stop_requested:  # a second signal: stop now
                raise KeyboardInterrupt
            print(f"received signal {signum}: saving a checkpoint after this step, then stopping", flush=True)
            self.stop_requested = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
