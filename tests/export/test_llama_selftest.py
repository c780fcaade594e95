"""The llama.cpp self-test's verdicts (rlvr.export.llama_selftest): faults are told from other failures,
results are kept per CPU, and each build variant configures what it says. The self-test of the real
build on the real Q4_K_M model is in tests/slow/test_llama_cpp_export.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from rlvr.export import llama_cpp, llama_selftest


def faulting_program(path: Path) -> Path:
    """A real program that dies of SIGILL, as a native build on the wrong CPU does."""
    path.write_text("#!/bin/sh\nkill -ILL $$\n")
    path.chmod(0o755)
    return path


def test_a_signal_exit_is_named_and_cpu_faults_are_told_apart():
    assert llama_selftest.describe_exit(-signal.SIGILL) == ("killed by SIGILL (Illegal instruction)", True)
    assert llama_selftest.describe_exit(-signal.SIGSEGV)[1] is True
    assert llama_selftest.describe_exit(-signal.SIGTERM) == ("killed by SIGTERM (Terminated)", False)
    assert llama_selftest.describe_exit(1) == ("exited with status 1", False)


def test_a_server_that_dies_of_sigill_is_a_fault(tmp_path):
    faulting_program(tmp_path / "llama-server")
    ok, detail, fault = llama_selftest.serve_and_generate(
        tmp_path, tmp_path / "model.gguf", threads=1, timeout=30
    )
    assert (ok, fault) == (False, True)
    assert detail == "llama-server killed by SIGILL (Illegal instruction) while loading"


def test_a_quantizer_that_dies_of_sigill_is_a_fault(tmp_path):
    faulting_program(tmp_path / "llama-quantize")
    result = llama_selftest.run_selftest(tmp_path, tmp_path / "work", "native", threads=1)
    assert (result.ok, result.fault, result.variant) == (False, True, "native")
    assert result.detail.startswith("llama-quantize killed by SIGILL")


def test_an_external_build_that_faults_is_refused_with_the_reason(tmp_path, monkeypatch):
    bin_dir = tmp_path / "build" / "bin"
    bin_dir.mkdir(parents=True)
    for name in llama_cpp.TARGETS:
        faulting_program(bin_dir / name)
    (tmp_path / "convert_hf_to_gguf.py").write_text("")
    monkeypatch.setenv("LLAMA_CPP_DIR", str(tmp_path))
    with pytest.raises(llama_cpp.LlamaCppError, match=r"build does not work on this CPU .*killed by SIGILL"):
        llama_cpp.ensure_working()
    recorded = llama_selftest.read_results(tmp_path)[llama_selftest.cpu_signature()]
    assert recorded["ok"] is False and recorded["fault"] is True


def test_results_are_kept_per_cpu_and_per_variant(tmp_path):
    result = llama_selftest.SelfTestResult(
        True, False, "generated 8 tokens", "native", llama_selftest.cpu_signature(), 1.0
    )
    llama_selftest.record(tmp_path, result)
    assert llama_selftest.passed_here(tmp_path, "native")
    assert not llama_selftest.passed_here(tmp_path, "portable")  # rebuilt since: test again
    other = llama_selftest.SelfTestResult(
        False, True, "killed by SIGILL", "native", "Another CPU [000000000000]", 1.0
    )
    llama_selftest.record(tmp_path, other)
    assert llama_selftest.passed_here(tmp_path, "native")  # another machine's verdict is its own
    assert set(llama_selftest.read_results(tmp_path)) == {result.cpu, other.cpu}


def test_each_variant_configures_its_kernels():
    xeon = {"sse4_2", "avx", "f16c", "fma", "bmi2", "avx2", "avx512f", "avx512cd", "avx512vl", "avx512dq",
            "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"}  # fmt: skip
    native, no_amx, portable = (llama_cpp.cmake_args(v, xeon) for v in llama_cpp.VARIANTS)
    assert "-DGGML_NATIVE=ON" in native and not set(llama_cpp.NO_AMX) & set(native)
    # -march=native would bring AMX back, so this variant names each instruction set the CPU has
    assert "-DGGML_NATIVE=OFF" in no_amx and set(llama_cpp.NO_AMX) <= set(no_amx)
    assert {"-DGGML_AVX512=ON", "-DGGML_AVX512_VNNI=ON", "-DGGML_AVX512_BF16=ON", "-DGGML_AVX2=ON"} <= set(
        no_amx
    )
    assert {"-DGGML_AVX512_VBMI=OFF", "-DGGML_AVX_VNNI=OFF"} <= set(no_amx)  # this CPU lacks them
    assert "-DGGML_NATIVE=OFF" in portable and not any("AVX512=ON" in a for a in portable)
    with pytest.raises(llama_cpp.LlamaCppError, match=r"unknown llama\.cpp build variant 'fast'"):
        llama_cpp.cmake_args("fast")


def test_the_cpu_signature_names_the_model_and_hashes_the_flags():
    model, flags = llama_selftest.cpu_info()
    signature = llama_selftest.cpu_signature()
    assert signature.startswith(model + " [") and len(signature) == len(model) + 15
    assert os.cpu_count() and isinstance(flags, str)
