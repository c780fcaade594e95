"""Two real GRPO steps with the OCaml environment on (GRPO_ENVIRONMENT=ocaml): TRL's tool-calling loop,
the environment's reward and the episode files, with the tiny random model (which rarely calls the
tool: tests/slow/test_environment_runs.py trains one that does)."""

from __future__ import annotations

import json

import pytest

from .conftest import PROBLEMS, read_jsonl, run_module, train_env


@pytest.fixture(scope="module")
def env_run(tiny_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("grpo-env")
    problems = base / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    env = train_env(tiny_model, problems, base / "runs", GRPO_ENVIRONMENT="ocaml")
    proc = run_module("rlvr.train", env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base / "runs" / "run", proc


def test_the_run_finishes_and_records_the_environment(env_run):
    run, _ = env_run
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["config"]["environment"]["name"] == "ocaml"
    assert info["chat_template"].startswith("the model's ChatML template cannot call tools")
    assert (run / "final" / "adapter_model.safetensors").exists()


def test_every_completion_line_is_an_episode(env_run):
    run, _ = env_run
    lines = read_jsonl(run / "completions.jsonl")
    assert len(lines) == 2 * 2  # 2 steps x 2 completions
    for line in lines:
        assert line["conversation"] and line["conversation"][0]["role"] == "assistant"
        assert line["tool_calls"] == sum(len(t.get("tool_calls", [])) for t in line["conversation"])
        assert line["check_cost"] == pytest.approx(
            0.02 * sum(t["role"] == "tool" for t in line["conversation"])
        )
        # the prompt the model saw carries the tool's hint
        assert "call the `check` tool" in line["prompt"]


def test_metrics_carry_tool_calls_and_reward_by_calls(env_run):
    run, _ = env_run
    metrics = [m for m in read_jsonl(run / "metrics.jsonl") if "reward" in m]
    assert len(metrics) == 2
    for m in metrics:
        assert "env/tool_calls_mean" in m and "tools/call_frequency" in m
        assert any(k.startswith("env/reward_by_calls/") for k in m)
    batches = read_jsonl(run / "batch_metrics.jsonl")
    assert all(sum(b["tool_calls"]["episodes_by_calls"].values()) == 2 for b in batches)


def test_the_logged_reward_is_the_verdict_minus_the_cost(env_run):
    run, _ = env_run
    outcomes = read_jsonl(run / "rewards" / "ocaml.jsonl")
    lines = read_jsonl(run / "completions.jsonl")
    for o, line in zip(outcomes, lines):
        assert line["reward"] == pytest.approx(o["total_reward"] - line["check_cost"])
        assert o["reward"] == pytest.approx(line["reward"])
