"""llama-server as a child process on a GGUF file: started, asked, restarted, stopped, and never left
behind. Used by GRPO's llama-server rollouts (rlvr.grpo.llama_rollout) and evaluation's llama-server
backend (eval/backends/llama.py); the served weights live in a work directory in RAM (work_dir).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from . import llama_cpp


class LlamaServerError(RuntimeError):
    """llama-server could not be started or did not answer; the message holds the end of its log."""


def work_root() -> Path:
    """Where served weights are written: RAM (/dev/shm) when the machine has it."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def work_dir(prefix: str, name: str) -> Path:
    """This process's work directory for served weights, `<root>/<prefix><name>-<pid>` (not created).
    Directories of the same prefix left by processes that were killed (SIGKILL runs no cleanup: ~0.8 GB
    of weights in RAM each for the 135M model) are removed first: one whose pid is not alive is stale."""
    root = work_root()
    for stale in root.glob(f"{prefix}*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return root / f"{prefix}{name}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _prctl()  # looked up here: the child between fork and exec must not load libraries


def die_with_parent() -> None:
    """In the llama-server child before exec: SIGTERM it when the process that started it dies, also
    by SIGKILL, so no server outlives its run (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class LlamaServer:
    """One llama-server process on a GGUF file; restarted on a new file whenever the policy changes."""

    def __init__(self, parallel: int, context_per_slot: int, threads: int, log: Path, jinja: bool = False):
        self.parallel = parallel
        self.jinja = jinja  # the GGUF's own chat template for /v1/chat/completions (the model's, exactly)
        self.context = parallel * context_per_slot
        self.threads = threads
        self.log = log
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, gguf: Path, timeout: float = 120.0) -> None:
        from .llama_selftest import free_port, wait_until_up

        self.stop()
        port = free_port()
        cmd = [
            str(llama_cpp.binary("llama-server")), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
            "-c", str(self.context), "-np", str(self.parallel), "-t", str(self.threads), "-tb", str(self.threads),
            "--no-webui", *(["--jinja"] if self.jinja else []),
        ]  # fmt: skip
        with self.log.open("a") as out:
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            # its own session: a Ctrl-C meant for its parent (a trainer then finishes its step) must
            # not kill the server first; it still dies with the parent (die_with_parent). prctl ties
            # that to the thread that starts it: the parent's main thread, here.
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{port}"
        problem = wait_until_up(self.process, self.url, timeout)
        if problem is not None:
            self.stop()
            raise LlamaServerError(
                f"llama-server on {gguf}: {problem}; its log ({self.log}) ends:\n{self.tail()}"
            )

    def complete(self, body: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
        import httpx

        try:
            response = httpx.post(self.url + "/completion", json=body, timeout=timeout)
        except httpx.HTTPError as e:
            raise LlamaServerError(
                f"llama-server request failed: {e}; its log ends:\n{self.tail()}"
            ) from None
        if response.status_code != 200:
            raise LlamaServerError(
                f"llama-server answered HTTP {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
