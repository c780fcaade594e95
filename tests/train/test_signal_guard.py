"""The signal guard: a GRPO run whose groups all score the same is told so, in the log and the run files."""

from __future__ import annotations

import json

from transformers import TrainerControl, TrainerState, TrainingArguments

from rlvr.grpo.callbacks import SignalGuardCallback
from rlvr.runlog import RunDir


def feed(guard: SignalGuardCallback, values: list[float], start: int = 1) -> None:
    args = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    state = TrainerState()
    for i, v in enumerate(values, start=start):
        state.global_step = i
        guard.on_log(args, state, TrainerControl(), logs={"loss": 0.0, "frac_reward_zero_std": v})


def events(run: RunDir) -> list[dict]:
    path = run.path / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if '"event"' in x]


def test_ten_steps_without_variance_warn_once_and_name_the_fixes(tmp_path, capsys):
    run = RunDir(tmp_path, "r")
    guard = SignalGuardCallback(run)
    feed(guard, [1.0] * 9)
    run.close()
    assert events(run) == []  # fewer than 10 steps: no verdict yet
    feed(guard, [1.0] * 5, start=10)
    run.close()
    found = events(run)
    assert [(e["event"], e["step"], e["frac_reward_zero_std_window"]) for e in found] == [
        ("no_signal", 10, 1.0)
    ]
    assert "make pipeline" in " ".join(found[0]["fixes"]) and "GRPO_NUM_GENERATIONS" in " ".join(
        found[0]["fixes"]
    )
    out = capsys.readouterr().out
    assert out.count("WARNING: no gradient: 100% of the groups of the last 10 steps") == 1


def test_the_threshold_is_ninety_percent_of_the_window(tmp_path):
    run = RunDir(tmp_path, "r")
    feed(SignalGuardCallback(run), [1.0] * 8 + [0.5, 0.5])  # mean 0.9: triggers
    feed(SignalGuardCallback(run), [1.0] * 8 + [0.5, 0.25])  # mean 0.875: does not
    run.close()
    assert [e["event"] for e in events(run)] == ["no_signal"]


def test_signal_coming_back_is_recorded(tmp_path):
    run = RunDir(tmp_path, "r")
    feed(SignalGuardCallback(run), [1.0] * 10 + [0.0] * 3)
    run.close()
    assert [(e["event"], e["step"]) for e in events(run)] == [("no_signal", 10), ("signal_restored", 12)]
