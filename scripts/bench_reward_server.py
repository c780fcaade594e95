"""In-process scoring against the reward server on loopback (`make bench-reward-server`).

On the committed reward corpus (bench/reward_corpus.jsonl, against the bundled set's current problems),
in one run, each repetition times in a rotating order (the machines are shared and noisy):
- in-process: one long-lived `Verifier.score_batch`, batches of `--batch` completions one after the other
  (what GRPO does every step);
- service: the same batches through `RemoteVerifier` to a `python -m rlvr.service` process on this
  machine with the same pool (VERIFIER_JOBS), one client: the cost of HTTP and JSON;
- service, N clients: `--clients` threads sharing the batches, as several trainers (or OpenRLHF's
  workers) would load one host.
Both sides warm up first (compile servers started, reference timings cached). It prints completions/s
(median over `--reps`), per core of the scoring host, the ratios, and whether the service gave the same
verdicts as in-process.

    PYTHONPATH=. .venv/bin/python scripts/bench_reward_server.py [--reps 3] [--batch 64] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_reward import CORPUS, current_problems, load_corpus, machine, verdict  # noqa: E402

from rlvr.service.client import RemoteVerifier  # noqa: E402
from rlvr.service.config import RemoteConfig  # noqa: E402
from rlvr.service.process import server_process  # noqa: E402
from rlvr.verifier import Verifier, VerifierConfig  # noqa: E402


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def timed(score, parts: list[list], clients: int) -> tuple[float, list]:
    start = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = [o for part in pool.map(score, parts) for o in part]
    return time.monotonic() - start, outcomes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    items, _ = load_corpus(CORPUS, args.limit)
    items = current_problems(items)
    parts = batches(items, args.batch)
    m = machine()
    jobs = VerifierConfig.from_env().jobs or os.cpu_count() or 1
    print(f"machine: {m['cpu']}, {m['nproc']} cores; {len(items)} completions in batches of {args.batch}; "
          f"{jobs} verifier workers on each side", flush=True)  # fmt: skip
    times: dict[str, list[float]] = {"in-process": [], "service": [], f"service, {args.clients} clients": []}
    results = {}
    with (
        Verifier(VerifierConfig.from_env()) as local,
        server_process({"REWARD_SERVER_PROBLEMS": "bundled"}) as (url, _),
        RemoteVerifier(RemoteConfig(urls=(url,), batch=args.batch)) as remote,
    ):
        problems = list({p.id: p for p, _ in items}.values())
        local.calibrate(problems)
        remote.calibrate(problems)
        local.score_batch(parts[0])
        remote.score_batch(parts[0])
        runs = {
            "in-process": (local.score_batch, 1),
            "service": (remote.score_batch, 1),
            f"service, {args.clients} clients": (remote.score_batch, args.clients),
        }
        names = list(runs)
        for rep in range(args.reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                score, clients = runs[name]
                seconds, outcomes = timed(score, parts, clients)
                times[name].append(seconds)
                results[name] = outcomes
                print(f"  rep {rep + 1} {name:<20} {seconds:6.1f} s", flush=True)
    cores = int(m["nproc"])
    base = len(items) / statistics.median(times["in-process"])
    print(f"\n{'':<22}{'completions/s':>14}{'per core':>10}{'vs in-process':>15}")
    for name, ts in times.items():
        rate = len(items) / statistics.median(ts)
        print(f"{name:<22}{rate:>14.1f}{rate / cores:>10.1f}{rate / base:>14.2f}x")
    same = [verdict(a) == verdict(b) for a, b in zip(results["in-process"], results["service"])]
    print(f"\nverdicts, service against in-process: {sum(same)} of {len(same)} identical")
    for n, ok in enumerate(same):
        if not ok:
            print(f"  row {n}: {verdict(results['in-process'][n])} vs {verdict(results['service'][n])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
