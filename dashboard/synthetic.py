"""Synthetic run files in the trainer's format, for demos, tests and the benchmark.

``python -m dashboard.synthetic --runs-dir /tmp/demo_runs --steps 300 --live`` writes a
GRPO run (and an SFT run with ``--sft-runs-dir``) and, with ``--live``, keeps
appending one step a second so the dashboard can be watched updating.  ``--episodes``
makes it a multi-turn run (``GRPO_ENVIRONMENT=ocaml``): completions are episodes with
``tool_calls``, ``check_cost`` and a ``conversation``, and metrics gain the ``env/*`` keys.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from datetime import datetime, timezone
from typing import Any, TextIO

from dashboard.completions_index import STAGES

ERROR_CLASSES = (
    "Unbound value",
    "This expression has type",
    "Syntax error",
    "Unbound module",
    "This function has type",
    "Unused variable",
)
_CODE = [
    "let rec fib n =\n  if n < 2 then n\n  else fib (n - 1) + fib (n - 2)\n",
    'let sum_list (xs : int list) : int =\n  List.fold_left ( + ) 0 xs\n\nlet () = print_endline "ok"\n',
    "let rec rev acc = function\n  | [] -> acc\n  | x :: rest -> rev (x :: acc) rest\n\nlet reverse l = rev [] l\n",
    'let count_vowels (s : string) : int =\n  String.fold_left (fun n c -> if String.contains "aeiou" c then n + 1 else n) 0 s\n',
    "let max_elt = function\n  | [] -> None\n  | x :: xs -> Some (List.fold_left max x xs)\n(* a comment *)\n",
]
_ERRORS = {
    "pass": None,
    "test_failure": 'Exception: Assert_failure ("test.ml", 3, 10)',
    "compile_error": "Error: Unbound module Foo",
    "type_error": 'File "sol.ml", line 2, characters 4-9:\nError: This expression has type int but an expression was expected of type string',
    "syntax_error": 'File "sol.ml", line 3, characters 0-3:\nError: Syntax error',
    "timeout": "timed out after 10s",
    "empty": None,
    "infra_error": "sandbox: could not start",
}


CHECK_COST = 0.02  # ENV_CHECK_COST's default
_CHECK_ERROR = (
    "Line 2, characters 2-11:\n2 |   List.fold ( + ) 0 xs\n      ^^^^^^^^^\nError: Unbound value List.fold\n"
    "Hint: Did you mean fold_left or fold_right?"
)
_CHECK_OK = "Your code compiles, and all 2 of the problem's examples hold."


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat()


def write_run_json(
    run_dir: str, name: str, kind: str = "grpo", max_steps: int = 200, status: str = "running"
) -> None:
    """Write a ``run.json`` like the trainer's."""
    os.makedirs(run_dir, exist_ok=True)
    config: dict[str, Any] = {"max_steps": max_steps, "learning_rate": 1e-6, "beta": 0.0}
    if kind == "grpo":
        config.update(
            {
                "num_generations": 4,
                "reward_funcs": ["ocaml"],
                "max_completion_length": 512,
                "loss_type": "dapo",
            }
        )
    meta = {
        "run_name": name,
        "kind": kind,
        "status": status,
        "started_at": _iso(time.time() - 3600),
        "finished_at": None,
        "pid": os.getpid(),
        "config": config,
        "model": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
        "dataset": "kiranpg/ocaml-training-problems",
        "versions": {"trl": "1.16.0"},
        "git_commit": None,
        "resumes": [],
    }
    with open(os.path.join(run_dir, "run.json"), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)


def metrics_record(
    step: int, max_steps: int, rng: random.Random, t0: float, episodes: bool = False
) -> dict[str, Any]:
    """One plausible GRPO ``metrics.jsonl`` record (with the environment's keys for ``episodes``)."""
    p = step / max(1, max_steps)
    reward = 0.2 + 0.6 * (1 - math.exp(-4 * p)) + rng.gauss(0, 0.05)
    rec = {
        "step": step,
        "epoch": round(step / 500, 4),
        "time": t0 + step * 12.5,
        "elapsed_s": step * 12.5,
        "loss": 0.05 * math.exp(-2 * p) + rng.gauss(0, 0.005),
        "grad_norm": abs(rng.gauss(0.6, 0.15)),
        "learning_rate": 1e-6 * (1 - p),
        "reward": reward,
        "reward_std": abs(rng.gauss(0.25, 0.03)),
        "rewards/ocaml/mean": reward,
        "rewards/ocaml/std": abs(rng.gauss(0.25, 0.03)),
        "rewards/format/mean": min(1.0, 0.5 + p),
        "rewards/format/std": 0.1,
        "frac_reward_zero_std": max(0.0, 0.4 - 0.3 * p + rng.gauss(0, 0.03)),
        "completions/mean_length": 180 + 60 * p + rng.gauss(0, 5),
        "completions/min_length": 20 + rng.randint(0, 10),
        "completions/max_length": 512,
        "completions/clipped_ratio": max(0.0, 0.1 - 0.08 * p),
        "entropy": 0.6 - 0.2 * p + rng.gauss(0, 0.01),
        "step_time": 12.5 + rng.gauss(0, 0.5),
        "tokens_per_second": 1800 + rng.gauss(0, 50),
        "num_tokens": step * 22000,
    }
    if episodes:
        calls = max(0.0, 1.6 - 1.0 * p + rng.gauss(0, 0.1))
        rec.update(
            {
                "tools/call_frequency": calls,
                "tools/failure_frequency": max(0.0, 0.05 + rng.gauss(0, 0.01)),
                "env/tool_calls_mean": calls,
                "env/checks_mean": calls,
                **{
                    f"env/reward_by_calls/{n}": min(1.0, reward + 0.1 * (1 - n) + rng.gauss(0, 0.03))
                    for n in range(4)
                    if n or step % 3  # a key appears only at steps that had such episodes
                },
            }
        )
    return rec


