"""`make pipeline` end to end on the tiny random model and four problems: real SFT, real GRPO (TRL), the
real verifier, real evaluations, a stop in the middle, a resume, and the report in a real browser."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlvr.envconf import ConfigError
from rlvr.pipeline import PHASES, PipelineConfig
from tests.sft.conftest import write_problems
from tests.train.conftest import REPO, tiny_model  # noqa: F401  (fixture)


def pipeline_env(model: Path, problems: Path, root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
        BASE_MODEL_ID=str(model),
        SFT_DATASET=str(problems),
        SFT_EVAL_DATASET=str(problems),
        TRAINING_DATASET=str(problems),
        PIPELINE_EVAL_DATA=str(problems),
        SFT_MAX_STEPS="2",
        GRPO_MAX_STEPS="6",
        GRPO_NUM_GENERATIONS="2",
        GRPO_SAVE_STEPS="1",
        GRPO_MAX_COMPLETION_LENGTH="12",
        PIPELINE_EVAL_N="2",
        PIPELINE_EVAL_BACKEND="transformers",  # the cpu default, llama-server: tests/slow/test_llama_eval.py
        SFT_PROFILE="cpu",
        GRPO_PROFILE="cpu",
        SFT_REPORT_TO="none",
        GRPO_REPORT_TO="none",
        PIPELINE_OUTPUT_DIR=str(root / "pipeline_runs"),
        SFT_OUTPUT_DIR=str(root / "sft_runs"),
        GRPO_OUTPUT_DIR=str(root / "grpo_runs"),
        EVAL_OUTPUT_DIR=str(root / "eval_runs"),
        PIPELINE_RUN_NAME="p",
    )
    env.update(extra)
    return env


def run_pipeline(env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m rlvr.pipeline` to its end, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "rlvr.pipeline"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def state(root: Path) -> dict:
    try:
        return json.loads((root / "pipeline_runs" / "p" / "pipeline.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def statuses(root: Path) -> dict[str, str]:
    return {p["name"]: p["status"] for p in state(root).get("phases", [])}


@pytest.fixture(scope="module")
def finished(tiny_model, tmp_path_factory):  # noqa: F811
    """A pipeline stopped during GRPO (SIGTERM, as `make stop` sends), then resumed to the end."""
    root = tmp_path_factory.mktemp("pipeline")
    problems = write_problems(root / "problems.jsonl")
    env = pipeline_env(tiny_model, problems, root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr.pipeline"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    grpo_run = root / "grpo_runs" / "p-grpo" / "run.json"

    def checkpointed() -> bool:  # stop once GRPO has saved a checkpoint, so the resume has one to use
        try:
            return json.loads(grpo_run.read_text()).get("last_checkpoint_step", 0) >= 1
        except (OSError, json.JSONDecodeError):
            return False

    deadline = time.monotonic() + 400
    running: dict = {}
    while not checkpointed() and proc.poll() is None and time.monotonic() < deadline:
        current = state(root)
        if current.get("current") == "grpo":  # the last look before the stop: its run dir is known by then
            running = next(p for p in current["phases"] if p["name"] == "grpo")
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    first_out = proc.communicate(timeout=300)[0].decode()
    first = {"code": proc.returncode, "state": state(root), "out": first_out, "running": running}
    resumed = run_pipeline({**env, "PIPELINE_RESUME": "latest"})
    return {"root": root, "first": first, "resumed": resumed}


def test_a_stop_stops_the_running_phase_and_keeps_the_finished_ones(finished):
    first = finished["first"]
    assert first["code"] == 0, first["out"][-3000:]
    assert first["state"]["status"] == "stopped"
    phases = {p["name"]: p for p in first["state"]["phases"]}
    assert [phases[n]["status"] for n in PHASES] == [
        "done",
        "stopped",
        "pending",
        "pending",
        "pending",
        "pending",
    ]
    assert "continue with PIPELINE_RESUME=p make pipeline" in first["out"]
    # while it ran, pipeline.json already named the phase's run (the dashboard links to it)
    assert first["running"]["status"] == "running"
    assert first["running"]["runs"] == {"train": str(finished["root"] / "grpo_runs" / "p-grpo")}


def test_resume_continues_from_the_stopped_phase_and_finishes(finished):
    resumed, root = finished["resumed"], finished["root"]
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    final = state(root)
    assert final["status"] == "finished" and len(final["resumes"]) == 1
    assert statuses(root) == dict.fromkeys(PHASES, "done")
    assert "[pipeline] phase sft" not in resumed.stdout  # done before the stop: not run again
    grpo_run = json.loads((root / "grpo_runs" / "p-grpo" / "run.json").read_text())
    assert grpo_run["status"] == "finished" and len(grpo_run["resumes"]) == 1  # the same run, resumed
    assert grpo_run["resumes"][0]["from_step"] >= 1  # from its checkpoint, not from the start
    # GRPO started from the SFT adapter, and each phase wrote its usual run directory
    assert str(root / "sft_runs" / "p-sft" / "final") in resumed.stdout
    for d in ("sft_runs/p-sft/final", "grpo_runs/p-grpo/final", "eval_runs/p-base-sampled/summary.json",
              "eval_runs/p-sft-greedy/summary.json", "eval_runs/p-final-sampled/results.jsonl"):  # fmt: skip
        assert (root / d).exists(), d
    log = (root / "pipeline_runs" / "p" / "logs" / "eval_final-sampled.log").read_text()
    assert "complete:" in log


def test_summary_has_intervals_goals_and_the_training_curves(finished):
    s = json.loads((finished["root"] / "pipeline_runs" / "p" / "summary.json").read_text())
    assert s["status"] == "finished" and [p["status"] for p in s["phases"]] == ["done"] * len(PHASES)
    assert s["training"]["sft"]["steps"] == 2 and s["training"]["grpo"]["steps"] == 6
    sampled = s["eval"]["sampled"]
    assert set(sampled["models"]) == {"base", "sft", "final"}
    base = sampled["models"]["base"]
    assert (base["problems"], base["samples"], base["samples_per_problem"]) == (2, 4, 2)
    assert set(base["by_difficulty"]) == {"unknown"}  # the eval problems have no difficulty
    assert set(base["pass_at_k"]) == {"pass@2"} and set(base["by_difficulty"]["unknown"]["pass_at_k"]) == {
        "pass@2"
    }
    diff = sampled["compare"]["final_vs_base"]["diff"]["mean_reward"]
    assert diff["low"] <= diff["estimate"] <= diff["high"] and diff["n"] == 2 and diff["exact"]
    assert set(sampled["compare"]) == {"final_vs_base", "sft_vs_base", "final_vs_sft"}
    assert s["eval"]["greedy"]["models"]["final"]["samples_per_problem"] == 1
    goals = {g["goal"] for g in s["goals"]}
    assert "parsed rate >= 60%" in goals and "95% interval of the mean-reward gain excludes 0" in goals


def test_the_report_opens_in_a_real_browser(finished):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no chromium binary at /usr/bin/chromium")
    report = finished["root"] / "pipeline_runs" / "p" / "report.html"
    html = report.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        assert page.title() == "learning report p"
        assert page.locator("svg").count() == 3  # SFT loss, GRPO reward, zero-variance groups
        text = page.inner_text("body")
        assert "final − base (95% CI)" in text and "By difficulty" in text and "Goals" in text
        browser.close()
    assert errors == []


def test_the_base_model_evaluation_is_reused_when_nothing_that_decides_it_changed(finished, tiny_model):  # noqa: F811
    root = finished["root"]
    env = pipeline_env(tiny_model, root / "problems.jsonl", root, PIPELINE_PHASES="eval_base")

    def run(name: str, **extra: str) -> subprocess.CompletedProcess:
        return run_pipeline({**env, "PIPELINE_RUN_NAME": name, **extra})

    same = run("q")
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-2000:]
    assert f"reusing {root / 'eval_runs' / 'p-base-sampled'}" in same.stdout
    assert f"reusing {root / 'eval_runs' / 'p-base-greedy'}" in same.stdout
    assert "eval.run" not in same.stdout  # nothing was evaluated again
    copy = json.loads((root / "eval_runs" / "q-base-sampled" / "summary.json").read_text())
    original = json.loads((root / "eval_runs" / "p-base-sampled" / "summary.json").read_text())
    assert copy["run"] == "q-base-sampled" and copy["reused_from"] == str(
        root / "eval_runs" / "p-base-sampled"
    )
    assert copy["metrics"] == original["metrics"]
    phase = json.loads((root / "pipeline_runs" / "q" / "pipeline.json").read_text())["phases"][0]
    assert set(phase["reused"]) == {"sampled", "greedy"}

    more_samples = run("r", PIPELINE_EVAL_N="3")  # changes the sampled evaluation, not the greedy one
    assert more_samples.returncode == 0, more_samples.stdout[-3000:]
    assert f"reusing {root / 'eval_runs' / 'p-base-greedy'}" in more_samples.stdout, more_samples.stdout
    assert "--n 3" in more_samples.stdout  # the sampled one ran
    assert (
        json.loads((root / "eval_runs" / "r-base-sampled" / "summary.json").read_text())["settings"]["n"] == 3
    )

    off = run("s", PIPELINE_REUSE_BASE_EVAL="0")
    assert off.returncode == 0 and "reusing" not in off.stdout


def test_bad_settings_name_the_variable():
    with pytest.raises(ConfigError, match="PIPELINE_PHASES='sft,deploy': unknown phase"):
        PipelineConfig.from_env({"PIPELINE_PHASES": "sft,deploy"})
    with pytest.raises(ConfigError, match="PIPELINE_EVAL_N='0'"):
        PipelineConfig.from_env({"PIPELINE_EVAL_N": "0"})
    with pytest.raises(ConfigError, match="eval_sft evaluates the sft phase's model; add sft"):
        PipelineConfig.from_env({"PIPELINE_PHASES": "grpo,eval_sft"})
    cfg = PipelineConfig.from_env({"PIPELINE_PHASES": "report,sft"})
    assert cfg.phases == ("sft", "report")  # always in the road's order
    with pytest.raises(
        ConfigError, match="PIPELINE_EVAL_BACKEND='server': expected one of llama-server, transformers"
    ):
        PipelineConfig.from_env({"PIPELINE_EVAL_BACKEND": "server"})


def test_the_eval_backend_is_llama_server_on_cpu_and_transformers_on_cuda():
    assert PipelineConfig.from_env({}, profile="cpu").eval_backend == "llama-server"
    assert PipelineConfig.from_env({}, profile="cuda").eval_backend == "transformers"


@pytest.mark.parametrize(
    ("extra", "engine"),
    [
        ({}, "llama-server"),  # cpu: llama.cpp evaluates, so it generates the rollouts too
        ({"PIPELINE_EVAL_BACKEND": "transformers"}, "transformers"),
        ({"GRPO_ROLLOUT_ENGINE": "transformers"}, "transformers"),  # what the user set wins
    ],
)
def test_on_cpu_the_pipelines_grpo_phase_generates_where_it_evaluates(tmp_path, extra, engine):
    from rlvr.pipeline import open_pipeline

    env = {"PIPELINE_OUTPUT_DIR": str(tmp_path), "PIPELINE_RUN_NAME": "e", "GRPO_PROFILE": "cpu",
           "SFT_PROFILE": "cpu", "HF_HUB_OFFLINE": "1", **extra}  # fmt: skip
    _, state = open_pipeline(PipelineConfig.from_env(env), env)
    assert state.data["settings"]["grpo"]["rollout_engine"] == engine
    recorded = json.loads((tmp_path / "e" / "pipeline.json").read_text())
    assert recorded["settings"]["grpo"]["rollout_engine"] == engine


def test_a_pipeline_recorded_before_a_setting_existed_resumes_with_it_from_the_environment(tmp_path):
    from rlvr.pipeline import PipelineState, open_pipeline

    env = {"PIPELINE_OUTPUT_DIR": str(tmp_path), "PIPELINE_RUN_NAME": "old", "PIPELINE_PHASES": "report"}
    cfg = PipelineConfig.from_env(env, model="bundled")
    state = PipelineState.create(cfg, settings={})
    del state.data["config"]["reuse_base_eval"]  # as pipeline.json was before that setting
    del state.data["config"]["eval_backend"]
    state.update(status="stopped", pid=None)
    resumed, _ = open_pipeline(
        PipelineConfig.from_env(
            {**env, "PIPELINE_RESUME": "old", "PIPELINE_REUSE_BASE_EVAL": "0"}, model="bundled"
        ),
        env,
    )
    assert resumed.reuse_base_eval is False and resumed.resume == "old" and resumed.phases == ("report",)
    # one exception: its evaluations were made in process, so the later ones are too (comparable)
    assert resumed.eval_backend == "transformers"


def test_an_interrupted_evaluation_phase_is_resumed_not_started_over(finished, tiny_model):  # noqa: F811
    """eval_final cut as a kill leaves it: the resumed pipeline continues that evaluation (eval.resume)
    in the same run directory, with the seeds of the first attempt, instead of deleting it."""
    root = finished["root"]
    run = root / "eval_runs" / "p-final-sampled"
    original_rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    original = json.loads((run / "summary.json").read_text())
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text(lines[0][:30])  # a torn line: no whole batch left
    (run / "summary.json").write_text(json.dumps({**original, "status": "interrupted"}))
    pipeline = root / "pipeline_runs" / "p" / "pipeline.json"
    data = json.loads(pipeline.read_text())
    data["status"] = "stopped"
    for phase in data["phases"]:
        if phase["name"] == "eval_final":
            phase["status"] = "stopped"
    pipeline.write_text(json.dumps(data))

    env = pipeline_env(tiny_model, root / "problems.jsonl", root, PIPELINE_RESUME="p")
    resumed = run_pipeline(env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    assert f"--resume {run}" in resumed.stdout
    log = (root / "pipeline_runs" / "p" / "logs" / "eval_final-sampled.log").read_text()
    assert f"resuming {run}: 0 of {original['counts']['valid_problems']} problems kept" in log
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["started"] == original["started"]
    assert [r["problems_kept"] for r in summary["resumes"]] == [0]
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    fields = ("problem_id", "sample", "completion", "total_reward")
    assert [[r[f] for f in fields] for r in rows] == [[r[f] for f in fields] for r in original_rows]
