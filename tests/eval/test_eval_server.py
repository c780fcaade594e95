"""The server backend against scripts/serve_transformers.py run as a real subprocess, and against a
scripted HTTP server playing overload, refusals and llama-server's answer shape."""

from __future__ import annotations

import json

import httpx
import pytest

from eval.backends.server import ServerBackend, ServerError
from eval.config import EvalConfig

from .conftest import ScriptedServer, eval_problems, llama_server_answer, run_eval


def test_serve_transformers_speaks_the_openai_chat_api(served_tiny):
    models = httpx.get(f"{served_tiny}/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny-served"
    body = {
        "model": "tiny-served",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "n": 3, "temperature": 0.9, "max_tokens": 6, "seed": 7,
    }  # fmt: skip
    first = httpx.post(f"{served_tiny}/chat/completions", json=body, timeout=60).json()
    again = httpx.post(f"{served_tiny}/chat/completions", json=body, timeout=60).json()
    assert first["object"] == "chat.completion" and len(first["choices"]) == 3
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert all(
        c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length")
        for c in first["choices"]
    )
    assert [c["message"]["content"] for c in first["choices"]] == [
        c["message"]["content"] for c in again["choices"]
    ]
    assert 0 < first["usage"]["completion_tokens"] <= 18 and first["usage"]["prompt_tokens"] > 0

    text = first["choices"][0]["message"]["content"]
    stop = text.strip()[:1]
    if stop:  # a stop string cuts the text before it
        cut = httpx.post(
            f"{served_tiny}/chat/completions", json={**body, "n": 1, "stop": [stop]}, timeout=60
        ).json()["choices"][0]
        assert stop not in cut["message"]["content"] and cut["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"},
            "tool_choice",
        ),
        ({"n": 0}, "n:"),
        ({"top_k": 5}, "top_k"),
        ({"messages": []}, "messages"),
        ({"max_tokens": 100000}, "limit"),
    ],
)
def test_serve_transformers_refuses_what_it_does_not_do(served_tiny, patch, message):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **patch}
    r = httpx.post(f"{served_tiny}/chat/completions", json=body, timeout=60)
    assert r.status_code == 400 and message in r.json()["error"]["message"]


CHECK_TOOL = {
    "type": "function",
    "function": {
        "name": "check",
        "description": "Check OCaml code.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


def sse_events(text: str) -> list:
    """The JSON events of a server-sent event stream, and "[DONE]" for its end."""
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_serve_transformers_streams_the_answer_it_would_return(served_tiny):
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.0, "max_tokens": 6}
    plain = httpx.post(f"{served_tiny}/chat/completions", json=body, timeout=60).json()
    streamed = httpx.post(
        f"{served_tiny}/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
        timeout=60,
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]" and events[-2]["usage"] == plain["usage"]
    chunks = [e for e in events[:-2] if e["object"] == "chat.completion.chunk"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]


def test_serve_transformers_puts_tools_and_tool_turns_in_the_prompt(served_tiny, tiny_model):
    user = [{"role": "user", "content": "sum a list"}]
    ask = {"max_tokens": 2, "temperature": 0.0}

    def prompt_tokens(**body) -> int:
        r = httpx.post(f"{served_tiny}/chat/completions", json={**ask, **body}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["usage"]["prompt_tokens"]

    bare = prompt_tokens(messages=user)
    with_tools = prompt_tokens(messages=user, tools=[CHECK_TOOL])
    assert with_tools > bare + 50  # the schema is in the system turn (Qwen2.5's ChatML tool template)
    assert prompt_tokens(messages=user, tools=[CHECK_TOOL], tool_choice="none") == bare
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "check", "arguments": '{"code": "let x = 1"}'},
    }
    turns = [
        *user,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "Compiles."},
    ]
    assert prompt_tokens(messages=turns, tools=[CHECK_TOOL]) > with_tools
    # tool turns without tools offered still render through the tool template, not SmolLM2's own
    from transformers import AutoTokenizer

    from rlvr.environment import tool_template
    from rlvr.prompts import render
    from scripts.serve_transformers import Message, chat_messages

    tok = AutoTokenizer.from_pretrained(tiny_model)
    expected = render(tok, chat_messages([Message(**m) for m in turns]), None, tool_template(tok))
    assert "<tool_response>\nCompiles." in expected and '"name": "check"' in expected
    assert prompt_tokens(messages=turns) == len(tok(expected, add_special_tokens=False)["input_ids"])
    bad = {**call, "function": {"name": "check", "arguments": "{not json"}}
    r = httpx.post(
        f"{served_tiny}/chat/completions",
        json={**ask, "messages": [*user, {"role": "assistant", "tool_calls": [bad]}]},
        timeout=60,
    )
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]


