"""Evaluation with EVAL_BACKEND=llama-server and the real llama.cpp build: the model (an adapter merged
onto its base) is converted, served, sampled and scored, and the server and its files are gone after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.eval.conftest import eval_problems
from tests.export.conftest import random_adapter
from tests.slow.test_llama_cpp_export import built, run  # noqa: F401  (fixture)
from tests.train.conftest import REPO, tiny_model  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # `built` may build llama.cpp (~15-20 min)


def test_an_adapter_is_evaluated_through_llama_server(built, tiny_model, tmp_path):  # noqa: F811
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in eval_problems()[:2]))
    adapter = random_adapter(tiny_model, tmp_path / "adapter")
    cmd = [
        sys.executable, "-m", "eval.run", "--model", str(adapter), "--backend", "llama-server", "--data",
        str(problems), "--n", "3", "--k", "1", "--temperature", "0.8", "--max-tokens", "12",
        "--output-dir", str(tmp_path / "runs"), "--run-name", "llama",
    ]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    from rlvr.export.llama_server import work_root

    before = {line.split()[0] for line in subprocess.run(
        ["pgrep", "-af", "ocamler-eval-model-"], capture_output=True, text=True
    ).stdout.splitlines()}  # fmt: skip
    dirs_before = {p.name for p in work_root().glob("ocamler-eval-model-*")}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "llama" / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["model"]["backend"] == "llama-server" and summary["model"]["spec"] == str(adapter)
    assert summary["model"]["extra_body"]["top_k"] == 0  # transformers' sampling, not llama.cpp's defaults
    assert summary["counts"]["samples"] == 6 and summary["counts"]["infra_errors"] == 0
    rows = [json.loads(line) for line in (tmp_path / "runs" / "llama" / "results.jsonl").open()]
    texts = [r["completion"] for r in rows]
    assert len(texts) == 6 and len(set(texts)) > 1  # sampled, each sample its own seed
    # the run's server and its weights are gone (other evaluations on this machine may have their own)
    served = subprocess.run(["pgrep", "-af", "ocamler-eval-model-"], capture_output=True, text=True).stdout
    assert [line for line in served.splitlines() if line.split()[0] not in before] == []
    assert [p.name for p in work_root().glob("ocamler-eval-model-*") if p.name not in dirs_before] == []


def test_a_model_llama_cpp_cannot_convert_is_a_clear_error(built, tmp_path):  # noqa: F811
    bogus = tmp_path / "not-a-model"
    bogus.mkdir()
    (bogus / "config.json").write_text(json.dumps({"architectures": ["NoSuchForCausalLM"]}))
    cmd = [
        sys.executable, "-m", "eval.run", "--model", str(bogus), "--backend", "llama-server", "--limit", "1",
        "--output-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"--model {bogus}" in proc.stderr and "cannot convert" in proc.stderr
    assert not Path(tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_pipeline_evaluates_through_llama_server_by_default_on_cpu(built, tiny_model, tmp_path):  # noqa: F811
    from tests.pipeline.test_pipeline import pipeline_env, run_pipeline

    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in eval_problems()[:2]))
    env = pipeline_env(tiny_model, problems, tmp_path, PIPELINE_PHASES="eval_base", PIPELINE_EVAL_GREEDY="0")
    del env["PIPELINE_EVAL_BACKEND"]
    proc = run_pipeline(env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = json.loads((tmp_path / "eval_runs" / "p-base-sampled" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["model"]["backend"] == "llama-server"
    assert summary["settings"]["backend"] == "llama-server"
    state = json.loads((tmp_path / "pipeline_runs" / "p" / "pipeline.json").read_text())
    assert state["config"]["eval_backend"] == "llama-server"
