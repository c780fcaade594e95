"""A small OpenAI-compatible server for any model transformers can load, for `make eval backend=server`
and for users without llama.cpp or vLLM.

    .venv/bin/python scripts/serve_transformers.py [--model bundled|DIR|ADAPTER_DIR|HF_ID] [--port 8000]
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 make eval backend=server

Endpoints: GET /v1/models, POST /v1/chat/completions with messages, n, temperature, top_p, max_tokens
(or max_completion_tokens), seed, stop, tools, tool_choice ("auto" | "none"), stream and
stream_options.include_usage. What it is and is not (doc/eval.md):
- One model, loaded like the eval's transformers backend (an adapter dir is merged onto its base) and
  prompted with the same renderer (rlvr.prompts.render), so both backends see the same text.
- One generation at a time (a lock); the n samples of a request are one batched `generate`. Concurrent
  requests queue; for throughput use vLLM or llama-server.
- Tools: the schema is rendered by the model's chat template, or, for a ChatML template that cannot
  render tools (SmolLM2's), by Qwen2.5's tool template, as GRPO_ENVIRONMENT=ocaml trains with
  (rlvr.environment.tool_template); `<tool_call>` JSON in the output comes back as `tool_calls`
  (only the first with parallel_tool_calls=false).
- stream=true sends the finished generation as server-sent events (the text in one delta, then the
  finish reason and usage): clients that always stream (verifiers' chat harness) work; tokens do not
  arrive one by one.
- No logprobs, images or forced tool choice: such requests are refused (HTTP 400), never ignored.
- The `model` field of a request is not checked (one model is served, as with llama-server).
- Binds 127.0.0.1 by default and has no authentication.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from eval.local_model import LoadedModel, generate, load_model
from eval.outputs import model_tag
from rlvr.envconf import ConfigError
from rlvr.environment import tool_template
from rlvr.prompts import render

# A Hermes-style tool call, as Qwen2.5's template asks the model to write it
_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text; OpenAI's list-of-parts form is accepted for text parts only."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text":
                raise ValueError(f"content part of type {part.get('type')!r} is not supported (text only)")
            parts.append(str(part.get("text", "")))
        return "".join(parts)


class ChatRequest(BaseModel):
    """The supported subset of OpenAI's chat completion request; other fields are refused."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    n: int = Field(1, ge=1, le=64)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None

    @field_validator("messages")
    @classmethod
    def _roles(cls, messages: list[Message]) -> list[Message]:
        for m in messages:
            if m.role not in ("system", "user", "assistant", "developer", "tool"):
                raise ValueError(f"message role {m.role!r} is not supported")
        return messages


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The request's messages as the chat template reads them: text content, and tool calls with their
    arguments as objects (OpenAI sends them as JSON strings)."""
    out = []
    for m in messages:
        msg: dict[str, Any] = {"role": m.role if m.role != "developer" else "system", "content": m.text()}
        if m.tool_calls:
            calls = []
            for c in m.tool_calls:
                fn = c.get("function") or {}
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError:
                        raise ValueError(f"tool call {fn.get('name')!r}: arguments are not JSON") from None
                calls.append({"type": "function", "function": {"name": fn.get("name"), "arguments": args}})
            msg["tool_calls"] = calls
        if m.role == "tool" and m.name:
            msg["name"] = m.name
        out.append(msg)
    return out


def split_tool_calls(text: str, parallel: bool | None = True) -> tuple[str, list[dict[str, Any]]]:
    """The text before the first `<tool_call>` and the calls in it, in OpenAI's form (only the first
    when `parallel` is False). A block that is not a JSON object with a name stays in the text, so
    nothing the model wrote is lost."""
    calls = []
    for m in _TOOL_CALL.finditer(text):
        try:
            call = json.loads(m.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            continue
        args = call.get("arguments", {})
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    if not calls:
        return text, []
    return text[: text.index("<tool_call>")].rstrip(), calls[:1] if parallel is False else calls


def sse(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}\n\n"


def stream_events(answer: dict[str, Any], include_usage: bool):
    """A finished chat completion as OpenAI's stream: a role delta, the content and tool calls,
    the finish reason, usage (when asked) and [DONE]."""
    base = {
        "id": answer["id"],
        "object": "chat.completion.chunk",
        "created": answer["created"],
        "model": answer["model"],
    }
    for choice in answer["choices"]:
        i, msg = choice["index"], choice["message"]
        yield sse(
            {
                **base,
                "choices": [
                    {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        )
        if msg.get("content"):
            yield sse(
                {
                    **base,
                    "choices": [{"index": i, "delta": {"content": msg["content"]}, "finish_reason": None}],
                }
            )
        for k, call in enumerate(msg.get("tool_calls") or []):
            delta = {"tool_calls": [{"index": k, **call}]}
            yield sse({**base, "choices": [{"index": i, "delta": delta, "finish_reason": None}]})
        yield sse({**base, "choices": [{"index": i, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    if include_usage:
        yield sse({**base, "choices": [], "usage": answer["usage"]})
    yield "data: [DONE]\n\n"


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind}})


def build_app(lm: LoadedModel, served_name: str, default_max_tokens: int, max_tokens_limit: int) -> FastAPI:
    """The FastAPI app serving `lm` under `served_name`."""
    app = FastAPI(title="serve_transformers", docs_url=None, redoc_url=None)
    lock = threading.Lock()
    created = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return _error(400, details or "invalid request")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served_name, "object": "model", "created": created, "owned_by": "local"}],
        }

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> Any:
        try:
            messages = chat_messages(req.messages)
        except ValueError as e:
            return _error(400, str(e))
        tools = req.tools if req.tools and req.tool_choice in (None, "auto") else None
        if req.tools and req.tool_choice not in (None, "auto", "none"):
            return _error(400, f"tool_choice={req.tool_choice!r} is not supported (auto or none)")
        # a conversation with tool turns needs a template that renders them, offered tools or not
        tool_turns = any(m.role == "tool" or m.tool_calls for m in req.messages)
        template = None
        if tools or tool_turns:
            try:
                template = tool_template(lm.tokenizer)
            except ConfigError as e:
                return _error(400, str(e))
        max_tokens = req.max_completion_tokens or req.max_tokens or default_max_tokens
        if max_tokens > max_tokens_limit:
            return _error(400, f"max_tokens={max_tokens} exceeds this server's limit {max_tokens_limit}")
        stop = [req.stop] if isinstance(req.stop, str) else [s for s in req.stop or [] if s]
        prompt = render(lm.tokenizer, messages, tools, template)
        prompt_tokens = len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        with lock:
            (samples,) = generate(
                lm,
                [prompt],
                n=req.n,
                temperature=req.temperature,
                top_p=req.top_p,
                max_new_tokens=max_tokens,
                seed=req.seed,
                stop=stop or None,
            )
        completion_tokens = sum(s.completion_tokens or 0 for s in samples)
        choices = []
        for i, s in enumerate(samples):
            text, calls = split_tool_calls(s.text, req.parallel_tool_calls) if tools else (s.text, [])
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = calls
            choices.append(
                {"index": i, "message": message, "finish_reason": "tool_calls" if calls else s.finish_reason}
            )
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if req.stream:
            usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(stream_events(answer, usage), media_type="text/event-stream")
        return answer

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="bundled", help="bundled | model dir | adapter dir | HF id")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--served-name", default=None, help="the id /v1/models lists (default: from --model)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--max-tokens", type=int, default=512, help="default max_tokens of a request")
    ap.add_argument("--max-tokens-limit", type=int, default=4096, help="largest max_tokens accepted")
    args = ap.parse_args(argv)
    import uvicorn

    from rlvr.models import ModelLoadError

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        lm = load_model(args.model, args.dtype)
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    name = args.served_name or model_tag(args.model)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host} without authentication", file=sys.stderr)
    app = build_app(lm, name, args.max_tokens, args.max_tokens_limit)
    print(f"serving {name} ({lm.info['device']}) on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