def test_tool_calls_are_read_from_the_models_hermes_blocks():
    from scripts.serve_transformers import split_tool_calls

    text, calls = split_tool_calls(
        'Let me check.\n<tool_call>\n{"name": "check", "arguments": {"code": "let f x = x"}}\n</tool_call>'
    )
    assert text == "Let me check."
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "check", {"code": "let f x = x"})
    ]
    assert calls[0]["id"].startswith("call_")
    two = '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {}}</tool_call>'
    assert [c["function"]["name"] for c in split_tool_calls(two)[1]] == ["a", "b"]
    assert [c["function"]["name"] for c in split_tool_calls(two, parallel=False)[1]] == ["a"]
    broken = "<tool_call>\n{not json}\n</tool_call>"
    assert split_tool_calls(broken) == (broken, [])  # nothing the model wrote is dropped


def test_eval_through_the_server_backend(served_tiny, problems_file, tmp_path):
    out = tmp_path / "runs"
    argv = ["--backend", "server", "--data", str(problems_file), "--output-dir", str(out), "--n", "2",
            "--temperature", "0.7", "--max-tokens", "10", "--concurrency", "3"]  # fmt: skip
    code, path = run_eval(argv, {"OPENAI_BASE_URL": served_tiny})
    assert code == 0 and path is not None and path.name.startswith("tiny-served_")
    rows = [json.loads(line) for line in (path / "results.jsonl").open()]
    assert len(rows) == 6 and {r["sample"] for r in rows} == {0, 1}
    assert all(0 < (r["completion_tokens"] or 0) <= 10 for r in rows)
    s = json.loads((path / "summary.json").read_text())
    assert s["status"] == "complete" and s["model"]["backend"] == "server"
    assert s["model"]["spec"] == "tiny-served" and s["model"]["base_url"] == served_tiny
    assert s["counts"]["samples"] == 6 and s["settings"]["temperature"] == 0.7
    assert "OPENAI_API_KEY" not in json.dumps(s)
    assert (path / "report.html").exists()

    # the same samples again with one n=2 request per problem (vLLM and serve_transformers batch it)
    code, batched = run_eval([*argv, "--server-batch-n", "1"], {"OPENAI_BASE_URL": served_tiny})
    assert code == 0 and len((batched / "results.jsonl").read_text().splitlines()) == 6


def _cfg(base_url: str, **kw) -> EvalConfig:
    return EvalConfig.from_sources(
        {"EVAL_BACKEND": "server", "OPENAI_BASE_URL": base_url, "EVAL_RETRIES": "3", "EVAL_MAX_TOKENS": "20"},
        kw,
    )


