"""A bounded soak of `make reward-server` on loopback: concurrent clients, a fixed number of requests.
Every request is answered, every verdict is the one expected, the counters add up, the server's process
tree is the same size after the soak as after its first request (no worker leaked), and nothing of it
is left once it stops."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rlvr.data import load_problems
from rlvr.service.process import server_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CLIENTS, REQUESTS, PER_REQUEST = 6, 8, 8  # 48 requests, 384 completions


def live_parents() -> dict[int, int]:
    """pid -> parent pid of every process that is not a zombie, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (a sandbox's processes included: in their own pid namespace,
    they are still the host's children)."""
    parents = live_parents()
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - out
        out |= frontier
    return out


def soak_round(url: str, problems: list, tag: str) -> list[tuple[int, list[str]]]:
    """CLIENTS threads, each sending REQUESTS requests of PER_REQUEST completions: half the reference
    answer, half wrong answers that differ from each other (each compiled on its own: a type error)."""

    def client(k: int) -> list[tuple[int, list[str]]]:
        answers = []
        with httpx.Client(timeout=600) as http:
            for r in range(REQUESTS):
                p = problems[k * REQUESTS + r]
                wrong = [f'let {p.signature.name} _ = 1 + "{tag}-{k}-{r}-{i}"' for i in range(PER_REQUEST)]
                items = [
                    {"problem_id": p.id, "completion": p.solution if i % 2 == 0 else wrong[i]}
                    for i in range(PER_REQUEST)
                ]
                resp = http.post(f"{url}/score", json={"items": items})
                stages = [o["stage"] for o in resp.json()["outcomes"]] if resp.status_code == 200 else []
                answers.append((resp.status_code, stages))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [a for batch in pool.map(client, range(CLIENTS)) for a in batch]


def test_soak_loses_nothing_and_leaks_nothing():
    problems = [p for p in load_problems("bundled", split="train")[0] if p.solution][: CLIENTS * REQUESTS]
    with server_process({"REWARD_SERVER_PROBLEMS": "bundled", "VERIFIER_JOBS": "2"}) as (url, proc):
        first = soak_round(url, problems, "a")  # the workers' compile servers start here, then stay
        steady = len(descendants(proc.pid))
        start = time.monotonic()
        second = soak_round(url, problems, "b")
        elapsed = time.monotonic() - start
        health = httpx.get(f"{url}/health").json()
        after = len(descendants(proc.pid))
        tree = descendants(proc.pid) | {proc.pid}
    results = first + second
    assert [code for code, _ in results] == [200] * (2 * CLIENTS * REQUESTS)
    for _, stages in results:
        assert stages[0::2] == ["pass"] * (PER_REQUEST // 2)
        assert stages[1::2] == ["type_error"] * (PER_REQUEST // 2)
    assert health["completions_scored"] == 2 * CLIENTS * REQUESTS * PER_REQUEST
    assert health["requests"] == 2 * CLIENTS * REQUESTS and health["pending"] == 0
    assert health["infra_failures"] == 0
    assert after == steady, f"{steady} processes under the server after a round, {after} after the next"
    time.sleep(1)
    alive = sorted(tree & set(live_parents()))
    assert alive == [], f"left running after the server stopped: {alive}"
    print(f"soak: {CLIENTS * REQUESTS * PER_REQUEST} completions in {elapsed:.1f} s from {CLIENTS} clients")
