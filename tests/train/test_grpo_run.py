"""Two real GRPO steps on CPU (TRL + PEFT + the real verifier) with a tiny random model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO, read_jsonl, run_module, train_env


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory):
    from .conftest import PROBLEMS

    base = tmp_path_factory.mktemp("grpo")
    problems = base / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    env = train_env(tiny_model, problems, base / "runs")
    proc = run_module("rlvr.train", env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base / "runs" / "run", problems, proc


def test_every_run_file_is_written(finished_run):
    run, _, _ = finished_run
    for name in (
        "run.json",
        "metrics.jsonl",
        "batch_metrics.jsonl",
        "completions.jsonl",
        "rewards/ocaml.jsonl",
    ):
        assert (run / name).stat().st_size > 0, name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").exists()
    assert (run / "final" / "adapter_model.safetensors").exists()
    assert (run.parent / "latest").resolve() == run.resolve()


def test_a_run_from_a_base_model_hints_at_sft_first(finished_run):
    _, _, proc = finished_run
    hints = [line for line in proc.stdout.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1 and "is not an SFT result" in hints[0] and "make pipeline" in hints[0]


def test_the_update_shares_each_groups_prompt_pass_after_checking_it(finished_run):
    run, _, proc = finished_run
    assert "shared prompt forward: agrees with TRL's" in proc.stdout
    assert json.loads((run / "run.json").read_text())["config"]["shared_prompt_forward"] is True


def test_run_json_records_config_versions_and_status(finished_run):
    info = json.loads((finished_run[0] / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["config"]["max_steps"] == 2
    assert info["config"]["num_generations"] == 2
    assert {"torch", "transformers", "trl", "peft"} <= set(info["versions"])
    assert info["kind"] == "grpo"
    assert info["time_limits_derived"] == 2  # both problems' limits come from their reference


def test_metrics_lines_have_the_documented_fields(finished_run):
    lines = [m for m in read_jsonl(finished_run[0] / "metrics.jsonl") if "event" not in m]
    assert [m["step"] for m in lines] == [1, 2]
    for key in (
        "epoch",
        "time",
        "elapsed_s",
        "loss",
        "grad_norm",
        "learning_rate",
        "reward",
        "reward_std",
        "rewards/ocaml/mean",
        "frac_reward_zero_std",
        "completions/mean_length",
        "completions/clipped_ratio",
        "entropy",
        "step_time",
        "timing/generation_s",
        "timing/reward_s",
    ):
        assert key in lines[0], key
    assert "tokens_per_second" in lines[1]


def test_batch_metrics_count_every_completion(finished_run):
    batches = read_jsonl(finished_run[0] / "batch_metrics.jsonl")
    assert [b["step"] for b in batches] == [1, 2]
    for b in batches:
        assert b["n_completions"] == 2
        assert sum(b["stage_counts"].values()) == 2
        assert sum(b["reward_histogram"]["counts"]) == 2 - b["infra_errors"]
    # pass@1 and pass@k agree with the completions of the same step (the tiny model may pass nothing)
    rows = read_jsonl(finished_run[0] / "completions.jsonl")
    for b in batches:
        step = [r for r in rows if r["step"] == b["step"]]
        passed = [r["stage"] == "pass" for r in step]
        assert b["pass@1"] == sum(passed) / len(passed) and b["pass@k"] == float(any(passed))


def test_completions_are_grouped_by_prompt(finished_run):
    rows = read_jsonl(finished_run[0] / "completions.jsonl")
    assert len(rows) == 4
    assert sorted((r["step"], r["group_index"]) for r in rows) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(r["problem_id"] in ("double", "is_empty") for r in rows)


def test_rewards_match_the_scoring_cli(finished_run, tmp_path):
    run, problems, _ = finished_run
    rewards = read_jsonl(run / "rewards" / "ocaml.jsonl")
    completions = read_jsonl(run / "completions.jsonl")
    assert len(rewards) == len(completions) == 4
    inp = tmp_path / "c.jsonl"
    inp.write_text(
        "".join(
            json.dumps({"id": c["problem_id"], "completion": c["completion"]}) + "\n" for c in completions
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "rlvr.score", "--problems", str(problems), "--completions", str(inp)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    cli = [json.loads(line) for line in out.stdout.splitlines()]
    assert [o["total_reward"] for o in cli] == [r["total_reward"] for r in rewards]
    assert [o["stage"] for o in cli] == [r["stage"] for r in rewards]


def test_no_nan_reaches_the_files(finished_run):
    for name in ("metrics.jsonl", "batch_metrics.jsonl", "rewards/ocaml.jsonl"):
        assert "NaN" not in (finished_run[0] / name).read_text()
