"""Benchmark the dashboard on a large synthetic run.

Writes a GRPO run with 100k metric lines, 100k batch lines and 1M completions into a
temporary directory, starts the real app under uvicorn, opens ``/`` and
``/completions`` in headless Chromium (navigation until the charts are drawn / the
first group is shown), then, on a second fresh app, times the API calls those pages
make on first load (cold caches) and on reload (warm).

    .venv/bin/python scripts/bench_dashboard.py [--metrics 100000] [--completions 1000000] [--keep DIR]
                                                [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# httpx, uvicorn and the app are imported inside the functions that use them: the
# dashboard's parse processes are spawned, and a spawned child re-imports the main
# module, which should cost what `python -m dashboard` costs there, not more.
if TYPE_CHECKING:
    import httpx
    import uvicorn

from dashboard.synthetic import (
    batch_record,
    completion_record,
    metrics_record,
    set_latest_link,
    write_run_json,
)


def generate(runs_dir: str, n_metrics: int, n_completions: int, group: int = 4, problems: int = 16) -> str:
    """Write the big run; returns its directory."""
    name = "bench"
    run = os.path.join(runs_dir, name)
    write_run_json(run, name, "grpo", max_steps=n_metrics * 2)
    rng = random.Random(0)
    t0 = time.time() - n_metrics * 12.5
    with (
        open(os.path.join(run, "metrics.jsonl"), "w") as fm,
        open(os.path.join(run, "batch_metrics.jsonl"), "w") as fb,
    ):
        for step in range(1, n_metrics + 1):
            fm.write(json.dumps(metrics_record(step, n_metrics * 2, rng, t0)) + "\n")
            fb.write(json.dumps(batch_record(step, n_metrics * 2, rng, t0)) + "\n")
    # Completions: `problems` groups of `group` per logged step, spread over the run's steps.
    per_step = group * problems
    steps = max(1, n_completions // per_step)
    every = max(1, n_metrics // steps)
    templates = [completion_record(1, p, g, rng) for p in range(64) for g in range(group)]
    written = 0
    with open(os.path.join(run, "completions.jsonl"), "w") as fc:
        buf = []
        for i in range(steps):
            step = (i + 1) * every
            for p in range(problems):
                for g in range(group):
                    rec = dict(templates[(p * group + g + i) % len(templates)])
                    rec["step"] = step
                    rec["problem_id"] = f"problem_{(i * 7 + p) % 5000:04d}"
                    rec["group_index"] = g
                    buf.append(json.dumps(rec))
                    written += 1
            if len(buf) >= 20000:
                fc.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            fc.write("\n".join(buf) + "\n")
    set_latest_link(runs_dir, name)
    return run


def timed_get(client: httpx.Client, url: str) -> tuple[float, int, int]:
    t = time.perf_counter()
    r = client.get(url)
    r.raise_for_status()
    return time.perf_counter() - t, len(r.content), r.status_code


def page_load(
    client: httpx.Client, base: str, paths: list[str]
) -> tuple[float, list[tuple[str, float, int]]]:
    """Issue the page's API calls concurrently (as the browser does); wall time and per-call times."""
    t = time.perf_counter()
    with ThreadPoolExecutor(len(paths)) as ex:
        results = list(ex.map(lambda p: (p, *timed_get(client, base + p)[:2]), paths))
    return time.perf_counter() - t, results


def start_server(runs_dir: str, sft_dir: str, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    """A fresh app (cold caches) under uvicorn in a thread."""
    import uvicorn

    from dashboard.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(runs_dir, sft_dir), host="127.0.0.1", port=port, log_level="warning")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.01)
    return server, th


def wait_parsed(base: str) -> float:
    """Wait until the run's metrics are parsed and its completions indexed; seconds waited."""
    import httpx

    t = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        while not client.get(base + "/api/grpo/runs/bench/completions/facets").json()["index"]["complete"]:
            time.sleep(0.2)
        while client.get(base + "/api/grpo/runs/bench/metrics?keys=reward").json()["sampled"]:
            time.sleep(0.2)
        while client.get(base + "/api/grpo/runs/bench/batch").json()["sampled"]:
            time.sleep(0.2)
    return time.perf_counter() - t


