"""Two real GRPO steps whose rewards come from a reward server (VERIFIER_URL), not from this process."""

from __future__ import annotations

import json

from rlvr.service.process import server_process

from .conftest import PROBLEMS, run_module, train_env


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_grpo_scores_through_the_reward_server(tiny_model, tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    # the server knows no problem of this run: the client sends them inline
    with server_process({"REWARD_SERVER_PROBLEMS": "bundled", "REWARD_SERVER_TOKEN": "t0ken"}) as (url, _):
        env = train_env(tiny_model, problems, tmp_path / "runs", VERIFIER_URL=url, VERIFIER_URL_TOKEN="t0ken")
        proc = run_module("rlvr.train", env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        health = __import__("httpx").get(f"{url}/health", headers={"Authorization": "Bearer t0ken"}).json()
    run = tmp_path / "runs" / "run"
    assert "reward: scored by 1 reward server(s)" in proc.stdout
    rewards = read_jsonl(run / "rewards" / "ocaml.jsonl")
    assert len(rewards) == 4 and all(r["stage"] != "infra_error" for r in rewards)
    assert health["completions_scored"] >= 1  # what the trainer did not score twice (its cache)
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["remote_verifier"]["urls"] == [url]
    assert config["remote_verifier"]["token"] == "(set)"  # the secret stays out of the run files
    assert "t0ken" not in (run / "run.json").read_text()
