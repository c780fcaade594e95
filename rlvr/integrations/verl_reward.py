"""The OCaml reward in verl's custom-reward format (doc/scaling.md).

    reward.custom_reward_function.path=<repo>/rlvr/integrations/verl_reward.py
    reward.custom_reward_function.name=compute_score          # per sample (verl's reward loop managers)
                                   name=compute_score_batch   # verl's batch reward manager

Each row's `reward_model.ground_truth` is the problem itself as JSON (rlvr.integrations.verl_data writes
it), so a reward worker needs no copy of the problem files. Scoring is the project's verifier: one per
process, sandboxed, its pool shared by verl's concurrent per-sample calls; with VERIFIER_URL set, the
reward servers of `make reward-server` score instead. A score is a dict: `score` (the graduated reward)
plus `pass`, `tests_fraction`, `type_checked` and `infra_error`, which verl logs as reward extra info.
verl cannot mask a sample, so an infrastructure failure scores 0 with `infra_error` 1.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

# verl loads this file by path: make the project importable without installing it there.
_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from rlvr.problems import Problem  # noqa: E402
from rlvr.service.wire import problem_from_wire  # noqa: E402
from rlvr.verifier import Outcome  # noqa: E402
from rlvr.verifier.scoring import TYPE_CHECK_MAX  # noqa: E402

_verifier = None
_lock = threading.Lock()


def verifier():
    """This process's verifier (VERIFIER_* / VERIFIER_URL), made on first use."""
    global _verifier
    with _lock:
        if _verifier is None:
            from rlvr.service.client import open_verifier
            from rlvr.service.config import RemoteConfig
            from rlvr.verifier import VerifierConfig

            _verifier = open_verifier(VerifierConfig.from_env(), RemoteConfig.from_env(os.environ))
            atexit.register(_verifier.close)  # its compile servers and /dev/shm directory go with the process
        return _verifier


@lru_cache(maxsize=4096)
def problem_of(ground_truth: str) -> Problem:
    """The problem a row's ground truth carries (JSON of the wire form), parsed once."""
    try:
        row = json.loads(ground_truth)
    except (TypeError, json.JSONDecodeError):
        raise ValueError(
            "reward_model.ground_truth must be a problem as JSON (python -m rlvr.integrations.verl_data "
            f"writes it), found {str(ground_truth)[:80]!r}"
        ) from None
    return problem_from_wire(row, "reward_model.ground_truth")


def as_score(o: Outcome) -> dict[str, float]:
    return {
        "score": o.total_reward if o.total_reward is not None else 0.0,
        "pass": float(o.stage == "pass"),
        "tests_fraction": o.tests_passed / o.tests_total if o.tests_total else 0.0,
        "type_checked": float(o.type_check == TYPE_CHECK_MAX),
        "infra_error": float(o.stage == "infra_error"),
    }


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None, **_: Any
) -> dict[str, float]:
    """One completion (verl's per-sample signature)."""
    problem = problem_of(ground_truth)
    return as_score(verifier().score(problem, solution_str))


def compute_score_batch(
    data_sources: list[str],
    solution_strs: list[str],
    ground_truths: list[str],
    extra_infos: list[dict] | None = None,
    **_: Any,
) -> list[dict[str, float]]:
    """A whole batch at once (verl's batch reward manager): the verifier's pool scores it in parallel."""
    items = [(problem_of(g), s) for g, s in zip(ground_truths, solution_strs)]
    return [as_score(o) for o in verifier().score_batch(items)]
