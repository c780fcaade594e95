"""Does it learn? `make bench-train`: evaluate, SFT, evaluate, GRPO from the SFT adapter, evaluate.

Runs the project's own commands as subprocesses (the same a user runs), on the bundled model and the
bundled problem set, on CPU, then prints pass@1, mean reward and the parse/type-check rates on the
held-out eval split before and after each stage, and GRPO's time per step with its breakdown
(generation, reward, update). Record what it prints in doc/benchmarks.md, whatever the numbers are.

Settings (environment): BENCH_OUT (default bench_runs), BENCH_EVAL_LIMIT (0 = all 80 eval problems),
BENCH_SFT_STEPS (default 60), BENCH_GRPO_STEPS (default 30), BENCH_THREADS (torch threads for eval, 0 = default),
BENCH_MAX_TOKENS (default 256), BENCH_BEFORE_EVAL (an earlier bench's eval run dir of the base model to reuse);
anything else (GRPO_*, SFT_*, LORA_*) passes through to the trainers.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(argv: list[str], env: dict[str, str], log: Path) -> float:
    start = time.monotonic()
    print(f"$ {' '.join(argv)}   (log: {log})", flush=True)
    with log.open("w") as out:
        proc = subprocess.run(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}")
    return time.monotonic() - start


def evaluate(model: str, name: str, out: Path, env: dict[str, str]) -> dict:
    argv = [
        sys.executable,
        "-m",
        "eval.run",
        "--model",
        model,
        "--output-dir",
        str(out / "eval"),
        "--run-name",
        name,
        "--max-tokens",
        env.get("BENCH_MAX_TOKENS", "256"),
    ]
    if env.get("BENCH_EVAL_LIMIT", "0") != "0":
        argv += ["--limit", env["BENCH_EVAL_LIMIT"]]
    if env.get("BENCH_THREADS", "0") != "0":
        argv += ["--threads", env["BENCH_THREADS"]]
    reuse = env.get("BENCH_BEFORE_EVAL") if model == "bundled" else None
    if reuse:  # an earlier run's eval of the base model with the same settings: skip regenerating it
        seconds, summary_path = 0.0, Path(reuse) / "summary.json"
        print(f"reusing {summary_path} for the base model", flush=True)
    else:
        seconds = run(argv, env, out / f"{name}.log")
        summary_path = out / "eval" / name / "summary.json"
    summary = json.loads(summary_path.read_text())
    m = summary["metrics"]
    funnel = {f["level"]: f["rate"] for f in m["funnel"]}
    return {
        "pass@1": m["pass@1"],
        "mean_reward": m["mean_reward"],
        "parsed": funnel.get("parsed"),
        "type_checked": funnel.get("type_checked"),
        "some_tests": funnel.get("some_tests"),
        "problems": m["problems"],
        "seconds": seconds,
    }


def grpo_timing(run_dir: Path) -> dict:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "event" not in r and r.get("step_time") is not None]

    def med(key: str) -> float | None:
        vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        return statistics.median(vals) if vals else None

    return {
        "steps": len(rows),
        "step_s": med("step_time"),
        "generation_s": med("timing/generation_s"),
        "reward_s": med("timing/reward_s"),
        "update_s": med("timing/update_s"),
        "reward_first": rows[0].get("reward") if rows else None,
        "reward_last5": statistics.mean(r["reward"] for r in rows[-5:]) if rows else None,
    }


def main() -> int:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = str(REPO)
    out = Path(env.get("BENCH_OUT", "bench_runs")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {"before": evaluate("bundled", f"before-{stamp}", out, env)}

    sft_env = {
        **env,
        "SFT_OUTPUT_DIR": str(out / "sft"),
        "SFT_RUN_NAME": f"sft-{stamp}",
        "SFT_MAX_STEPS": env.get("BENCH_SFT_STEPS", "60"),
        "GRPO_MONITOR": "0",
    }
    sft_seconds = run([sys.executable, "-m", "sft.train"], sft_env, out / "sft.log")
    sft_final = out / "sft" / f"sft-{stamp}" / "final"
    results["after SFT"] = evaluate(str(sft_final), f"after-sft-{stamp}", out, env)

    grpo_env = {
        **env,
        "GRPO_OUTPUT_DIR": str(out / "grpo"),
        "GRPO_RUN_NAME": f"grpo-{stamp}",
        "BASE_MODEL_ID": str(sft_final),
        "GRPO_MAX_STEPS": env.get("BENCH_GRPO_STEPS", "30"),
        "GRPO_MONITOR": "0",
    }
    grpo_seconds = run([sys.executable, "-m", "rlvr.train"], grpo_env, out / "grpo.log")
    grpo_dir = out / "grpo" / f"grpo-{stamp}"
    results["after SFT+GRPO"] = evaluate(str(grpo_dir / "final"), f"after-grpo-{stamp}", out, env)
    timing = grpo_timing(grpo_dir)

    print(f"\nheld-out eval split ({results['before']['problems']} problems, greedy, 1 sample):")
    print(f"{'':16}{'pass@1':>8}{'reward':>8}{'parsed':>8}{'typed':>8}{'>=1 test':>9}")
    for name, r in results.items():
        print(
            f"{name:16}{r['pass@1']:>8.3f}{r['mean_reward']:>8.3f}{r['parsed']:>8.2f}{r['type_checked']:>8.2f}{r['some_tests']:>9.2f}"
        )
    print(f"\nSFT: {sft_seconds:.0f} s for {sft_env['SFT_MAX_STEPS']} steps")
    print(
        f"GRPO: {grpo_seconds:.0f} s for {timing['steps']} steps; median step {timing['step_s']:.1f} s = "
        f"generation {timing['generation_s']:.1f} + reward {timing['reward_s']:.2f} + update {timing['update_s']:.1f}"
    )
    print(
        f"GRPO train reward: first step {timing['reward_first']:.3f}, mean of last 5 steps {timing['reward_last5']:.3f}"
    )
    (out / f"bench-train-{stamp}.json").write_text(
        json.dumps(
            {"results": results, "grpo": timing, "sft_seconds": sft_seconds, "grpo_seconds": grpo_seconds},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
