"""Fixtures for the eval tests: a tiny random model, small problem files, real eval runs (made once per
session), scripts/serve_transformers.py as a real subprocess, and a scripted HTTP server that plays a
flaky or llama-server-shaped OpenAI endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from rlvr.export.llama_selftest import free_port  # also imported from here by other test modules

REPO = Path(__file__).resolve().parents[2]

# The tiny model gains nothing from several threads, and on a busy 2-core machine torch's thread pool
# makes generation ~10x slower: one thread in this process and in the served subprocess.
os.environ["EVAL_THREADS"] = "1"

SCRIPT_PROMPT = (
    '(** [twice x] is [2 * x]. <script>alert("pwned")</script> </pre></details>\n'
    "    Example: [twice 2 = 4]. *)\nlet twice (x : int) : int ="
)


def eval_problems() -> list[dict[str, Any]]:
    """Two problems of the bundled eval split and one whose prompt and tag carry HTML."""
    rows = [json.loads(line) for line in (REPO / "data" / "ocaml_problems.jsonl").open()]
    picked = [r for r in rows if r.get("split") == "eval"][:2]
    picked.append(
        {
            "id": "html_in_prompt",
            "prompt": SCRIPT_PROMPT,
            "tests": ["twice 2 = 4", "twice 0 = 0", "twice (-3) = -6"],
            "solution": "x * 2",
            "difficulty": "easy",
            "tags": ["<b>bold-tag</b>", "arithmetic"],
            "split": "eval",
        }
    )
    return picked


def run_eval(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, Path | None]:
    """Run `python -m eval.run` in this process; returns (exit status, the run directory it wrote)."""
    from eval.run import main

    out = Path(argv[argv.index("--output-dir") + 1])
    before = set(out.iterdir()) if out.exists() else set()
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        code = main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    made = sorted(set(out.iterdir()) - before) if out.exists() else []
    return code, (made[-1] if made else None)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from rlvr.models import tiny_random_model

    return tiny_random_model(tmp_path_factory.mktemp("tiny-model") / "tiny")


@pytest.fixture(scope="session")
def problems_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in eval_problems()))
    return path


@pytest.fixture(scope="session")
def mbpp_file(tmp_path_factory) -> Path:
    """Rows 0 and 1 of MultiPL-E's mbpp-ml.jsonl (valid) and row 26 (mbpp_133_sum_negativenum, whose
    test code is a syntax error: no completion can pass it)."""
    from rlvr.data import multipl_e_file

    lines = multipl_e_file("mbpp-ml.jsonl").read_text().splitlines()
    path = tmp_path_factory.mktemp("mbpp") / "mbpp-subset.jsonl"
    path.write_text("\n".join(lines[i] for i in (0, 1, 26)) + "\n")
    return path


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval_runs")


def local_args(model: Path, data: Path, out: Path, seed: int, *extra: str) -> list[str]:
    return [
        "--model", str(model), "--data", str(data), "--output-dir", str(out),
        "--n", "2", "--k", "1,2", "--temperature", "0.8", "--max-tokens", "12",
        "--seed", str(seed), "--batch-size", "2", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def local_run(tiny_model, problems_file, runs_dir) -> Path:
    code, path = run_eval(local_args(tiny_model, problems_file, runs_dir, 1, "--run-name", "tiny-seed1"))
    assert code == 0 and path is not None
    return path


@pytest.fixture(scope="session")
def local_run_seed2(tiny_model, problems_file, runs_dir) -> Path:
    code, path = run_eval(local_args(tiny_model, problems_file, runs_dir, 2, "--run-name", "tiny-seed2"))
    assert code == 0 and path is not None
    return path


@contextmanager
def serve_transformers(
    model: str, served_name: str, log: Path, *extra: str, timeout: float = 120
) -> Iterator[str]:
    """scripts/serve_transformers.py serving `model` on a free port (its output in `log`); yields its
    /v1 base URL once /v1/models answers, and stops it after."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "serve_transformers.py"), "--model", model,
             "--port", str(port), "--served-name", served_name, *extra],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"serve_transformers exited with {proc.returncode}: {log.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"serve_transformers did not start in {timeout:.0f} s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def served_tiny(tiny_model) -> Iterator[str]:
    """scripts/serve_transformers.py serving the tiny model on a free port; yields its /v1 base URL."""
    with serve_transformers(
        str(tiny_model), "tiny-served", tiny_model.parent / "server.log", "--threads", "1"
    ) as base:
        yield base


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 whose /v1/chat/completions answers come from `respond(count,
    body)` -> (status, json, headers); a str answer is sent as a server-sent event stream. It plays
    conditions the real servers only show sometimes: overload (503, Retry-After), refusals,
    llama-server's answer shape, a model that calls tools."""

    def __init__(
        self, respond: Callable[[int, dict], tuple[int, Any, dict[str, str]]], loading_answers: int = 0
    ):
        self.calls: list[dict] = []
        self.model_calls = 0
        app = FastAPI()

        @app.get("/v1/models")
        def models() -> JSONResponse:
            self.model_calls += 1
            if self.model_calls <= loading_answers:  # llama-server while it loads the model
                error = {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}
                return JSONResponse(status_code=503, content=error)
            return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append(body)
            status, content, headers = respond(len(self.calls), body)
            if isinstance(content, str):
                return Response(content, status_code=status, headers=headers, media_type="text/event-stream")
            return JSONResponse(status_code=status, content=content, headers=headers)

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def llama_server_answer(content: str, finish: str = "stop") -> dict[str, Any]:
    """A chat completion exactly as llama-server shapes it (extra `timings`, system_fingerprint)."""
    return {
        "choices": [
            {"finish_reason": finish, "index": 0, "message": {"role": "assistant", "content": content}}
        ],
        "created": int(time.time()),
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "system_fingerprint": "b1-abc",
        "object": "chat.completion",
        "usage": {"completion_tokens": 7, "prompt_tokens": 40, "total_tokens": 47},
        "id": "chatcmpl-xyz",
        "timings": {"prompt_n": 40, "predicted_n": 7, "predicted_per_second": 50.0},
    }
