"""Runs that survive any kill: GRPO and SFT on the tiny model, killed with SIGKILL at random moments
(and the moment a checkpoint directory appears, to cut a save) many times over, resumed each time.

Checked after every kill: every line written before it is still there byte for byte, no line is torn,
run.json is valid JSON; after the last resume: the run finished every step, every resume went from a
whole checkpoint (torn ones are skipped with a message), and each file validates. The figures are
printed (and recorded in doc/benchmarks.md "Faults")."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvr.runlog import latest_checkpoint
from tests.sft.conftest import sft_env, write_problems
from tests.train.conftest import PROBLEMS, REPO, tiny_model, train_env  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

KILLS = 10
STEPS = 30  # enough that the run outlives the kills (each cycle runs a few steps)


def jsonl_files(run: Path) -> list[Path]:
    return sorted(p for p in run.rglob("*.jsonl") if "checkpoints" not in p.parts)


def snapshot(run: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in jsonl_files(run)}


def check_files(run: Path, before: dict[Path, bytes]) -> int:
    """Every earlier byte is still there; every line is whole JSON. Returns the lines checked."""
    lines = 0
    for path, old in before.items():
        assert path.read_bytes().startswith(old), f"{path}: lines written before the kill were lost"
    for path in jsonl_files(run):
        data = path.read_text()
        assert not data or data.endswith("\n"), f"{path}: a torn last line"
        for n, line in enumerate(data.splitlines(), 1):
            try:
                json.loads(line)
            except ValueError as e:
                raise AssertionError(f"{path}:{n}: not whole JSON ({e})") from None
            lines += 1
    json.loads((run / "run.json").read_text())
    return lines


def start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def kill_moment(proc: subprocess.Popen, run: Path, mode: str, rng: random.Random) -> str:
    """Wait for the moment to kill (the process may finish first); returns what it was."""
    ckpts = run / "checkpoints"
    seen = {p.name for p in ckpts.glob("checkpoint-*")} if ckpts.exists() else set()
    deadline = time.monotonic() + 120
    if mode == "checkpoint":  # the instant a new checkpoint directory appears: mid-save
        while time.monotonic() < deadline and proc.poll() is None:
            new = {p.name for p in ckpts.glob("checkpoint-*")} - seen if ckpts.exists() else set()
            if new:
                return "during checkpoint saving"
            time.sleep(0.001)
        return "finished first"
    # random: 0-2 s after the process wrote its first line (a new run's first step, a resumed run's
    # resume marker), so each cycle gets past start-up into generation, reward, logging or saving
    metrics = run / "metrics.jsonl"
    size = metrics.stat().st_size if metrics.exists() else -1
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.stat().st_size > size:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 2.0))
    return "at a random moment"


def survive_kills(module: str, env: dict[str, str], resume_var: str, run: Path, log: Path, seed: int) -> dict:
    rng = random.Random(seed)
    figures = {"kills": 0, "mid_checkpoint_kills": 0, "resumes": 0, "resumes_failed": 0, "lines_checked": 0}
    expected: list[int] = []
    figures["expected_resume_steps"] = expected
    proc = start(module, env, log)
    while True:
        mode = "checkpoint" if figures["kills"] % 3 == 1 else "random"
        moment = kill_moment(proc, run, mode, rng)
        if proc.poll() is None and figures["kills"] < KILLS:
            before = snapshot(run)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            figures["kills"] += 1
            figures["mid_checkpoint_kills"] += moment == "during checkpoint saving"
            figures["lines_checked"] += check_files(run, before)
            whole = latest_checkpoint(run / "checkpoints")  # where the resume must continue from
            expected.append(int(whole.name.rpartition("-")[2]) if whole else 0)
        else:
            code = proc.wait(timeout=600)
            if code != 0:
                figures["resumes_failed"] += 1
            status = json.loads((run / "run.json").read_text())["status"]
            if status == "finished" or code != 0:
                break
        proc = start(module, {**env, resume_var: str(run)}, log)
        figures["resumes"] += 1
    return figures


def check_finished(run: Path, figures: dict, log: Path) -> None:
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished", log.read_text()[-3000:]
    assert figures["resumes_failed"] == 0, log.read_text()[-3000:]
    assert len(info["resumes"]) == figures["resumes"] == figures["kills"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in lines if "event" not in m and "step" in m) == STEPS
    # each resume continued from the newest whole checkpoint there was after its kill (0: from scratch)
    assert [r["from_step"] for r in info["resumes"]] == figures.pop("expected_resume_steps")
    skipped = {line.split(":")[0] for line in log.read_text().splitlines() if line.startswith("skipping ")}
    figures["torn_checkpoints_skipped"] = len(skipped)  # distinct checkpoints a resume found torn
    print(f"\n{run.parent.parent.name}: {json.dumps(figures)}")


def test_grpo_survives_kills(tiny_model, tmp_path):  # noqa: F811
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    env = train_env(
        tiny_model, problems, tmp_path / "runs", GRPO_MAX_STEPS=str(STEPS), GRPO_SAVE_TOTAL_LIMIT="3"
    )
    run, log = tmp_path / "runs" / "run", tmp_path / "grpo.log"
    figures = survive_kills("rlvr.train", env, "GRPO_RESUME", run, log, seed=1)
    check_finished(run, figures, log)
    assert figures["kills"] == KILLS
    for name in ("batch_metrics.jsonl", "completions.jsonl", "rewards/ocaml.jsonl"):
        assert (run / name).stat().st_size > 0


def test_sft_survives_kills(tiny_model, tmp_path):  # noqa: F811
    problems = write_problems(tmp_path / "problems.jsonl")
    env = sft_env(tiny_model, problems, tmp_path / "runs", SFT_MAX_STEPS=str(STEPS), SFT_SAVE_TOTAL_LIMIT="3")
    run, log = tmp_path / "runs" / "run", tmp_path / "sft.log"
    figures = survive_kills("sft.train", env, "SFT_RESUME", run, log, seed=2)
    check_finished(run, figures, log)
    assert figures["kills"] == KILLS
