"""The whole export chain with real tools: build llama.cpp (cached; ~15-20 min the first time), merge a
tiny LoRA adapter, export f16 and Q4_K_M GGUF files, read them back with the gguf library, serve the
quantised one with scripts/llama_server.sh and check its chat template against the model's own
and the Modelfile's."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rlvr.export import llama_cpp
from rlvr.export.modelfile import CHATML_TEMPLATE, render_chatml
from rlvr.prompts import SYSTEM_PROMPT, build_messages
from tests.export.conftest import random_adapter
from tests.train.conftest import PROBLEMS, tiny_model  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # the first build takes ~15-20 min
REPO = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def built() -> Path:
    proc = run("-m", "rlvr.export.llama_cpp", "build", timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return llama_cpp.binary("llama-server").parent


@pytest.fixture(scope="module")
def exported(built, tiny_model, tmp_path_factory):  # noqa: F811
    base = tmp_path_factory.mktemp("export")
    adapter = random_adapter(tiny_model, base / "adapter")
    merged = run(
        "-m", "rlvr.export.merge", "--adapter", str(adapter), "--out", str(base / "merged"), timeout=600
    )
    assert merged.returncode == 0, merged.stderr[-3000:]
    proc = run(
        "-m", "rlvr.export.gguf", "--model", str(base / "merged"), "--quant", "Q4_K_M",
        "--out", str(base / "gguf"), "--name", "tiny", timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return base / "gguf", base / "merged", proc


def test_build_is_cached(built):
    started = time.monotonic()
    again = run("-m", "rlvr.export.llama_cpp", "build", timeout=120)
    assert again.returncode == 0 and "already built" in again.stdout
    assert time.monotonic() - started < 60
    for name in llama_cpp.TARGETS:
        assert os.access(built / name, os.X_OK)


def test_the_build_passed_its_self_test_on_this_cpu_with_a_real_q4_k_m_model(built):
    """The self-test reaches the quantized matmul kernels a tiny model never does: the bundled 135M model
    requantized to Q4_K_M, served by the built llama-server, generating."""
    from gguf import GGMLQuantizationType, GGUFReader

    from rlvr.export import llama_selftest

    home = llama_cpp.home()
    entry = llama_selftest.read_results(home)[llama_selftest.cpu_signature()]
    assert entry["ok"] is True and entry["detail"] == "generated 8 tokens"
    assert entry["variant"] == llama_cpp.built_variant()
    model = home / "selftest" / "SmolLM2-135M-Instruct.Q4_K_M.gguf"
    types = {t.tensor_type for t in GGUFReader(model).tensors}
    assert GGMLQuantizationType.Q4_K in types
    ok, detail, fault = llama_selftest.serve_and_generate(built, model, threads=os.cpu_count() or 2)
    assert (ok, detail, fault) == (True, "generated 8 tokens", False)


def test_gguf_files_read_back_with_their_types_and_metadata(exported):
    from gguf import GGMLQuantizationType, GGUFReader

    out, _, proc = exported
    info = json.loads((out / "export.json").read_text())
    assert set(info["files"]) == {"tiny-f16.gguf", "tiny-Q4_K_M.gguf"} and info["warnings"] == []
    assert "tiny-Q4_K_M.gguf" in proc.stdout
    f16, q4 = GGUFReader(out / "tiny-f16.gguf"), GGUFReader(out / "tiny-Q4_K_M.gguf")
    for reader in (f16, q4):
        arch = reader.fields["general.architecture"]
        assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
        assert "tokenizer.chat_template" in reader.fields

    def types(reader: GGUFReader) -> set:
        return {t.tensor_type for t in reader.tensors if len(t.shape) == 2}

    assert GGMLQuantizationType.F16 in types(f16)
    assert types(q4) - {GGMLQuantizationType.F16, GGMLQuantizationType.F32}  # something was quantised
    assert (out / "tiny-Q4_K_M.gguf").stat().st_size < (out / "tiny-f16.gguf").stat().st_size


def test_modelfile_points_at_the_quantised_file_with_the_chatml_template(exported):
    out, _, _ = exported
    text = (out / "Modelfile").read_text()
    assert text.startswith("FROM ./tiny-Q4_K_M.gguf\n")
    assert f'TEMPLATE """{CHATML_TEMPLATE}"""' in text
    assert f'SYSTEM """{SYSTEM_PROMPT}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0.2" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(exported):
    out, merged, _ = exported
    port = free_port()
    env = {
        **os.environ,
        "LLAMA_SERVER_PORT": str(port),
        "LLAMA_SERVER_CTX": "1024",
        "LLAMA_SERVER_THREADS": "1",
    }
    proc = subprocess.Popen(
        ["scripts/llama_server.sh", str(out / "tiny-Q4_K_M.gguf")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.5)
    else:
        pytest.fail("llama-server did not become healthy in 120 s")
    yield url, merged
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_llama_server_answers_chat_completions(server):
    url, _ = server
    from rlvr.problems import Problem

    problem = Problem(id="double", prompt=PROBLEMS[0]["prompt"], tests=tuple(PROBLEMS[0]["tests"]))
    body = {"model": "ocaml-model", "messages": build_messages(problem), "max_tokens": 8, "temperature": 0}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
    (choice,) = reply["choices"]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert reply["usage"]["completion_tokens"] >= 1


def test_served_template_and_tokenizer_match_the_hf_model(server):
    from transformers import AutoTokenizer

    url, merged = server
    tokenizer = AutoTokenizer.from_pretrained(merged)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "let x = 1"}]
    served = httpx.post(f"{url}/apply-template", json={"messages": messages}, timeout=30).json()["prompt"]
    hf = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert served == hf == render_chatml(messages)  # llama.cpp, transformers and the Modelfile agree
    text = "let rec fib n = if n < 2 then n else fib (n - 1) + fib (n - 2)"
    ids = httpx.post(f"{url}/tokenize", json={"content": text}, timeout=30).json()["tokens"]
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