def batch_record(
    step: int, max_steps: int, rng: random.Random, t0: float, n: int = 64, k: int = 4, episodes: bool = False
) -> dict[str, Any]:
    """One plausible ``batch_metrics.jsonl`` record (with the environment's ``tool_calls`` for ``episodes``)."""
    p = step / max(1, max_steps)
    weights = [0.1 + 0.5 * p, 0.15, 0.15 - 0.1 * p, 0.25 - 0.15 * p, 0.2 - 0.15 * p, 0.03, 0.02, 0.005]
    counts = {s: 0 for s in STAGES}
    for _ in range(n):
        counts[rng.choices(STAGES, weights)[0]] += 1
    hist = [rng.randint(0, 12) for _ in range(10)]
    rec = {
        "step": step,
        "time": t0 + step * 12.5,
        "n_completions": n,
        "n_problems": n // k,
        "k": k,
        "pass@1": counts["pass"] / n,
        "pass@k": min(1.0, counts["pass"] / n * 2.2),
        "reward_mean": 0.2 + 0.6 * p,
        "reward_std": 0.25,
        "stage_counts": counts,
        "reward_histogram": {"edges": [i / 10 for i in range(11)], "counts": hist},
        "infra_errors": counts["infra_error"],
        "error_classes": {c: rng.randint(0, 5) for c in ERROR_CLASSES[: 3 + step % 3]},
        "partial_tests": rng.randint(0, counts["test_failure"]) if counts["test_failure"] else 0,
    }
    if episodes:
        by_calls = [n - n // 4 - 2 * (n // 8), n // 4, n // 8, n // 8]
        rec["tool_calls"] = {
            "mean": sum(c * m for c, m in enumerate(by_calls)) / n,
            "episodes_by_calls": {str(c): m for c, m in enumerate(by_calls)},
            "reward_by_calls": {str(c): round(0.2 + 0.6 * p - 0.05 * c, 6) for c in range(4)},
        }
    return rec


def completion_record(
    step: int, problem: int, g: int, rng: random.Random, episode: bool = False
) -> dict[str, Any]:
    """One plausible ``completions.jsonl`` record; with ``episode``, a multi-turn episode's."""
    stage = rng.choices(STAGES, [0.4, 0.2, 0.1, 0.12, 0.1, 0.04, 0.03, 0.01])[0]
    total = 5
    passed = total if stage == "pass" else (rng.randint(0, total - 1) if stage == "test_failure" else 0)
    reward = {"pass": 1.0, "test_failure": 0.4 + 0.1 * passed, "compile_error": 0.1, "type_error": 0.1}.get(
        stage, 0.0
    )
    code = _CODE[(problem + g) % len(_CODE)]
    rec: dict[str, Any] = {
        "step": step,
        "problem_id": f"problem_{problem:04d}",
        "group_index": g,
        "prompt": f"(** Problem {problem}: return the sum of the elements of a list of integers.\n    Example: sum_list [1; 2; 3] = 6 *)\nlet sum_list (xs : int list) : int =",
        "completion": "" if stage == "empty" else "```ocaml\n" + code + "```",
        "reward": reward,
        "stage": stage,
        "error": _ERRORS[stage],
        "tests_passed": passed,
        "tests_total": total,
    }
    if episode:
        calls = rng.choices((0, 1, 2, 3), (0.35, 0.35, 0.2, 0.1))[0]
        turns: list[dict[str, Any]] = []
        for n in range(calls):
            attempt = (
                code
                if n == calls - 1
                else "(* a first try *)\n" + code.replace("List.fold_left", "List.fold")
            )
            turns.append(
                {
                    "role": "assistant",
                    "content": "Let me check it first." if n == 0 else "",
                    "tool_calls": [{"name": "check", "arguments": {"code": attempt}}],
                }
            )
            turns.append(
                {"role": "tool", "name": "check", "content": _CHECK_ERROR if n < calls - 1 else _CHECK_OK}
            )
        turns.append({"role": "assistant", "content": rec["completion"]})
        rec["reward"] = round(reward - CHECK_COST * calls, 6)
        rec.update(tool_calls=calls, check_cost=round(CHECK_COST * calls, 6), conversation=turns)
    return rec


def _dump(fh: TextIO, rec: dict[str, Any]) -> None:
    fh.write(json.dumps(rec) + "\n")


def write_grpo_run(
    runs_dir: str,
    name: str,
    steps: int,
    max_steps: int | None = None,
    problems_per_step: int = 4,
    generations: int = 4,
    completion_every: int = 1,
    seed: int = 0,
    set_latest: bool = True,
    episodes: bool = False,
) -> str:
    """Write a complete GRPO run of ``steps`` logging steps; returns its directory.

    ``episodes``: a multi-turn run (completions are episodes, metrics carry ``env/*``).
    """
    rng = random.Random(seed)
    max_steps = max_steps or steps
    run_dir = os.path.join(runs_dir, name)
    write_run_json(run_dir, name, "grpo", max_steps)
    t0 = time.time() - steps * 12.5
    with (
        open(os.path.join(run_dir, "metrics.jsonl"), "w", encoding="utf-8") as fm,
        open(os.path.join(run_dir, "batch_metrics.jsonl"), "w", encoding="utf-8") as fb,
        open(os.path.join(run_dir, "completions.jsonl"), "w", encoding="utf-8") as fc,
    ):
        for step in range(1, steps + 1):
            _dump(fm, metrics_record(step, max_steps, rng, t0, episodes))
            _dump(fb, batch_record(step, max_steps, rng, t0, episodes=episodes))
            if step % completion_every == 0:
                for prob in range(problems_per_step):
                    for g in range(generations):
                        _dump(fc, completion_record(step, (step * 7 + prob) % 500, g, rng, episodes))
    if set_latest:
        set_latest_link(runs_dir, name)
    return run_dir


def set_latest_link(runs_dir: str, name: str) -> None:
    """Point ``<runs_dir>/latest`` at ``name`` (a relative symlink)."""
    link = os.path.join(runs_dir, "latest")
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(name, tmp)
    os.replace(tmp, link)


def write_sft_run(runs_dir: str, name: str, steps: int = 300, eval_every: int = 50, seed: int = 0) -> str:
    """Write an SFT run with separate train and eval lines."""
    rng = random.Random(seed)
    run_dir = os.path.join(runs_dir, name)
    write_run_json(run_dir, name, "sft", steps, status="finished")
    t0 = time.time() - steps * 2
    with open(os.path.join(run_dir, "metrics.jsonl"), "w", encoding="utf-8") as fh:
        for step in range(1, steps + 1):
            p = step / steps
            _dump(
                fh,
                {
                    "step": step,
                    "epoch": round(3 * p, 4),
                    "time": t0 + 2 * step,
                    "loss": 1.6 * math.exp(-3 * p) + 0.3 + rng.gauss(0, 0.03),
                    "learning_rate": 2e-5 * min(1.0, step / 30) * (1 - p),
                    "grad_norm": abs(rng.gauss(1.0, 0.2)),
                },
            )
            if step % eval_every == 0:
                _dump(
                    fh,
                    {
                        "step": step,
                        "epoch": round(3 * p, 4),
                        "time": t0 + 2 * step + 1,
                        "eval_loss": 1.5 * math.exp(-2.5 * p) + 0.4,
                    },
                )
    set_latest_link(runs_dir, name)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    """CLI: write demo runs, optionally appending live."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs-dir", default="grpo_runs")
    ap.add_argument("--sft-runs-dir", default=None)
    ap.add_argument("--name", default="demo")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--live", action="store_true", help="keep appending a step per --interval seconds")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument(
        "--episodes", action="store_true", help="a multi-turn run: completions are episodes with tool calls"
    )
    args = ap.parse_args(argv)
    max_steps = args.max_steps or max(args.steps * 2, args.steps + 100)
    run_dir = write_grpo_run(args.runs_dir, args.name, args.steps, max_steps, episodes=args.episodes)
    if args.sft_runs_dir:
        write_sft_run(args.sft_runs_dir, args.name + "-sft")
    print(f"wrote {run_dir}")
    if not args.live:
        return 0
    rng = random.Random(1)
    t0 = time.time() - args.steps * 12.5
    step = args.steps
    while step < max_steps:
        time.sleep(args.interval)
        step += 1
        with open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8") as fh:
            _dump(fh, metrics_record(step, max_steps, rng, t0, args.episodes))
        with open(os.path.join(run_dir, "batch_metrics.jsonl"), "a", encoding="utf-8") as fh:
            _dump(fh, batch_record(step, max_steps, rng, t0, episodes=args.episodes))
        with open(os.path.join(run_dir, "completions.jsonl"), "a", encoding="utf-8") as fh:
            for prob in range(4):
                for g in range(4):
                    _dump(fh, completion_record(step, (step * 7 + prob) % 500, g, rng, args.episodes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
