"""Reward throughput: the verifier against a naive harness on a fixed corpus (`make bench-reward`).

On the committed corpus bench/reward_corpus.jsonl (bench/make_reward_corpus.py), in one run, each
repetition times, back to back and in a rotating order (the machines are shared and noisy):
- server: `Verifier.score_batch` with the sandbox on and the default pool (one worker per core),
  in batches of `--batch` completions (a GRPO step: 8 prompts x 8 completions), a fresh Verifier each
  repetition (so its problem checks, compile-server start-up and nonce unit are paid for), on the
  problems as the bundled set has them now (tests, reference solutions: per-problem time limits, whose
  reference measurements are made once, untimed, and read from their cache after);
- per-process: the same with VERIFIER_COMPILE_SERVER=0 (one ocamlc process per job);
- old: the verdicts as they were before per-problem limits (VERIFIER_TIME_LIMITS=fixed, OCaml's default
  stack) on the problems as the corpus recorded them (their tests at the time, lists of a million);
- naive: what a naive harness does, serially and without a sandbox: one file with the same assembled
  candidate and the tests as `let () = assert (...)`, `ocamlc -c`, `ocamlc -o`, run under a timeout
  equal to the verifier's fixed test budget, on the problems as they are now; naive-old: the same on the
  corpus's recorded problems;
- floor: a bare `ocamlc -c` of each assembled candidate file, as many processes in parallel as the
  verifier has workers: less work than either (no tests, no link, no run), the floor the compiler's
  start-up cost puts under any per-process method.
It prints completions/second (median over `--reps`), the ratios, the verifier's stage counts, whether
the two verifier paths gave identical Outcomes (they must, apart from wall-clock-dependent timeouts),
and every row whose verdict differs between old and server, with its reason.

    PYTHONPATH=. .venv/bin/python scripts/bench_reward.py [--reps 3] [--batch 64] [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rlvr.data import load_problems
from rlvr.problems import Problem
from rlvr.verifier import Outcome, Verifier, VerifierConfig
from rlvr.verifier.extract import extract_code
from rlvr.verifier.harness import assemble_candidate

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "reward_corpus.jsonl"

Item = tuple[Problem, str]


def load_corpus(
    path: Path, limit: int | None = None, skip: tuple[str, ...] = ()
) -> tuple[list[Item], Counter]:
    """(problem, completion) pairs of the corpus (without the kinds in `skip`), and the count per kind."""
    items: list[Item] = []
    kinds: Counter = Counter()
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["kind"] in skip:
                continue
            p = row["problem"]
            items.append(
                (Problem(id=p["id"], prompt=p["prompt"], tests=tuple(p["tests"])), row["completion"])
            )
            kinds[row["kind"]] += 1
            if limit and len(items) >= limit:
                break
    return items, kinds


def cpu_seconds() -> float:
    """CPU time of this process and of all its waited-for descendants (sandboxes, servers, compilers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    ocaml = subprocess.run(["ocamlc", "-version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ocaml": ocaml,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# -- the methods ------------------------------------------------------------------------------------


def run_verifier(
    items: list[Item], config: VerifierConfig, batch: int
) -> tuple[float, list[Outcome], Counter]:
    """Seconds to score everything with a fresh Verifier, the outcomes, and the verifier's stats."""
    start = time.perf_counter()
    with Verifier(config) as v:
        outcomes: list[Outcome] = []
        for i in range(0, len(items), batch):
            outcomes += v.score_batch(items[i : i + batch])
        stats = Counter(v.stats)
    return time.perf_counter() - start, outcomes, stats


def naive_source(problem: Problem, completion: str) -> str:
    """One file: the candidate as the verifier assembles it, then each test as an assertion."""
    candidate, _full, _ = assemble_candidate(problem.signature, extract_code(completion).code)
    return candidate + "".join(f"let () = assert ({t})\n" for t in problem.tests)


NAIVE_RUN_S = [0.0]  # of the naive harness's time, how much went to running the test programs


def run_naive(items: list[Item], timeout_s: float) -> float:
    """Seconds for the naive harness: per completion a temporary directory, `ocamlc -c`, `ocamlc -o`,
    then the program under a timeout; serial; no sandbox."""
    start = time.perf_counter()
    NAIVE_RUN_S[0] = 0.0
    for problem, completion in items:
        with tempfile.TemporaryDirectory(prefix="naive-") as d:
            Path(d, "main.ml").write_text(naive_source(problem, completion))
            if subprocess.run(["ocamlc", "-c", "main.ml"], cwd=d, capture_output=True).returncode:
                continue
            if subprocess.run(["ocamlc", "-o", "main", "main.cmo"], cwd=d, capture_output=True).returncode:
                continue
            t = time.perf_counter()
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(["ocamlrun", "./main"], cwd=d, capture_output=True, timeout=timeout_s)
            NAIVE_RUN_S[0] += time.perf_counter() - t
    return time.perf_counter() - start


def run_floor(files: list[str], jobs: int) -> float:
    """Seconds for `ocamlc -w -a -c` of every candidate file, `jobs` processes at a time."""

    def one(path: str) -> None:
        subprocess.run(
            ["ocamlc", "-w", "-a", "-c", os.path.basename(path)],
            cwd=os.path.dirname(path),
            capture_output=True,
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - start


def write_floor_files(items: list[Item], root: str) -> list[str]:
    files = []
    for n, (problem, completion) in enumerate(items):
        d = os.path.join(root, f"c{n:04d}")
        os.makedirs(d)
        candidate, _full, _ = assemble_candidate(problem.signature, extract_code(completion).code)
        path = os.path.join(d, "candidate.ml")
        Path(path).write_text(candidate)
        files.append(path)
    return files


# OCaml 4.13's default bytecode stack limit (words): what the test program had before VERIFIER_STACK_WORDS
OCAML_DEFAULT_STACK_WORDS = 1024 * 1024


def current_problems(items: list[Item]) -> list[Item]:
    """The same completions against the bundled set's current version of each problem (its tests and
    reference solution); a problem the set no longer has stays as the corpus recorded it."""
    bundled = {p.id: p for p in load_problems("bundled")[0]}
    return [(bundled.get(p.id, p), c) for p, c in items]


# -- comparison -------------------------------------------------------------------------------------


def verdict(o: Outcome) -> tuple:
    """The fields that must not depend on the compile path."""
    return (o.stage, o.total_reward, o.type_check, o.compile, o.tests, o.tests_passed, o.type_errors, o.error)


def differences(a: list[Outcome], b: list[Outcome]) -> list[tuple[int, tuple, tuple]]:
    """Outcomes that differ between two runs, ignoring those where either timed out (wall-clock)."""
    return [
        (i, verdict(x), verdict(y))
        for i, (x, y) in enumerate(zip(a, b))
        if verdict(x) != verdict(y) and "timeout" not in (x.stage, y.stage)
    ]


def change_reason(old_p: Problem, new_p: Problem, old: Outcome, new: Outcome) -> str:
    """Why a row's verdict changed between the old and the new verifier."""
    if "timeout" in (old.stage, new.stage) or "timed out" in (old.error or "") + (new.error or ""):
        return "time limit (a loop, or a run at the edge of a limit)"
    if "Stack overflow" in (old.error or "") + (new.error or ""):
        return "stack (non-tail recursion caught by the small stack, or no longer by a huge input)"
    if old_p.tests != new_p.tests:
        return "the problem's tests changed (smaller inputs)"
    return "UNEXPLAINED"


def grpo_steps(run_dir: Path, old_problems: Path | None, reps: int) -> None:
    """The reward phase of a finished GRPO run, step by step, with the old and the new verdicts.

    Each step's completions (completions.jsonl) are scored as one batch, the way the reward function
    scores them, by a fresh verifier per repetition: new = the default configuration on the bundled
    problems; old = fixed limits and OCaml's default stack on `old_problems` (the problem file as it was;
    the bundled one if not given). Printed: the median seconds per step of each, and their share of the
    run's logged step time."""
    rows = [json.loads(line) for line in (run_dir / "completions.jsonl").open()]
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    step_time = {m["step"]: m["step_time"] for m in logged if "step_time" in m}
    new_set = {p.id: p for p in load_problems("bundled")[0]}
    old_set = {p.id: p for p in load_problems(str(old_problems))[0]} if old_problems else new_set
    steps: dict[int, list[dict]] = {}
    for r in rows:
        steps.setdefault(r["step"], []).append(r)
    base = VerifierConfig.from_env()
    configs = {
        "new": (base, new_set),
        "old": (
            VerifierConfig(
                **{**base.__dict__, "time_limits": "fixed", "stack_words": OCAML_DEFAULT_STACK_WORDS}
            ),
            old_set,
        ),
    }
    with Verifier(base) as v:  # untimed: the reference timings behind the new limits
        v.calibrate(list(new_set.values()))
    per_step: dict[str, list[float]] = {name: [] for name in configs}
    for rep in range(reps):
        for name in list(configs) if rep % 2 == 0 else list(configs)[::-1]:
            config, problems = configs[name]
            with Verifier(config) as v:
                v.calibrate(
                    [problems[pid] for pid in {r["problem_id"] for r in rows}]
                )  # untimed, as in training
                times = []
                for step in sorted(steps):
                    batch = [(problems[r["problem_id"]], r["completion"]) for r in steps[step]]
                    t = time.perf_counter()
                    v.score_batch(batch)
                    times.append(time.perf_counter() - t)
            per_step[name].append(times)
    total_step = statistics.median(step_time[s] for s in sorted(steps) if s in step_time)
    print(
        f"GRPO run {run_dir}: {len(steps)} steps, {len(rows)} completions; median logged step {total_step:.1f} s"
    )
    for name, reps_times in per_step.items():
        med = [statistics.median(ts) for ts in zip(*reps_times)]  # per step, over repetitions
        print(
            f"  {name}: reward phase median {statistics.median(med):.3f} s a step, mean {statistics.mean(med):.3f} s, "
            f"max {max(med):.3f} s; {statistics.mean(med) / total_step:.2%} of the median step"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    ap.add_argument("--batch", type=int, default=64, help="completions per score_batch call")
    ap.add_argument("--limit", type=int, default=None, help="only the first N completions")
    ap.add_argument("--skip-kinds", default="", help="comma-separated corpus kinds to leave out, e.g. loop")
    ap.add_argument("--methods", default="server,per-process,old,naive,naive-old,floor")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument(
        "--grpo-run", default=None, help="instead: time the reward phase of this GRPO run's steps"
    )
    ap.add_argument(
        "--old-problems", default=None, help="with --grpo-run: the problem file of the old verdicts"
    )
    args = ap.parse_args()
    if args.grpo_run:
        grpo_steps(Path(args.grpo_run), Path(args.old_problems) if args.old_problems else None, args.reps)
        return

    skip = tuple(k for k in args.skip_kinds.split(",") if k)
    old_items, kinds = load_corpus(Path(args.corpus), args.limit, skip)
    items = current_problems(old_items)
    base = VerifierConfig.from_env()
    configs = {
        "server": VerifierConfig(**{**base.__dict__, "compile_server": True}),
        "per-process": VerifierConfig(**{**base.__dict__, "compile_server": False}),
        "old": VerifierConfig(
            **{**base.__dict__, "time_limits": "fixed", "stack_words": OCAML_DEFAULT_STACK_WORDS}
        ),
    }
    inputs = {"server": items, "per-process": items, "old": old_items}
    jobs = base.jobs or os.cpu_count() or 1
    methods = [m for m in args.methods.split(",") if m]
    info = machine()
    print(f"corpus: {args.corpus}: {len(items)} completions {dict(sorted(kinds.items()))}")
    print(f"machine: {info['nproc']} cores, {info['cpu']}, OCaml {info['ocaml']}, Python {info['python']}")
    print(
        f"verifier: sandbox={base.sandbox} jobs={jobs} batch={args.batch}; naive timeout {base.test_budget_s}s"
    )
    print(f"load average before: {os.getloadavg()}")

    # Warm-up, untimed: builds (or finds) the cached compile server, fills the page cache, and measures
    # (or finds cached) the reference solutions' CPU times behind the per-problem limits.
    run_verifier(items[:8], configs["server"], args.batch)
    with Verifier(configs["server"]) as v:
        limits = v.calibrate(list({p.id: p for p, _ in items}.values()))
    derived = sorted(lim.run_cpu_s for lim in limits.values() if lim.reference_cpu_s is not None)
    if derived:
        print(
            f"time limits: {len(derived)} of {len(limits)} problems derived from their reference, median "
            f"{derived[len(derived) // 2]:.3f} s, largest {derived[-1]:.3f} s of CPU per run"
        )
    floor_root = tempfile.mkdtemp(prefix="bench-floor-")
    files = write_floor_files(items, floor_root)

    times: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    naive_run: list[float] = []
    outcomes: dict[str, list[Outcome]] = {}
    stats: dict[str, Counter] = {}
    runners: dict[str, Callable[[], float]] = {}
    for name in ("server", "per-process", "old"):

        def go(name: str = name) -> float:
            t, outs, st = run_verifier(inputs[name], configs[name], args.batch)
            outcomes[name], stats[name] = outs, st
            return t

        runners[name] = go
    runners["naive"] = lambda: run_naive(items, base.test_budget_s)
    runners["naive-old"] = lambda: run_naive(old_items, base.test_budget_s)
    runners["floor"] = lambda: run_floor(files, jobs)
    try:
        for rep in range(args.reps):
            order = methods[rep % len(methods) :] + methods[: rep % len(methods)]
            for m in order:
                c0 = cpu_seconds()
                t = runners[m]()
                c = cpu_seconds() - c0
                times[m].append(t)
                cpu[m].append(c)
                if m == "naive":
                    naive_run.append(NAIVE_RUN_S[0])
                print(
                    f"  rep {rep + 1} {m:12s} {t:7.2f} s  {len(items) / t:7.1f} completions/s"
                    f"  cpu {c * 1000 / len(items):6.1f} ms/completion",
                    flush=True,
                )
    finally:
        shutil.rmtree(floor_root, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")

    rate = {m: len(items) / statistics.median(ts) for m, ts in times.items()}
    cpu_ms = {m: statistics.median(cs) * 1000 / len(items) for m, cs in cpu.items()}
    print("\nmedian completions/s (and CPU ms per completion, all processes):")
    for m in methods:
        ref = "naive-old" if m.endswith("old") else "naive"
        extra = f"  ({rate[m] / rate[ref]:.2f}x {ref})" if ref in rate and m != ref else ""
        if m == "server" and "naive-old" in rate:
            extra += f"  ({rate[m] / rate['naive-old']:.2f}x naive-old)"
        print(f"  {m:12s} {rate[m]:7.1f}  cpu {cpu_ms[m]:6.1f} ms{extra}")
    if naive_run:
        share = statistics.median(naive_run) / statistics.median(times["naive"])
        print(f"  naive: {share:.0%} of its time is spent running the test programs")
    if "server" in rate and "floor" in rate:
        print(f"  server / floor: {rate['server'] / rate['floor']:.2f}")
    if "server" in rate and "per-process" in rate:
        print(f"  server / per-process: {rate['server'] / rate['per-process']:.2f}")
    for name, outs in outcomes.items():
        print(
            f"\n{name}: stages {dict(Counter(o.stage for o in outs).most_common())}; stats {dict(stats[name])}"
        )
    if "server" in outcomes and "old" in outcomes:
        changed = [
            (i, o, n)
            for i, (o, n) in enumerate(zip(outcomes["old"], outcomes["server"]))
            if verdict(o)[:6] != verdict(n)[:6]
        ]
        reasons = Counter(change_reason(old_items[i][0], items[i][0], o, n) for i, o, n in changed)
        print(f"\nold vs server verdicts: {len(changed)} of {len(items)} rows differ: {dict(reasons)}")
        for i, o, n in changed:
            print(
                f"  #{i} {items[i][0].id}: {o.stage} {o.total_reward} ({o.tests_passed}/{o.tests_total}) -> "
                f"{n.stage} {n.total_reward} ({n.tests_passed}/{n.tests_total}): "
                f"{change_reason(old_items[i][0], items[i][0], o, n)}\n      old: {(o.error or '')[:160]}"
                f"\n      new: {(n.error or '')[:160]}"
            )
    if "server" in outcomes and "per-process" in outcomes:
        diff = differences(outcomes["server"], outcomes["per-process"])
        print(f"\nserver vs per-process outcomes: {len(diff)} differences (timeouts excluded)")
        for i, a, b in diff[:5]:
            print(f"  #{i}: {a}\n       {b}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": info, "completions": len(items), "times_s": times, "rate": rate}, f, indent=1
            )


if __name__ == "__main__":
    main()
