"""Background start, refusal of a second run, SIGKILL mid-run, explicit resume: nothing written is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from rlvr.liveness import pid_alive
from rlvr.runlog import JsonlFile, repair_torn_tail

from .conftest import REPO, train_env


def launch(env, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "rlvr.launch", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_kill_and_resume_loses_no_metric_line_and_no_checkpoint(tiny_model, problems_file, tmp_path):
    runs = tmp_path / "runs"
    env = train_env(tiny_model, problems_file, runs, GRPO_MAX_STEPS="5", GRPO_SAVE_TOTAL_LIMIT="10")
    started = launch(env, "start", "grpo")
    assert started.returncode == 0, started.stderr
    assert f"log:           tail -f {runs / 'run' / 'training.log'}" in started.stdout
    pid = int((runs / ".train.pid").read_text().split()[0])

    refused = launch(env, "start", "grpo")
    assert refused.returncode == 2
    assert f"already running in {runs} (pid {pid})" in refused.stderr

    ckpt = runs / "run" / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    assert wait_for(ckpt.exists), (runs / "run" / "training.log").read_text()[-3000:]
    os.killpg(pid, signal.SIGKILL)
    assert wait_for(lambda: not pid_alive(pid), 30)
    before = (runs / "run" / "metrics.jsonl").read_bytes()
    checkpoints_before = sorted(p.name for p in (runs / "run" / "checkpoints").glob("checkpoint-*"))
    assert json.loads((runs / "run" / "run.json").read_text())["status"] == "running"  # killed, never updated
    assert run_states(env) == {("grpo", "run"): "died"}  # make status does not believe it

    resumed = launch({**env, "GRPO_RESUME": "latest", "FOREGROUND": "1"}, "start", "grpo")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    after = (runs / "run" / "metrics.jsonl").read_bytes()
    assert after.startswith(before)  # every line written before the kill is still there
    lines = [json.loads(x) for x in after.decode().splitlines()]
    marker = [m for m in lines if m.get("event") == "resume"]
    assert len(marker) == 1 and marker[0]["step"] >= 2
    assert max(m["step"] for m in lines if "event" not in m) == 5
    assert set(checkpoints_before) <= {p.name for p in (runs / "run" / "checkpoints").glob("checkpoint-*")}
    info = json.loads((runs / "run" / "run.json").read_text())
    assert info["status"] == "finished"
    assert [r["from_step"] for r in info["resumes"]] == [marker[0]["step"]]
    assert not (runs / ".train.pid").exists()
    assert run_states(env) == {("grpo", "run"): "finished"}


def run_states(env: dict[str, str]) -> dict[tuple[str, str], str]:
    """`python -m rlvr.status --json` (what `make status` runs): (kind, run) -> state."""
    out = subprocess.run(
        [sys.executable, "-m", "rlvr.status", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return {(r["kind"], r["name"]): r["state"] for r in rows}


def test_a_new_run_never_appends_to_an_existing_one(tiny_model, problems_file, tmp_path):
    runs = tmp_path / "runs"
    (runs / "run").mkdir(parents=True)
    (runs / "run" / "run.json").write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr.train"],
        env=train_env(tiny_model, problems_file, runs),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "already holds a run" in proc.stderr


def test_torn_last_line_is_cut_before_appending(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "lo')
    assert repair_torn_tail(path) == len(b'{"step": 2, "lo')
    f = JsonlFile(path)
    f.write({"step": 2, "loss": float("nan")})
    f.close()
    assert path.read_text() == '{"step": 1}\n{"step": 2, "loss": null}\n'


def test_stop_with_nothing_running(tmp_path):
    env = {**os.environ, "GRPO_OUTPUT_DIR": str(tmp_path / "g"), "SFT_OUTPUT_DIR": str(tmp_path / "s"),
           "PIPELINE_OUTPUT_DIR": str(tmp_path / "p")}  # fmt: skip
    proc = launch(env, "stop", timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "nothing to stop")


def test_make_and_the_module_name_runs_the_same_way(tmp_path):
    """`make rlvr-train` (the launcher) and `python -m rlvr.train` name a new run alike:
    <YYYYmmdd-HHMMSS>-<model tag>, from the model the profile resolves (here: bundled on cpu)."""
    import re

    from rlvr.grpo.config import GRPOTrainConfig

    env = dict(os.environ, PYTHONPATH=str(REPO), GRPO_OUTPUT_DIR=str(tmp_path / "runs"), GRPO_PROFILE="cpu",
               GRPO_MAX_STEPS="-5", FOREGROUND="1")  # fmt: skip
    env.pop("BASE_MODEL_ID", None)
    env.pop("GRPO_RUN_NAME", None)
    proc = launch(env, "start", "grpo")
    assert proc.returncode == 2 and "GRPO_MAX_STEPS='-5'" in proc.stdout + proc.stderr
    made = [p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    pattern = r"\d{8}-\d{6}-bundled"
    assert len(made) == 1 and re.fullmatch(pattern, made[0]), made
    assert re.fullmatch(pattern, GRPOTrainConfig.from_env({"GRPO_PROFILE": "cpu"}).run_name)


def test_resuming_a_run_that_does_not_exist_names_the_variable(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), GRPO_OUTPUT_DIR=str(tmp_path / "runs"), GRPO_RESUME="nope")
    proc = launch(env, "start", "grpo")
    assert proc.returncode == 2
    assert "GRPO_RESUME='nope': no such run directory" in proc.stderr
