"""No reference solution of the bundled set times out under its derived limit while every core is busy
(doc/reward.md "Time limits"): the limits are measured afresh (a cache of this test's own), then every
reference is scored again with twice as many busy processes as cores competing with the verifier."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rlvr.data import load_problems
from rlvr.verifier import Verifier

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_no_reference_times_out_with_the_cores_busy(tmp_path, monkeypatch):
    monkeypatch.setenv("OCAMLER_CACHE", str(tmp_path))
    problems = [p for p in load_problems("bundled")[0] if p.solution]
    with Verifier() as verifier:
        limits = verifier.calibrate(problems)
        busy = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(2 * (os.cpu_count() or 1))
        ]
        try:
            outcomes = verifier.score_batch([(p, p.solution) for p in problems])
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
    failing = [
        (p.id, o.stage, limits[p.id].run_cpu_s, o.error)
        for p, o in zip(problems, outcomes)
        if o.total_reward != 1.0
    ]
    assert failing == []
    assert all(limits[p.id].reference_cpu_s is not None for p in problems)