def browser_open(base: str) -> None:
    """Open the pages in headless Chromium: navigation to charts drawn / first group shown."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser: playwright not installed, skipped")
        return
    if not os.path.exists("/usr/bin/chromium"):
        print("browser: no /usr/bin/chromium, skipped")
        return
    drawn = "window.__dash && window.__dash.charts.reward && window.__dash.charts.reward.points() > 0"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        # bypass_csp only lets Playwright evaluate its wait predicate.
        pg = b.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True).new_page()
        pg.goto("about:blank")  # a browser that is already running, as a user's is
        for label, path, ready in (
            ("/ (GRPO) cold", "/", drawn),
            ("/ (GRPO) reload", "/", drawn),
            ("/completions cold", "/completions", "document.querySelector('.group') !== null"),
            ("/completions reload", "/completions", "document.querySelector('.group') !== null"),
        ):
            t = time.perf_counter()
            pg.goto(base + path)
            pg.wait_for_function(ready, timeout=60_000, polling=20)
            print(f"browser {label:20s} {(time.perf_counter() - t) * 1000:8.0f} ms  (navigation to drawn)")
        b.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", type=int, default=100_000)
    ap.add_argument("--completions", type=int, default=1_000_000)
    ap.add_argument("--keep", default=None, help="write the run here and keep it")
    ap.add_argument("--no-browser", action="store_true", help="skip the headless Chromium page loads")
    args = ap.parse_args()

    root = args.keep or tempfile.mkdtemp(prefix="bench_dashboard_")
    runs_dir = os.path.join(root, "grpo_runs")
    os.makedirs(runs_dir, exist_ok=True)
    t = time.perf_counter()
    run = os.path.join(runs_dir, "bench")
    if args.keep and os.path.exists(os.path.join(run, "completions.jsonl")):
        print(f"reusing {run}")
    else:
        run = generate(runs_dir, args.metrics, args.completions)
    gen_s = time.perf_counter() - t
    sizes = {
        f: os.path.getsize(os.path.join(run, f))
        for f in ("metrics.jsonl", "batch_metrics.jsonl", "completions.jsonl")
    }
    print(f"generated in {gen_s:.1f}s: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))

    port = 18000 + os.getpid() % 1000
    sft_dir = os.path.join(root, "sft_runs")
    if not args.no_browser:
        bserver, bth = start_server(runs_dir, sft_dir, port + 1)
        try:
            browser_open(f"http://127.0.0.1:{port + 1}")
            waited = wait_parsed(f"http://127.0.0.1:{port + 1}")  # leave nothing parsing behind
            print(f"browser-phase app: every file parsed {waited:.1f}s after the page loads")
        finally:
            bserver.should_exit = True
            bth.join(5)
    server, th = start_server(runs_dir, sft_dir, port)
    base = f"http://127.0.0.1:{port}"
    grpo_page = [
        "/api/grpo/runs",
        "/api/grpo/runs/bench",
        "/api/grpo/runs/bench/metrics",
        "/api/grpo/runs/bench/batch",
    ]
    comp_page = [
        "/api/grpo/runs",
        "/api/grpo/runs/bench",
        "/api/grpo/runs/bench/completions?page=0&page_size=10",
        "/api/grpo/runs/bench/completions/facets",
    ]
    import httpx

    try:
        with httpx.Client(timeout=120, headers={"Accept-Encoding": "gzip"}) as client:
            for label, paths in (
                ("/ (GRPO) cold", grpo_page),
                ("/ (GRPO) warm", grpo_page),
                ("/completions cold", comp_page),
                ("/completions warm", comp_page),
            ):
                wall, res = page_load(client, base, paths)
                print(
                    f"{label:22s} {wall * 1000:8.0f} ms  "
                    + "  ".join(
                        f"{p.split('/')[-1] or p}={dt * 1000:.0f}ms/{n / 1e3:.0f}kB" for p, dt, n in res
                    )
                )
            t = time.perf_counter()
            while True:
                prog = client.get(base + "/api/grpo/runs/bench/completions/facets").json()["index"]
                if prog["complete"]:
                    break
                time.sleep(0.2)
            print(
                f"full completions index ready {time.perf_counter() - t:.1f}s after the first page ({prog['rows']:,} rows)"
            )
            while client.get(base + "/api/grpo/runs/bench/metrics?keys=reward").json()["sampled"]:
                time.sleep(0.2)
            for label, paths in (("/ (GRPO) all loaded", grpo_page), ("/completions all loaded", comp_page)):
                wall, res = page_load(client, base, paths)
                print(
                    f"{label:22s} {wall * 1000:8.0f} ms  "
                    + "  ".join(
                        f"{p.split('/')[-1] or p}={dt * 1000:.0f}ms/{n / 1e3:.0f}kB" for p, dt, n in res
                    )
                )
            for label, q in (
                ("filter stage=syntax_error", "stage=syntax_error"),
                ("filter reward<=0.1 + step range", "reward_max=0.1&step_min=1000&step_max=50000"),
                ("filter problem id", "problem=problem_0042"),
                ("page 500", "page=500"),
                ("text search 'fold_left'", "q=fold_left"),
                ("text search no match", "q=zzzz_not_there"),
            ):
                dt, _n, _ = timed_get(client, base + "/api/grpo/runs/bench/completions?" + q)
                body = client.get(base + "/api/grpo/runs/bench/completions?" + q).json()
                print(f"{label:34s} {dt * 1000:7.0f} ms  total={body['total']:,} exact={body['total_exact']}")
            dt, _n, _ = timed_get(
                client, base + "/api/grpo/runs/bench/tail/metrics?since=0&limit_bytes=1048576"
            )
            print(f"{'poll ?since=0 (1 MB slice)':34s} {dt * 1000:7.0f} ms")
    finally:
        server.should_exit = True
        th.join(5)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
