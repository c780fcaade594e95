"""OpenRLHF's local reward function: `--remote_rm_url <path to this file>` (OpenRLHF imports the file and
calls `reward_func(queries, prompts, labels)` on each rollout batch).

It scores in the OpenRLHF process with the project's verifier (VERIFIER_* settings, the sandbox); the
labels name problems of REWARD_SERVER_PROBLEMS (default: the bundled set), loaded once on first call.
For rewards scored on other hosts, point `--remote_rm_url` at `make reward-server`'s `/openrlhf` instead:
the same protocol, answered by rlvr.service.openrlhf in both places.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path

# OpenRLHF loads this file by path: make the project importable without `pip install -e .` there.
_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from rlvr.service.openrlhf import items_of, reply, score_request  # noqa: E402

_state: dict = {}
_lock = threading.Lock()


def _scorer():
    """The verifier and the problems by id, made on first use and kept for the process's life."""
    with _lock:
        if not _state:
            from rlvr.service.__main__ import load_sets
            from rlvr.service.config import ServerConfig
            from rlvr.verifier import Verifier, VerifierConfig

            problems = load_sets(ServerConfig.from_env(os.environ).problems)
            verifier = Verifier(VerifierConfig.from_env())
            atexit.register(verifier.close)  # its compile servers and /dev/shm directory go with the process
            verifier.calibrate(problems)
            _state.update(verifier=verifier, problems={p.id: p for p in problems})
        return _state["verifier"], _state["problems"]


def reward_func(queries: list[str], prompts: list[str], labels: list[str]) -> dict:
    """Rewards for OpenRLHF: {"rewards", "scores", "extra_logs"} as tensors, one value per query."""
    import torch

    verifier, problems = _scorer()
    items, unscored = items_of(problems, queries, prompts, labels)
    outcomes = score_request(lambda ok: verifier.score_batch(ok, ids=[p.id for p, _ in ok]), items, unscored)
    return reply(outcomes, wrap=lambda xs: torch.tensor(xs, dtype=torch.float32))
