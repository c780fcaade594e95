"""verifiers' own evaluation (`vf-eval`) of the OCaml environment over HTTP, as a verifiers user runs it:
the chat harness in a subprocess, the `check` tool as an MCP server, the reward in the evaluator.
Against a scripted model that calls the tool (every turn known, so the reward is exact), and against
scripts/serve_transformers.py serving the bundled model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

if sys.version_info < (3, 11):  # the one place it cannot run: verifiers 0.4 has no Python 3.10 release
    pytest.skip("verifiers 0.4 needs Python >= 3.11", allow_module_level=True)

from rlvr.environment import final_answer
from rlvr.verifier import Verifier, VerifierConfig
from rlvr.verifiers_env.taskset import OCamlData
from tests.conftest import SUM_PROMPT, SUM_TESTS
from tests.eval.conftest import ScriptedServer, serve_transformers

pytestmark = pytest.mark.slow

VF_EVAL = Path(sys.executable).parent / "vf-eval"
TYPO = "let sum_list (xs : int list) : int = List.fold_left ( + ) 0 x"
RIGHT = "```ocaml\nlet sum_list (xs : int list) : int = List.fold_left ( + ) 0 xs\n```"


def sse(delta: dict, finish: str) -> str:
    """OpenAI's chat stream of one answer: its delta, the finish reason, usage, [DONE]."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "scripted"}
    events = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    events.append(
        {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    )
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def vf_eval(tmp_path: Path, base_url: str, *args: str, timeout: int = 900) -> list[dict]:
    """Run vf-eval on the environment; return its traces (one per rollout)."""
    out = tmp_path / "vf-out"
    cmd = [
        str(VF_EVAL), "ocamler-grpo", "--client.base-url", base_url, "--no-push", "--no-rich",
        "-o", str(out), *args,
    ]  # fmt: skip
    env = {**os.environ, "PRIME_API_KEY": "local", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (traces,) = list(out.glob("*/traces.jsonl"))
    episodes = [json.loads(line) for line in traces.read_text().splitlines()]
    return [t for ep in episodes for t in ep["traces"]]


@pytest.fixture()
def problems_file(tmp_path):
    path = tmp_path / "problems.jsonl"
    row = {"id": "sum_list", "prompt": SUM_PROMPT, "tests": list(SUM_TESTS), "split": "eval"}
    path.write_text(json.dumps(row) + "\n")
    return path


def test_vf_eval_runs_a_check_tool_episode_and_scores_it(tmp_path, problems_file):
    def respond(count: int, body: dict):
        assert body.get("stream") is True  # verifiers' chat harness always streams
        if count == 1:
            assert [t["function"]["name"] for t in body["tools"]] == ["check"]
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "check", "arguments": json.dumps({"code": TYPO})},
            }
            return 200, sse({"role": "assistant", "tool_calls": [{"index": 0, **call}]}, "tool_calls"), {}
        return 200, sse({"role": "assistant", "content": RIGHT}, "stop"), {}

    with ScriptedServer(respond) as server:
        (trace,) = vf_eval(
            tmp_path, server.base_url, "-m", "scripted", "-n", "1", "--env.taskset.source", str(problems_file)
        )
    assert trace["errors"] == []
    tool_results = [n["message"] for n in trace["nodes"] if n["message"]["role"] == "tool"]
    assert len(tool_results) == 1
    feedback = tool_results[0]["content"]
    feedback = feedback if isinstance(feedback, str) else "".join(p.get("text", "") for p in feedback)
    assert "Line 1, characters" in feedback and "Unbound value x" in feedback
    assert "499500" not in json.dumps(server.calls)  # no hidden test reached the model
    # the second model call carried the tool's answer back
    assert any(
        m.get("role") == "tool" and "Unbound value x" in json.dumps(m) for m in server.calls[1]["messages"]
    )
    assert trace["rewards"]["ocaml"]["score"] == pytest.approx(1.0 - 0.02)  # right, after one check
    assert (trace["metrics"]["checks"], trace["metrics"]["tool_calls"], trace["metrics"]["pass"]) == (
        1.0,
        1.0,
        1.0,
    )


def test_vf_eval_with_the_bundled_model_on_serve_transformers(tmp_path):
    log = tmp_path / f"serve-{uuid.uuid4().hex[:6]}.log"
    with serve_transformers("bundled", "bundled", log, "--threads", "2", "--max-tokens", "160") as base:
        traces = vf_eval(
            tmp_path, base, "-m", "bundled", "-n", "3",
            "--sampling.max-tokens", "160", "--sampling.temperature", "0.2", "-c", "1",
        )  # fmt: skip
    assert len(traces) == 3
    with Verifier(VerifierConfig()) as verifier:
        for trace in traces:
            assert trace["errors"] == [], trace["errors"]
            assert [t["name"] for t in trace["tools"]] == ["check"]
            problem = OCamlData.model_validate(trace["task"]["data"]).to_problem()
            replies = [n["message"] for n in trace["nodes"] if n["message"]["role"] == "assistant"]
            answer = final_answer([{"role": "assistant", "content": m.get("content") or ""} for m in replies])
            expected = verifier.score(problem, answer).total_reward - 0.02 * trace["metrics"]["checks"]
            assert trace["rewards"]["ocaml"]["score"] == pytest.approx(expected)
