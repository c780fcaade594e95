"""Trackers: one that is not installed is refused at configuration; trackio (local-first, no account)
receives a real run's metrics, read back from trackio's own store."""

from __future__ import annotations

import importlib.util

import pytest

from rlvr.config import TRACKIO_PROJECT
from rlvr.envconf import ConfigError
from rlvr.grpo.config import GRPOTrainConfig
from sft.config import SFTTrainConfig

from .conftest import run_module, train_env


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_that_is_not_installed_is_refused_with_the_install_command():
    with pytest.raises(ConfigError, match=r"GRPO_REPORT_TO='wandb': wandb is not installed; .*\[tracking\]"):
        GRPOTrainConfig.from_env({"GRPO_REPORT_TO": "wandb"}, cuda=False)
    with pytest.raises(ConfigError, match=r"SFT_REPORT_TO='tensorboard,wandb': wandb is not installed"):
        SFTTrainConfig.from_env({"SFT_REPORT_TO": "tensorboard,wandb"}, cuda=False)


def test_a_one_step_run_logs_to_trackio(tiny_model, problems_file, tmp_path):
    pytest.importorskip("trackio", reason="trackio comes with the dev extra")
    trackio_dir = tmp_path / "trackio"
    env = train_env(
        tiny_model, problems_file, tmp_path / "runs", GRPO_MAX_STEPS="1", GRPO_REPORT_TO="trackio",
        TRACKIO_DIR=str(trackio_dir), GRPO_RUN_NAME="trackio-run",
    )  # fmt: skip
    proc = run_module("rlvr.train", env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # read back with trackio's own reader, in a process that sees the same TRACKIO_DIR
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; from trackio.sqlite_storage import SQLiteStorage as S; "
        f"print(json.dumps(S.get_logs({TRACKIO_PROJECT!r}, 'trackio-run'), default=str))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    logs = json.loads(out.stdout.strip().splitlines()[-1])
    steps = [row for row in logs if "train/loss" in row or "loss" in row]
    assert steps, logs
    row = steps[0]
    reward = row.get("train/reward", row.get("reward"))
    assert isinstance(reward, float) and 0.0 <= reward <= 1.0
    assert (trackio_dir / f"{TRACKIO_PROJECT}.db").exists()
