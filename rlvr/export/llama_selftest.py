"""Prove that the built llama.cpp runs on this CPU before anyone is handed it.

A native build (-DGGML_NATIVE=ON) compiles kernels for the CPU it was built on, and on some CPUs a
kernel it enables faults at run time: on an Intel Xeon with AMX, the AMX kernel for quantized matmuls
died with "Illegal instruction" serving a Q4_K_M model, while the f16 file served fine. A tiny model never
reaches those kernels, so the self-test uses a real quantized model: the bundled SmolLM2-135M requantized
to Q4_K_M once (cached). It quantizes, serves it with llama-server and generates a few tokens.

When the self-test faults (the program is killed by SIGILL, SIGSEGV, SIGBUS or SIGFPE), llama.cpp is
rebuilt as the next, more conservative variant (`VARIANTS`: native, native without AMX, portable) and
tested again. Results are recorded per CPU (model name and flags) in SELFTEST.json next to the build, so
a cache shared by different machines is tested once on each of them.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FAULTS = {signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE}
SELFTEST = "SELFTEST.json"
PROMPT = "let rec length xs ="


@dataclass(frozen=True)
class SelfTestResult:
    ok: bool
    fault: bool  # a program died of a CPU fault: another build variant may work
    detail: str
    variant: str
    cpu: str
    seconds: float


def cpu_info() -> tuple[str, str]:
    """The CPU's model name and its instruction-set flags (what decides which kernels run)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown", ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    return (model.group(1).strip() if model else "unknown"), " ".join(
        sorted((flags.group(1) if flags else "").split())
    )


def cpu_signature() -> str:
    """One CPU kind: its model name and a hash of its flags."""
    model, flags = cpu_info()
    return f"{model} [{hashlib.sha256(flags.encode()).hexdigest()[:12]}]"


def describe_exit(code: int) -> tuple[str, bool]:
    """'killed by SIGILL (Illegal instruction)' and whether it is a CPU fault, for a negative exit code."""
    if code >= 0:
        return f"exited with status {code}", False
    sig = signal.Signals(-code)
    return f"killed by {sig.name} ({signal.strsignal(sig) or sig.name})", sig in FAULTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantized_model(bin_dir: Path, work: Path) -> tuple[Path | None, str, bool]:
    """The bundled model as Q4_K_M (made once with llama-quantize): (path, problem, fault)."""
    from ..models import ModelLoadError, bundled_gguf

    out = work / "SmolLM2-135M-Instruct.Q4_K_M.gguf"
    if out.exists():
        return out, "", False
    try:
        source = bundled_gguf()
    except ModelLoadError as e:
        return None, f"no model to test with: {e}", False
    work.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    cmd = [str(bin_dir / "llama-quantize"), "--allow-requantize", str(source), str(tmp), "Q4_K_M"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        how, fault = describe_exit(proc.returncode)
        return None, f"llama-quantize {how}: {proc.stderr[-500:]}", fault
    tmp.replace(out)
    return out, "", False


def wait_until_up(server: subprocess.Popen, url: str, timeout: float) -> str | None:
    """Wait for a llama-server process to answer /health: None once it does, else what went wrong
    (it exited, see server.returncode; or it did not come up within `timeout` seconds)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return "exited"
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return f"llama-server did not come up within {timeout:.0f} s"


def serve_and_generate(
    bin_dir: Path, model: Path, threads: int, timeout: float = 120.0
) -> tuple[bool, str, bool]:
    """llama-server on `model`: wait for it, ask for 8 tokens. (ok, detail, fault)."""
    import httpx

    port = free_port()
    cmd = [
        str(bin_dir / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-c", "512", "-np", "1", "-t", str(threads), "-tb", str(threads),
    ]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        problem = wait_until_up(server, url, timeout)
        if problem is not None and server.poll() is not None:
            how, fault = describe_exit(server.returncode)
            return False, f"llama-server {how} while loading", fault
        if problem is not None:
            return False, problem, False
        try:
            r = httpx.post(
                url + "/completion",
                json={"prompt": PROMPT, "n_predict": 8, "temperature": 0},
                timeout=timeout,
            )
        except httpx.HTTPError as e:
            server.wait(timeout=10) if server.poll() is None else None
            if server.poll() is not None:
                how, fault = describe_exit(server.returncode)
                return False, f"llama-server {how} while generating", fault
            return False, f"the completion request failed: {e}", False
        if r.status_code != 200:
            return False, f"the completion request got HTTP {r.status_code}: {r.text[:300]}", False
        tokens = r.json().get("tokens_predicted", 0)
        if not tokens:
            return False, "llama-server generated no token", False
        return True, f"generated {tokens} tokens", False
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def run_selftest(bin_dir: Path, work: Path, variant: str, threads: int) -> SelfTestResult:
    """Quantize the bundled model to Q4_K_M (once), serve it and generate: does this build work here?"""
    started = time.monotonic()
    model, problem, fault = quantized_model(bin_dir, work)
    if model is None:
        ok, detail = False, problem
    else:
        ok, detail, fault = serve_and_generate(bin_dir, model, threads)
    return SelfTestResult(ok, fault, detail, variant, cpu_signature(), round(time.monotonic() - started, 1))


def read_results(home: Path) -> dict[str, dict]:
    try:
        data = json.loads((home / SELFTEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(home: Path, result: SelfTestResult) -> None:
    data = read_results(home)
    data[result.cpu] = {**asdict(result), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = home / f".{SELFTEST}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(home / SELFTEST)


def passed_here(home: Path, variant: str) -> bool:
    """This CPU already passed the self-test with the build variant that is there now."""
    entry = read_results(home).get(cpu_signature()) or {}
    return bool(entry.get("ok")) and entry.get("variant") == variant
