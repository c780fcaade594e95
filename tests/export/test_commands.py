"""The export and serving commands fail early with messages that say what to do (no model, no build,
wrong port, vLLM missing)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.envconf import ConfigError
from rlvr.export.llama_cpp import version_from_env

REPO = Path(__file__).resolve().parents[2]


def sh(*argv: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(list(argv), cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120)


def test_llama_server_needs_a_gguf_and_a_free_port_of_its_own(tmp_path):
    assert "usage: make llama-server model=<file.gguf>" in sh("scripts/llama_server.sh").stderr
    missing = sh("scripts/llama_server.sh", str(tmp_path / "x.gguf"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    for port in ("8080", "6006"):
        clash = sh("scripts/llama_server.sh", str(gguf), LLAMA_SERVER_PORT=port)
        assert clash.returncode == 2 and "dashboard's or TensorBoard's port" in clash.stderr


def test_llama_server_threads_must_be_a_positive_number(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    for bad in ("0", "two", "-1"):
        proc = sh("scripts/llama_server.sh", str(gguf), LLAMA_SERVER_PORT="18798", LLAMA_SERVER_THREADS=bad)
        assert proc.returncode == 2
        assert f"LLAMA_SERVER_THREADS={bad}: expected a positive whole number" in proc.stderr


def test_llama_server_without_a_build_says_make_llama_cpp(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    proc = sh(
        "scripts/llama_server.sh", str(gguf), OCAMLER_CACHE=str(tmp_path / "empty"), LLAMA_SERVER_PORT="18799"
    )
    assert proc.returncode == 2 and "run `make llama-cpp` first" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_server_explains_the_gpu_extra():
    proc = sh("scripts/vllm_server.sh", "bundled")
    assert proc.returncode == 2
    assert "vLLM is not installed" in proc.stderr and "pip install -e '.[gpu]'" in proc.stderr


def test_export_errors_name_the_model_and_the_quant(tmp_path):
    proc = sh(
        sys.executable,
        "-m",
        "rlvr.export.gguf",
        "--model",
        str(tmp_path / "nope"),
        "--out",
        str(tmp_path / "o"),
    )
    if "is not built" in proc.stderr:  # no llama.cpp here: that is checked first, with its own message
        assert "make llama-cpp" in proc.stderr
    else:
        assert f"--model {tmp_path / 'nope'}: no such directory" in proc.stderr
    assert proc.returncode == 2 and not (tmp_path / "o").exists()
    bad = sh(sys.executable, "-m", "rlvr.export.gguf", "--model", "bundled", "--quant", "Q9_X")
    assert bad.returncode == 2 and "invalid choice: 'Q9_X'" in bad.stderr


def test_llama_cpp_version_is_validated():
    assert version_from_env({}) == "0.3.36"
    with pytest.raises(
        ConfigError, match=r"LLAMA_CPP_VERSION='1\.0': expected a llama-cpp-python 0\.3\.x version"
    ):
        version_from_env({"LLAMA_CPP_VERSION": "1.0"})
