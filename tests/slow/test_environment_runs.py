"""GRPO with the OCaml environment, for real: a tiny model taught (here, in a minute) to call the
`check` tool runs two steps, and each episode's tool call is executed in the sandbox and answered with
the compiler's verdict; then a short run of the bundled SmolLM2 with the environment on."""

from __future__ import annotations

import json
import shutil

import pytest

from rlvr.environment import OCamlEnvironment, tool_chat_template, tool_hint
from rlvr.problems import Problem
from rlvr.prompts import build_messages
from tests.train.conftest import PROBLEMS, read_jsonl, run_module, tiny_model, train_env  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# what the taught model is shown after its check: any tool result, then it answers
TOOL_RESULTS = (
    "Your code compiles. The problem states no examples to run.",
    "Line 1, characters 3-4:\nError: x",
)


def teach_tool_calls(base_model, out):
    """The tiny model trained on whole episodes (prompt -> check call -> tool result -> fenced answer)
    of the test problems until it reproduces them: a policy that really calls the tool."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_model)
    tool_chat_template(tok)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    tools = [OCamlEnvironment.check]
    episodes = []
    for p in PROBLEMS:
        messages = build_messages(Problem(id=p["id"], prompt=p["prompt"], tests=tuple(p["tests"])))
        messages[-1] = {**messages[-1], "content": messages[-1]["content"] + tool_hint("examples")}
        call = {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "check", "arguments": {"code": p["solution"]}}}
            ],
        }
        for result in TOOL_RESULTS:
            turns = [call, {"role": "tool", "name": "check", "content": result}]
            answer = {"role": "assistant", "content": f"```ocaml\n{p['solution']}\n```"}
            texts = [
                tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True),
                tok.apply_chat_template(messages + turns[:1], tools=tools, tokenize=False),
                tok.apply_chat_template(
                    messages + turns, tools=tools, tokenize=False, add_generation_prompt=True
                ),
                tok.apply_chat_template(messages + turns + [answer], tools=tools, tokenize=False),
            ]
            lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
            ids = tok(texts[-1], add_special_tokens=False)["input_ids"]
            labels = [-100] * len(ids)
            for lo, hi in ((lengths[0], lengths[1]), (lengths[2], lengths[3])):  # the model's two turns
                labels[lo:hi] = ids[lo:hi]
            episodes.append((torch.tensor([ids]), torch.tensor([labels])))
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = sum(model(input_ids=i, labels=y).loss for i, y in episodes) / len(episodes)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if loss.item() < 0.02:
            break
    assert loss.item() < 0.05, f"the tiny model did not learn the episodes (loss {loss.item():.3f})"
    model.save_pretrained(out)
    for f in base_model.iterdir():  # the tokenizer, as the tiny model has it (without the tool template)
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def tool_run(tiny_model, tmp_path_factory):  # noqa: F811
    base = tmp_path_factory.mktemp("grpo-tools")
    model = teach_tool_calls(tiny_model, base / "model")
    problems = base / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    env = train_env(
        model,
        problems,
        base / "runs",
        GRPO_ENVIRONMENT="ocaml",
        GRPO_MAX_PROMPT_LENGTH="1024",
        GRPO_MAX_COMPLETION_LENGTH="160",
    )
    proc = run_module("rlvr.train", env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base / "runs" / "run"


def test_episodes_call_the_tool_and_read_the_sandboxs_verdict(tool_run):
    lines = read_jsonl(tool_run / "completions.jsonl")
    called = [line for line in lines if line["tool_calls"] > 0]
    assert len(called) >= len(lines) // 2, [line["conversation"] for line in lines]
    by_id = {p["id"]: p for p in PROBLEMS}
    for line in called:
        turns = line["conversation"]
        call = turns[0]["tool_calls"][0]
        assert call["name"] == "check"
        result = turns[1]
        assert result["role"] == "tool"
        # the check ran the model's code in the sandbox: a compiling reference reads as compiling
        if call["arguments"]["code"] == by_id[line["problem_id"]]["solution"]:
            assert result["content"] == "Your code compiles. The problem states no examples to run."
        assert all(t not in result["content"] for t in by_id[line["problem_id"]]["tests"])


def test_the_episode_reward_counts_the_checks(tool_run):
    lines = read_jsonl(tool_run / "completions.jsonl")
    outcomes = read_jsonl(tool_run / "rewards" / "ocaml.jsonl")
    for line, o in zip(lines, outcomes):
        checks = sum(
            t["role"] == "tool" and not t["content"].startswith("No checks left")
            for t in line["conversation"]
        )
        assert line["check_cost"] == pytest.approx(0.02 * checks)
        assert line["reward"] == pytest.approx(o["total_reward"] - 0.02 * checks)
    metrics = [m for m in read_jsonl(tool_run / "metrics.jsonl") if "reward" in m]
    assert all(m["tools/call_frequency"] > 0 and m["env/tool_calls_mean"] > 0 for m in metrics)


def test_a_short_run_of_the_bundled_model_with_the_environment(tmp_path):
    from rlvr.data import REPO_ROOT

    env = train_env(
        "bundled",
        REPO_ROOT / "data" / "ocaml_problems.jsonl",
        tmp_path / "runs",
        GRPO_ENVIRONMENT="ocaml",
        GRPO_MAX_PROMPT_LENGTH="1024",
        GRPO_MAX_COMPLETION_LENGTH="96",
    )
    proc = run_module("rlvr.train", env, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "runs" / "run"
    lines = read_jsonl(run / "completions.jsonl")
    assert len(lines) == 4 and all("conversation" in line for line in lines)
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