def test_retries_with_backoff_after_overload_then_reads_llama_server_answers():
    def respond(count, body):
        if count <= 2:
            return (
                503,
                {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
                {"Retry-After": "0"},
            )
        assert "n" not in body and body["seed"] >= 100 and body["max_tokens"] == 20
        assert body["top_k"] == 0 and body["model"] == "scripted"  # EVAL_EXTRA_BODY is merged in
        return 200, llama_server_answer(f"```ocaml\nlet f x = {body['seed']}\n```"), {}

    with ScriptedServer(respond, loading_answers=1) as server:
        backend = ServerBackend(_cfg(server.base_url, extra_body='{"top_k": 0}'))
        assert backend.model == "scripted" and server.model_calls == 2  # waited out the 503, took the first
        out = backend.generate(
            [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], 2, seed=100
        )
    assert backend.retried == 2 and len(server.calls) == 6
    assert [[g.text.split("= ")[1][:3] for g in group] for group in out] == [["100", "101"], ["102", "103"]]
    assert all(g.finish_reason == "stop" and g.completion_tokens == 7 for group in out for g in group)


def test_llama_server_refusing_n_gives_the_fix_and_hard_errors_are_not_retried():
    def respond(count, body):
        if body.get("n", 1) != 1:
            return 500, {"error": {"code": 500, "message": "Only one completion choice is allowed"}}, {}
        return 404, {"error": {"message": "model 'x' not found"}}, {}

    with ScriptedServer(respond) as server:
        batched = ServerBackend(_cfg(server.base_url, server_batch_n="1", n="2", model="x"))
        with pytest.raises(ServerError, match="EVAL_SERVER_BATCH_N=0"):
            batched.generate([[{"role": "user", "content": "a"}]], 2, seed=0)
        plain = ServerBackend(_cfg(server.base_url, model="x"))
        with pytest.raises(ServerError, match="HTTP 404"):
            plain.generate([[{"role": "user", "content": "a"}]], 1, seed=0)
        assert len(server.calls) == 2 and plain.retried == 0


def test_a_crash_mid_eval_keeps_what_was_done(problems_file, tmp_path):
    """The server dies (answers 400) after the first problem's samples: the run is marked failed, and
    results.jsonl, summary.json and report.html hold the finished problem."""

    def respond(count, body):
        if count <= 2:
            return 200, llama_server_answer("```ocaml\nlet twice x = x + x\n```"), {}
        return 400, {"error": {"message": "the server went away"}}, {}

    with ScriptedServer(respond) as server:
        code, path = run_eval(
            ["--backend", "server", "--data", str(problems_file), "--output-dir", str(tmp_path), "--n", "2",
             "--temperature", "0.5", "--batch-size", "1", "--concurrency", "1"],
            {"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert code == 1 and path is not None
    rows = [json.loads(line) for line in (path / "results.jsonl").open()]
    first = eval_problems()[0]["id"]
    assert [(r["problem_id"], r["sample"]) for r in rows] == [(first, 0), (first, 1)]
    s = json.loads((path / "summary.json").read_text())
    assert s["status"] == "failed" and "the server went away" in s["error"]
    assert s["counts"]["problems_done"] == 1 and s["counts"]["samples"] == 2
    html = (path / "report.html").read_text()
    assert "failed" in html and first in html


def test_an_evaluation_cut_by_a_dead_server_resumes_on_a_new_one(problems_file, tmp_path):
    """The server dies after the first problem; the run is resumed against another server (a new
    OPENAI_BASE_URL is allowed): the first problem's rows are kept as they were, the rest is generated."""

    def dying(count, body):
        if count <= 2:
            return 200, llama_server_answer("```ocaml\nlet twice x = x + x\n```"), {}
        return 400, {"error": {"message": "the server went away"}}, {}

    args = ["--backend", "server", "--data", str(problems_file), "--output-dir", str(tmp_path), "--n", "2",
            "--temperature", "0.5", "--batch-size", "1", "--concurrency", "1"]  # fmt: skip
    with ScriptedServer(dying) as server:
        code, path = run_eval(args, {"OPENAI_BASE_URL": server.base_url})
    assert code == 1 and path is not None
    first_rows = (path / "results.jsonl").read_text()

    def healthy(count, body):
        return 200, llama_server_answer("```ocaml\nlet f x = x\n```"), {}

    with ScriptedServer(healthy) as server:
        code, _ = run_eval(
            ["--resume", path.name, "--output-dir", str(tmp_path)], {"OPENAI_BASE_URL": server.base_url}
        )
        assert len(server.calls) == 4  # problems 2 and 3, two samples each: problem 1 is not asked again
    assert code == 0
    text = (path / "results.jsonl").read_text()
    assert text.startswith(first_rows)
    rows = [json.loads(line) for line in text.splitlines()]
    assert [(r["problem_id"], r["sample"]) for r in rows] == [
        (p["id"], s) for p in eval_problems() for s in (0, 1)
    ]
    s = json.loads((path / "summary.json").read_text())
    assert s["status"] == "complete" and s["counts"]["samples"] == 6
    assert [r["problems_kept"] for r in s["resumes"]] == [1]
    assert s["settings"]["base_url"] == server.base_url.rstrip("/")
