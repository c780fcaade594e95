"""Real SFT runs on CPU with a tiny model: started in the background through rlvr.launch (as
`make sft-train` does), stopped with `make stop`'s code path, resumed explicitly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvr.liveness import pid_alive

from .conftest import REPO, sft_env, write_problems


def launch(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlvr.launch", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate, timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("sft")
    problems = write_problems(base / "problems.jsonl")
    runs = base / "runs"
    env = sft_env(tiny_model, problems, runs)
    started = launch(env, "start", "sft")
    assert started.returncode == 0, started.stderr
    pid = int((runs / ".train.pid").read_text().split()[0])
    assert wait_for(lambda: not pid_alive(pid)), "the SFT run did not finish"
    return runs / "run", started


def test_launch_prints_where_to_look(finished_run):
    run, started = finished_run
    assert "sft started in the background" in started.stdout
    assert f"run directory: {run}" in started.stdout
    assert f"tail -f {run / 'sft_training.log'}" in started.stdout
    assert "make stop" in started.stdout
    assert "finished: adapter saved to" in (run / "sft_training.log").read_text()


def test_run_files_are_written(finished_run):
    run, _ = finished_run
    info = json.loads((run / "run.json").read_text())
    assert (info["kind"], info["status"], info["steps"]) == ("sft", "finished", 2)
    assert info["train_examples"] == 2 and info["eval_examples"] == 2
    assert info["config"]["max_steps"] == 2 and {"torch", "trl", "peft"} <= set(info["versions"])
    assert (run / "final" / "adapter_model.safetensors").exists()
    assert (run / "final" / "adapter_config.json").exists()
    assert (run / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run.parent / "latest").resolve() == run.resolve()


def test_metrics_have_the_documented_fields(finished_run):
    run, _ = finished_run
    lines = read_jsonl(run / "metrics.jsonl")
    train = [m for m in lines if "loss" in m and "event" not in m]
    evals = [m for m in lines if "eval_loss" in m]
    assert [m["step"] for m in train] == [1, 2]
    assert [m["step"] for m in evals] == [1, 2]  # SFT_EVAL_STEPS=1
    for m in train:
        for key in ("step", "epoch", "time", "loss", "learning_rate", "grad_norm", "step_time"):
            assert isinstance(m[key], int | float), key
    for m in evals:
        assert m["eval_loss"] > 0 and {"step", "epoch", "time"} <= set(m)
    assert "NaN" not in (run / "metrics.jsonl").read_text()


def test_stop_saves_a_checkpoint_and_an_explicit_resume_continues(tiny_model, sft_problems, tmp_path):
    runs = tmp_path / "runs"
    env = sft_env(tiny_model, sft_problems, runs, SFT_MAX_STEPS="400", SFT_EVAL_STEPS="1000")
    env["SFT_SAVE_STEPS"] = "1000"
    assert launch(env, "start", "sft").returncode == 0
    metrics = runs / "run" / "metrics.jsonl"
    assert wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0), (
        runs / "run" / "sft_training.log"
    ).read_text()[-3000:]
    stopped = launch(env, "stop")
    assert stopped.returncode == 0 and "stopping sft pid" in stopped.stdout
    info = json.loads((runs / "run" / "run.json").read_text())
    assert info["status"] == "stopped"
    checkpoint = info["last_checkpoint_step"]
    assert 1 <= checkpoint < 400
    assert (runs / "run" / "checkpoints" / f"checkpoint-{checkpoint}" / "trainer_state.json").exists()

    resumed = launch(
        {**env, "SFT_RESUME": "latest", "SFT_MAX_STEPS": str(checkpoint + 2), "FOREGROUND": "1"},
        "start",
        "sft",
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    lines = read_jsonl(metrics)
    marker = [m for m in lines if m.get("event") == "resume"]
    assert len(marker) == 1 and marker[0]["step"] == checkpoint
    assert max(m["step"] for m in lines if "loss" in m) == checkpoint + 2
    info = json.loads((runs / "run" / "run.json").read_text())
    assert info["status"] == "finished" and [r["from_step"] for r in info["resumes"]] == [checkpoint]


def test_a_second_run_with_the_same_name_is_refused(tiny_model, sft_problems, tmp_path):
    (tmp_path / "runs" / "run").mkdir(parents=True)
    (tmp_path / "runs" / "run" / "run.json").write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-m", "sft.train"],
        env=sft_env(tiny_model, sft_problems, tmp_path / "runs"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "already holds a run" in proc.stderr and "SFT_RUN_NAME" in proc.stderr
