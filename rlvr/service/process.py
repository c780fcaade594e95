"""`python -m rlvr.service` as a child process on a free loopback port: for the tests, the benchmark, and
anything else that needs a real reward server for a while."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ..export.llama_selftest import free_port  # the project's one free-port helper

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def server_process(env: dict[str, str], timeout: float = 300) -> Iterator[tuple[str, subprocess.Popen]]:
    """The reward server (what `make reward-server` runs) as its own process on a free port, in
    its own session; yields its URL and the process, and stops it with SIGTERM after."""
    port = free_port()
    full = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        **env,
        "REWARD_SERVER_PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlvr.service"], env=full, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            _wait_healthy(url, proc, log, timeout)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the reward server exited {proc.returncode}: {log.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the reward server did not answer /health")
        time.sleep(0.2)
