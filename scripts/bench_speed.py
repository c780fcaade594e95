"""How fast does this CPU train? `make bench-speed` (also the first part of `make bench-train`).

Side by side in one run, on the same machine: SFT examples per second and GRPO completions (and rollout
tokens) per second with the previous cpu defaults and with today's, each a few steps of the project's
own trainers (`python -m sft.train`, `python -m rlvr.train`) from the same seed, so the batches are the
same; and, as the reference for what this CPU can generate, the same model served by llama-server
(`make llama-cpp` builds it; skipped with a note when it is not built).

Step 1 of each run is left out (warm-up). Prints a table; writes bench-speed-<time>.json to BENCH_OUT.

Settings (environment): BENCH_OUT (default bench_runs), BENCH_SPEED_SFT_STEPS (default 6),
BENCH_SPEED_GRPO_STEPS (default 4), BENCH_SPEED_MODEL (the model GRPO starts from, default bundled; an
SFT adapter gives completion lengths like the pipeline's), BENCH_SPEED_ONLY (sft | grpo | generate |
lora | llama: one part; `generate` times HF generate at batch 4/8/16 in float32 and bfloat16, and
`lora` a LoRA model unmerged, merged, and merged under bf16 autocast).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The cpu defaults before issue 17's measurements, and today's (which are the code's own defaults).
SFT_BEFORE = {"SFT_BF16": "0", "SFT_BATCH_SIZE": "2", "SFT_GRAD_ACCUM": "2"}
GRPO_BEFORE = {
    "GRPO_BF16": "0",
    "GRPO_NUM_GENERATIONS": "4",
    "GRPO_BATCH_SIZE": "4",
    "GRPO_MAX_COMPLETION_LENGTH": "160",
    "GRPO_MERGE_LORA_FOR_GENERATION": "0",  # TRL's own rollouts, unmerged, as before rlvr.grpo.generation
}


def cpu_description() -> dict[str, str]:
    """CPU model and the flags that decide the fast paths (AVX512, bf16, AMX)."""
    from rlvr.export.llama_selftest import cpu_info

    model, flags = cpu_info()
    fast = [x for x in flags.split() if re.match(r"(avx512|amx|avx2|fma)", x)]
    return {"model": model, "cores": str(os.cpu_count()), "flags": " ".join(fast)}


def run(module: str, env: dict[str, str], log: Path) -> float:
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", module], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {module}; log {log}")
    return time.monotonic() - start


def metric_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r for r in rows if "event" not in r and isinstance(r.get("step_time"), int | float)]


def sft_speed(label: str, overrides: dict[str, str], out: Path, env: dict[str, str], steps: int) -> dict:
    run_env = {
        **env, **overrides,
        "SFT_OUTPUT_DIR": str(out / "sft"), "SFT_RUN_NAME": label, "SFT_MAX_STEPS": str(steps),
        "SFT_EVAL_DATASET": "none", "SFT_SAVE_STEPS": "100000", "SFT_REPORT_TO": "none", "GRPO_MONITOR": "0",
    }  # fmt: skip
    run("sft.train", run_env, out / f"sft-{label}.log")
    info = json.loads((out / "sft" / label / "run.json").read_text())["config"]
    per_step = info["batch_size"] * info["grad_accum"]
    rows = metric_rows(out / "sft" / label)[1:]
    seconds = sum(r["step_time"] for r in rows)
    return {
        "label": label,
        "settings": {k: info[k] for k in ("batch_size", "grad_accum", "bf16")},
        "steps_timed": len(rows),
        "step_s": seconds / len(rows),
        "examples_per_s": per_step * len(rows) / seconds,
        "losses": [round(r["loss"], 4) for r in metric_rows(out / "sft" / label)],
    }


def grpo_speed(label: str, overrides: dict[str, str], out: Path, env: dict[str, str], steps: int) -> dict:
    run_env = {
        **env, **overrides,
        "GRPO_OUTPUT_DIR": str(out / "grpo"), "GRPO_RUN_NAME": label, "GRPO_MAX_STEPS": str(steps),
        "GRPO_SAVE_STEPS": "100000", "GRPO_REPORT_TO": "none", "GRPO_MONITOR": "0",
        "BASE_MODEL_ID": env.get("BENCH_SPEED_MODEL", "bundled"),
    }  # fmt: skip
    run("rlvr.train", run_env, out / f"grpo-{label}.log")
    info = json.loads((out / "grpo" / label / "run.json").read_text())["config"]
    rows = metric_rows(out / "grpo" / label)[1:]
    step = sum(r["step_time"] for r in rows)
    gen = sum(r.get("timing/generation_s") or 0.0 for r in rows)
    tokens = sum((r.get("completions/mean_length") or 0.0) * info["batch_size"] for r in rows)
    return {
        "label": label,
        "settings": {k: info[k] for k in ("num_generations", "batch_size", "max_completion_length", "bf16")},
        "steps_timed": len(rows),
        "step_s": step / len(rows),
        "generation_s": gen / len(rows),
        "completions_per_s": info["batch_size"] * len(rows) / step,
        "rollout_tokens_per_s": tokens / gen if gen else None,
        "mean_completion_tokens": tokens / (info["batch_size"] * len(rows)),
    }


def generate_speed(batches: tuple[int, ...] = (4, 8, 16), new_tokens: int = 128) -> list[dict]:
    """HF `generate` tokens/s of the bundled model at each batch size, float32 and bfloat16: what a GRPO
    group costs when its completions are generated as one batch (every sequence runs to new_tokens)."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlvr.data import load_problems
    from rlvr.models import load_tokenizer, resolve_model
    from rlvr.prompts import build_messages, render

    path = resolve_model("bundled")
    tokenizer = load_tokenizer(path)
    tokenizer.padding_side = "left"
    problem = load_problems("bundled", split="train")[0][0]
    out = []
    for dtype in (torch.float32, torch.bfloat16):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
        for batch in batches:
            enc = tokenizer([render(tokenizer, build_messages(problem))] * batch, return_tensors="pt")
            torch.manual_seed(0)
            t = time.monotonic()
            with torch.no_grad():
                model.generate(
                    **enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True,
                    temperature=0.9, pad_token_id=tokenizer.pad_token_id,
                )  # fmt: skip
            seconds = time.monotonic() - t
            out.append(
                {"dtype": str(dtype).removeprefix("torch."), "batch": batch, "seconds": seconds,
                 "tokens_per_s": batch * new_tokens / seconds}
            )  # fmt: skip
    return out


