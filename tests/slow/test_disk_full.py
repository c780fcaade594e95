"""A disk that fills up mid-run: a real GRPO run (tiny model) writing to a small tmpfs stops with a clear
message naming the run and how to continue, keeps every line it wrote whole, and resumes to the end once
the filesystem has room (the tmpfs remounted larger)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.train.conftest import PROBLEMS, run_module, tiny_model, train_env  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_a_full_disk_stops_the_run_cleanly_and_it_resumes_after(tiny_model, tmpfs, tmp_path):  # noqa: F811
    # 12 MB: a few checkpoints of the tiny model (tokenizer files included) fill it
    small_disk = tmpfs("12m")
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    runs = small_disk / "runs"
    env = train_env(tiny_model, problems, runs, GRPO_MAX_STEPS="40", GRPO_SAVE_TOTAL_LIMIT="40")
    run = runs / "run"

    full = run_module("rlvr.train", env)
    assert full.returncode == 1, full.stdout[-2000:] + full.stderr[-2000:]
    assert f"no space left on the device that holds {run}" in full.stderr
    assert f"GRPO_RESUME={run}" in full.stderr
    written = {p: p.read_bytes() for p in run.rglob("*.jsonl") if "checkpoints" not in p.parts}
    assert written[run / "metrics.jsonl"]
    for path, data in written.items():  # what was written is whole: no torn line
        assert data.endswith(b"\n"), path
        for line in data.splitlines():
            json.loads(line)
    steps_before = [json.loads(x)["step"] for x in written[run / "metrics.jsonl"].splitlines()]

    subprocess.run(["mount", "-o", "remount,size=512m", str(small_disk)], check=True)
    resumed = run_module("rlvr.train", {**env, "GRPO_RESUME": str(run)})
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    for path, data in written.items():
        assert path.read_bytes().startswith(data), path
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and len(info["resumes"]) == 1
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in lines if "event" not in m) == 40
    assert max(steps_before) < 40
    assert os.path.isdir(run / "final")
