"""verl 0.9.1, in its own environment (.venv-verl, made by `scripts/bootstrap.sh verl`: its pins conflict
with ours), does what a verl run does with our reward and data, through verl's own code
(tests/slow/verl_probe.py): its dataset class reads the converted parquet, its loader finds our reward
function from a config, its reward managers score real completions with the verifier's exact values, and
the example PPO / GRPO configs compose against verl's config tree into verl's own dataclasses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rlvr.data import REPO_ROOT, load_problems
from rlvr.models import resolve_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

VERL_PY = REPO_ROOT / ".venv-verl" / "bin" / "python"


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    subprocess.run([str(REPO_ROOT / "scripts" / "bootstrap.sh"), "verl"], cwd=REPO_ROOT, check=True)
    out = tmp_path_factory.mktemp("verl")
    parquet = out / "train.parquet"
    subprocess.run(
        [sys.executable, "-m", "rlvr.integrations.verl_data", "--split", "train", "--out", str(parquet)],
        cwd=REPO_ROOT, check=True,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [str(VERL_PY), str(REPO_ROOT / "tests" / "slow" / "verl_probe.py"), str(parquet), resolve_model("bundled")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_verls_dataset_reads_the_converted_parquet(probe):
    train = load_problems("bundled", split="train")[0]
    assert probe["dataset_len"] == len(train)
    row = probe["dataset_row0"]
    assert row["raw_prompt_roles"] == ["system", "user"]
    assert row["problem_id"] == row["ground_truth_id"] == train[0].id
    assert row["data_source"] == "ocamler-grpo"


def test_verls_loader_finds_our_function_from_the_config(probe):
    assert probe["loaded_fn"].endswith(
        ".compute_score"
    )  # verl imports the file under a module name of its own
    assert probe["manager"] == "NaiveRewardManager"


def test_verls_reward_managers_give_the_verifiers_exact_scores(probe, verifier):
    train = load_problems("bundled", split="train")[0]
    expected = [o.total_reward for o in verifier.score_batch([(train[0], a) for a in probe["answers"]])]
    assert expected[0] == 1.0 and expected[1] == 0.0  # the reference, a syntax error
    assert probe["naive_scores"] == expected
    assert probe["batch_scores"] == pytest.approx(expected)
    assert probe["naive_extra"] == [1.0, 0.0, 0.0]
    assert probe["batch_extra"]["pass"] == [1.0, 0.0, 0.0]
    assert probe["batch_extra"]["infra_error"] == [0.0, 0.0, 0.0]


def test_the_example_configs_carry_the_specifications_coefficients(probe):
    ppo, grpo = probe["ocaml_ppo"], probe["ocaml_grpo_lora"]
    assert ppo["adv_estimator"] == "gae" and grpo["adv_estimator"] == "grpo"
    assert (ppo["clip_ratio"], ppo["entropy_coeff"], ppo["grad_clip"], ppo["lora_rank"]) == (
        0.2,
        0.01,
        0.5,
        16,
    )
    assert (ppo["critic_grad_clip"], ppo["cliprange_value"], ppo["rollout_n"]) == (0.5, 0.5, 1)
    assert grpo["rollout_n"] == 8 and grpo["lora_rank"] == 64
    for c in (ppo, grpo):
        assert c["reward_fn"] == ["rlvr/integrations/verl_reward.py", "compute_score"]