def lora_generate_speed(batch: int = 8, new_tokens: int = 128) -> list[dict]:
    """HF `generate` tokens/s of the bundled model with a LoRA adapter (r 16, all linear layers, as GRPO
    trains it): unmerged in float32 (how TRL generates by default); merged into the float32 weights
    (what rlvr.grpo.generation does), also on one thread instead of torch's default (all cores); merged
    under bf16 autocast (which casts every float32 weight at every decoding step); and a plain bfloat16
    copy of the merged model (what a separate rollout model, synced each step as vLLM is, would cost).
    Each mode is warmed up before it is timed."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rlvr.data import load_problems
    from rlvr.grpo.generation import merged_lora
    from rlvr.models import load_tokenizer, resolve_model
    from rlvr.prompts import build_messages, render

    path = resolve_model("bundled")
    tokenizer = load_tokenizer(path)
    tokenizer.padding_side = "left"
    problem = load_problems("bundled", split="train")[0][0]
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(
        base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    enc = tokenizer([render(tokenizer, build_messages(problem))] * batch, return_tensors="pt")
    bf16_copy = copy.deepcopy(model).merge_and_unload().to(torch.bfloat16)

    def generate(target, tokens: int, merge: bool, autocast: bool) -> float:
        torch.manual_seed(0)
        t = time.monotonic()
        with (
            merged_lora(target, merge),
            torch.autocast("cpu", torch.bfloat16, enabled=autocast),
            torch.no_grad(),
        ):
            target.generate(
                **enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True,
                temperature=0.9, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        return time.monotonic() - t

    cores = torch.get_num_threads()
    modes = (
        ("unmerged fp32", model, False, False, cores),
        ("merged fp32", model, True, False, cores),
        ("merged fp32, 1 thread", model, True, False, 1),
        ("merged, bf16 autocast", model, True, True, cores),
        ("bf16 copy, merged", bf16_copy, False, False, cores),
    )
    out = []
    for label, target, merge, autocast, threads in modes:
        torch.set_num_threads(threads)
        generate(target, 8, merge, autocast)  # warm-up: a mode's first call pays one-time costs
        seconds = generate(target, new_tokens, merge, autocast)
        out.append(
            {"mode": label, "batch": batch, "threads": threads, "seconds": seconds,
             "tokens_per_s": batch * new_tokens / seconds}
        )  # fmt: skip
    torch.set_num_threads(cores)
    return out


def llama_speed(env: dict[str, str], parallel: int = 8, max_tokens: int = 256) -> dict | None:
    """The bundled GGUF through llama-server: `parallel` concurrent chat requests of `max_tokens`."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from rlvr.data import load_problems
    from rlvr.export import llama_cpp
    from rlvr.export.llama_selftest import wait_until_up
    from rlvr.models import bundled_gguf
    from rlvr.prompts import build_messages

    if not llama_cpp.is_built():
        return None
    port = 8093
    threads = str(os.cpu_count() or 2)
    cmd = [
        str(llama_cpp.binary("llama-server")), "-m", str(bundled_gguf()), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(4096 * parallel), "-np", str(parallel), "-t", threads, "-tb", threads, "--jinja",
    ]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        problem = wait_until_up(server, url, timeout=60)
        if problem is not None:
            raise SystemExit(f"llama-server for the reference figure: {problem}")
        problems, _ = load_problems("bundled", split="train")

        def ask(i: int) -> int:
            body = {
                "messages": build_messages(problems[i % len(problems)]),
                "max_tokens": max_tokens,
                "temperature": 0.9,
                "ignore_eos": True,  # full-length answers: the same work as a batch that runs to max tokens
            }
            r = httpx.post(url + "/v1/chat/completions", json=body, timeout=600)
            r.raise_for_status()
            return int(r.json()["usage"]["completion_tokens"])

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(ask, range(parallel)))  # warm-up
            t = time.monotonic()
            tokens = sum(pool.map(ask, range(parallel)))
            seconds = time.monotonic() - t
        return {"parallel": parallel, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = str(REPO)
    out = Path(env.get("BENCH_OUT", "bench_runs")).resolve() / f"speed-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    only = env.get("BENCH_SPEED_ONLY", "")
    sft_steps = int(env.get("BENCH_SPEED_SFT_STEPS", "6"))
    grpo_steps = int(env.get("BENCH_SPEED_GRPO_STEPS", "4"))
    cpu = cpu_description()
    print(f"machine: {cpu['model']}, {cpu['cores']} cores; flags: {cpu['flags']}", flush=True)
    result: dict = {"cpu": cpu, "out": str(out)}
    if only in ("", "sft"):
        result["sft"] = [
            sft_speed("before", SFT_BEFORE, out, env, sft_steps),
            sft_speed("now", {}, out, env, sft_steps),
        ]
        b, n = result["sft"]
        print(f"\nSFT ({sft_steps} steps, step 1 left out)      step s   examples/s   losses")
        for r in result["sft"]:
            print(
                f"  {r['label']:<8} {r['settings']!s:<44} {r['step_s']:6.1f} {r['examples_per_s']:10.3f}   {r['losses']}"
            )
        print(f"  speed-up: {n['examples_per_s'] / b['examples_per_s']:.2f}x examples/s", flush=True)
    if only in ("", "grpo"):
        result["grpo"] = [
            grpo_speed("before", GRPO_BEFORE, out, env, grpo_steps),
            grpo_speed("now", {}, out, env, grpo_steps),
        ]
        b, n = result["grpo"]
        print(f"\nGRPO ({grpo_steps} steps from {env.get('BENCH_SPEED_MODEL', 'bundled')}, step 1 left out)")
        print(
            "  label    settings                                                step s  gen s  completions/s  rollout tok/s"
        )
        for r in result["grpo"]:
            print(f"  {r['label']:<8} {r['settings']!s:<55} {r['step_s']:6.1f} {r['generation_s']:6.1f} "
                  f"{r['completions_per_s']:13.3f} {r['rollout_tokens_per_s'] or 0:13.1f}")  # fmt: skip
        print(f"  speed-up: {n['completions_per_s'] / b['completions_per_s']:.2f}x completions/s", flush=True)
    if only in ("", "generate"):
        result["generate"] = generate_speed()
        print("\nHF generate, bundled model, 128 new tokens a sequence (one batch = one GRPO group)")
        for r in result["generate"]:
            print(
                f"  {r['dtype']:<9} batch {r['batch']:>2}: {r['seconds']:5.1f} s, {r['tokens_per_s']:6.1f} tokens/s"
            )
    if only in ("", "generate", "lora"):
        result["lora_generate"] = lora_generate_speed()
        print("\nHF generate with a LoRA adapter (r 16, all linear), batch 8, 128 new tokens a sequence")
        for r in result["lora_generate"]:
            print(f"  {r['mode']:<22}: {r['seconds']:5.1f} s, {r['tokens_per_s']:6.1f} tokens/s")
    if only in ("", "llama"):
        ref = llama_speed(env)
        result["llama_server"] = ref
        if ref:
            print(
                f"\nllama-server, bundled Q4_1 GGUF, {ref['parallel']} parallel requests: {ref['tokens_per_s']:.1f} tokens/s"
            )
        else:
            print("\nllama-server: not built (make llama-cpp), so no reference figure")
    (out / "bench-speed.json").write_text(json.dumps(result, indent=2))
    print(f"\n{out / 'bench-speed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
