"""Real-browser tests: uvicorn + Debian chromium driven by Playwright.

Skipped (with a message) only when no chromium binary exists.  Screenshots are
saved under each test's tmp_path.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.synthetic import metrics_record, write_grpo_run, write_sft_run

playwright_api = pytest.importorskip("playwright.sync_api")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[object]:
    path = "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("no chromium binary at /usr/bin/chromium: real-browser tests skipped")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    # bypass_csp lets Playwright evaluate its wait predicates; escaping must hold without CSP.
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"{e} @ {str(getattr(e, 'stack', ''))[:600]}"))
    pg.errors = errors
    yield pg
    ctx.close()
    assert errors == [], f"JavaScript errors: {errors}"


def points(pg, chart_id: str) -> int:
    return pg.evaluate(
        f"window.__dash.charts[{chart_id!r}] ? window.__dash.charts[{chart_id!r}].points() : 0"
    )


def card_value(pg, label: str) -> str:
    return pg.locator(f'.card[data-card="{label}"] .value').inner_text()


@pytest.fixture
def grpo_run(live_server, request: pytest.FixtureRequest) -> Path:
    name = "br-" + request.node.name.replace("_", "-")[:40]
    return Path(write_grpo_run(str(live_server.grpo), name, steps=60, max_steps=120, set_latest=False))


def test_grpo_page_draws_every_main_chart(live_server, grpo_run: Path, page, tmp_path: Path) -> None:
    page.goto(f"{live_server.url}/?run={grpo_run.name}")
    page.wait_for_function(
        "window.__dash.charts.reward && window.__dash.charts.reward.points() > 0", timeout=8000
    )
    for chart in (
        "reward",
        "reward-components",
        "pass",
        "funnel",
        "loss",
        "grad-norm",
        "lr",
        "entropy",
        "length",
        "clipped",
        "step-time",
        "zero-std",
    ):
        assert points(page, chart) == 60, chart
    assert page.locator("canvas").count() >= 12
    assert card_value(page, "Step") == "60"
    assert not page.locator("#grid-env").is_visible()  # a single-turn run: no Environment section
    page.screenshot(path=str(tmp_path / "grpo.png"), full_page=True)


def test_grpo_page_labels_outcomes_correctly(live_server, grpo_run: Path, page) -> None:
    page.goto(f"{live_server.url}/?run={grpo_run.name}")
    row = page.locator('.hbar[data-stage="syntax_error"] .nm')
    row.wait_for(timeout=8000)
    assert row.inner_text() == "syntax error"
    assert page.locator('.hbar[data-stage="pass"] .nm').inner_text() == "all tests pass"


def test_appended_metrics_line_shows_up_within_seconds(
    live_server, grpo_run: Path, page, tmp_path: Path
) -> None:
    page.goto(f"{live_server.url}/?run={grpo_run.name}")
    page.wait_for_function(
        "window.__dash.charts.reward && window.__dash.charts.reward.points() === 60", timeout=8000
    )
    page.wait_for_selector("#live.on", timeout=5000)
    rec = metrics_record(61, 120, random.Random(0), time.time())
    t0 = time.monotonic()
    with open(grpo_run / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    page.wait_for_function("window.__dash.charts.reward.points() === 61", timeout=4000)
    assert time.monotonic() - t0 < 3.0
    page.wait_for_function(
        "document.querySelector('.card[data-card=\"Step\"] .value').textContent === '61'", timeout=2000
    )
    page.screenshot(path=str(tmp_path / "grpo-live.png"))


def test_truncated_metrics_file_resets_the_page(live_server, grpo_run: Path, page) -> None:
    page.goto(f"{live_server.url}/?run={grpo_run.name}")
    page.wait_for_function(
        "window.__dash.charts.reward && window.__dash.charts.reward.points() === 60", timeout=8000
    )
    page.wait_for_selector("#live.on", timeout=5000)
    with open(grpo_run / "metrics.jsonl", "w") as fh:
        for s in (1, 2, 3):
            fh.write(json.dumps(metrics_record(s, 120, random.Random(s), time.time())) + "\n")
    page.wait_for_function("window.__dash.charts.reward.points() === 3", timeout=5000)
    assert card_value(page, "Step") == "3"


def test_corrupt_line_count_is_shown(live_server, grpo_run: Path, page) -> None:
    with open(grpo_run / "metrics.jsonl", "a") as fh:
        fh.write("{not json\n")
    page.goto(f"{live_server.url}/?run={grpo_run.name}")
    badge = page.locator("#corrupt-badge")
    badge.wait_for(timeout=8000)
    assert badge.inner_text() == "1 corrupt line skipped"


def test_script_completion_renders_as_text(live_server, grpo_run: Path, page, tmp_path: Path) -> None:
    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    with open(grpo_run / "completions.jsonl", "a") as fh:
        for g in range(2):
            fh.write(
                json.dumps(
                    {
                        "step": 99,
                        "problem_id": "xss",
                        "group_index": g,
                        "prompt": "<b>p</b>",
                        "completion": evil if g == 0 else "let x = 1",
                        "reward": 0.0,
                        "stage": "syntax_error",
                        "error": "<script>window.__pwned = 3</script>",
                        "tests_passed": 0,
                        "tests_total": 2,
                    }
                )
                + "\n"
            )
    page.goto(f"{live_server.url}/completions?run={grpo_run.name}")
    first = page.locator(".group").first
    first.wait_for(timeout=8000)
    assert first.get_attribute("data-problem") == "xss"
    assert first.locator("pre.completion").first.inner_text() == evil
    assert first.locator("pre.err").first.inner_text() == "<script>window.__pwned = 3</script>"
    assert page.locator("#groups script, #groups img").count() == 0
    assert page.evaluate("window.__pwned === undefined")
    page.screenshot(path=str(tmp_path / "completions.png"), full_page=False)


def test_an_episode_reads_as_a_conversation(live_server, grpo_run: Path, page) -> None:
    """A multi-turn episode: the tool call's code (highlighted), the tool's result with the compiler's
    excerpt kept, the final answer; model text with markup stays text; the calls filter shows it."""
    evil = '<img src=x onerror="window.__pwned = 4">'
    turns = [
        {"role": "assistant", "content": evil, "tool_calls": [{"name": "check", "arguments": {"code": "let f x = x +. 1"}}]},
        {"role": "tool", "name": "check", "content": "Line 1, characters 10-11:\n1 | let f x = x +. 1\n              ^\nError: boom"},
        {"role": "assistant", "content": "```ocaml\nlet f x = x + 1\n```"},
    ]  # fmt: skip
    # the second episode's call has OpenAI-style string arguments, and a tool result with markup
    second = [
        {"role": "assistant", "content": "", "tool_calls": [{"name": "check", "arguments": json.dumps({"code": "let g = 2"})}]},
        {"role": "tool", "name": "check", "content": '<img src=x onerror="window.__pwned = 5">'},
        {"role": "assistant", "content": "```ocaml\nlet f x = x + 1\n```"},
    ]  # fmt: skip
    with open(grpo_run / "completions.jsonl", "a") as fh:
        for g in range(3):
            line = {"step": 98, "problem_id": "episode", "group_index": g, "prompt": "p",
                    "completion": "```ocaml\nlet f x = x + 1\n```", "reward": 0.98, "stage": "pass", "error": None,
                    "tests_passed": 1, "tests_total": 1, "tool_calls": 1 - g % 2, "check_cost": 0.02 * (1 - g % 2),
                    "conversation": [turns, turns[2:], second][g]}  # fmt: skip
            fh.write(json.dumps(line) + "\n")
    page.goto(f"{live_server.url}/completions?run={grpo_run.name}&tool_calls=1")
    group = page.locator('.group[data-problem="episode"]').first
    group.wait_for(timeout=8000)
    member = group.locator(".member").first
    assert member.locator(".calls").inner_text() == "1 tool call"
    assert member.locator("pre.tool-result").inner_text() == (
        "Line 1, characters 10-11:\n1 | let f x = x +. 1\n              ^\nError: boom"
    )
    assert member.locator(".conversation pre.code .tk-kw").count() > 0  # the call's code is highlighted
    assert member.locator(".conversation pre.call-code").inner_text() == "let f x = x +. 1"
    assert member.locator(".conversation .tool-call").inner_text() == "calls check(code)"
    assert member.locator(".conversation pre.turn-text").first.inner_text() == evil
    # the final turn is the answer, shown once (highlighted, with its verdict), not again in the conversation
    assert member.locator(".conversation .turn-label").all_text_contents() == [
        "model, turn 1",
        "tool result (check)",
    ]
    assert member.locator("pre.completion").inner_text() == "```ocaml\nlet f x = x + 1\n```"
    assert member.locator("pre.err").inner_text() == "no compiler error"
    third = group.locator(".member").nth(2)
    assert third.locator(".conversation pre.call-code").inner_text() == "let g = 2"  # string arguments parsed
    assert third.locator("pre.tool-result").inner_text() == '<img src=x onerror="window.__pwned = 5">'
    assert page.locator("#groups img").count() == 0 and page.evaluate("window.__pwned === undefined")
    assert page.locator("#f-calls-box").is_visible()
    dims = page.eval_on_selector_all(
        '.group[data-problem="episode"] .member', "els => els.map(e => e.classList.contains('dim'))"
    )
    assert dims == [False, True, False]
    # the calls control filters live: 0 calls leaves only the second episode undimmed
    page.select_option("#f-calls", "0")
    page.wait_for_function(
        "[...document.querySelectorAll('.group[data-problem=\"episode\"] .member')]"
        ".map(e => e.classList.contains('dim')).join() === 'true,false,true'",
        timeout=5000,
    )
    assert "tool_calls=0" in page.url


def test_grpo_page_shows_the_environment_charts_of_a_multi_turn_run(live_server, page) -> None:
    """metrics.jsonl's env/tool_calls_mean, env/checks_mean and env/reward_by_calls/<n> (n = 0..3, the
    0 key at two steps of three) are drawn in the Environment section, which only such runs show."""
    run = Path(write_grpo_run(str(live_server.grpo), "br-env", steps=30, set_latest=False, episodes=True))
    page.goto(f"{live_server.url}/?run={run.name}")
    page.wait_for_function(
        "window.__dash.charts['env-calls'] && window.__dash.charts['env-calls'].points() === 30", timeout=8000
    )
    assert page.locator("#grid-env").is_visible() and page.locator("#env-title").is_visible()
    assert points(page, "env-reward-by-calls") == 30
    labels = page.evaluate("window.__dash.charts['env-reward-by-calls'].u.series.map(s => s.label)")
    assert [x for x in labels if x in ("0 calls", "1 call", "2 calls", "3 calls")] == [
        "0 calls",
        "1 call",
        "2 calls",
        "3 calls",
    ]
    calls = page.evaluate("window.__dash.charts['env-calls'].u.series.map(s => s.label)")
    assert "tool calls" in calls and "checks" in calls


def test_completions_stage_filter_and_highlighting(live_server, grpo_run: Path, page) -> None:
    page.goto(f"{live_server.url}/completions?run={grpo_run.name}&stage=type_error")
    page.locator(".group").first.wait_for(timeout=8000)
    stages = page.eval_on_selector_all(".member:not(.dim)", "els => els.map(e => e.dataset.stage)")
    assert stages and set(stages) == {"type_error"}
    assert page.locator(".member pre.completion .tk-kw").count() > 0
    assert page.locator(".chip.on").all_inner_texts()[0].startswith("type error")


def test_debiased_ema_is_not_pulled_towards_zero(live_server, page) -> None:
    page.goto(f"{live_server.url}/compare")
    out = page.evaluate("import('/static/common.js').then(m => m.smoothEMA([2, 2, 2, null, 2], 0.9))")
    assert out[3] is None
    assert [out[i] for i in (0, 1, 2, 4)] == pytest.approx([2, 2, 2, 2])
    # TensorBoard's formula: ema_n / (1 - w^n); for [0, 1] with w = 0.5 → [0, 0.5 / 0.75]
    assert page.evaluate("import('/static/common.js').then(m => m.smoothEMA([0, 1], 0.5))") == pytest.approx(
        [0, 2 / 3]
    )


def test_sft_page_draws_train_and_eval_loss(live_server, page, tmp_path: Path) -> None:
    write_sft_run(str(live_server.sft), "br-sft", steps=100, eval_every=25)
    page.goto(f"{live_server.url}/sft?run=br-sft")
    page.wait_for_function(
        "window.__dash.charts['sft-loss'] && window.__dash.charts['sft-loss'].points() === 100", timeout=8000
    )
    assert (
        page.evaluate("window.__dash.charts['sft-loss'].u.data[3].filter(v => v != null).length") == 4
    )  # eval raw
    assert card_value(page, "Progress") == "100.0%"
    page.screenshot(path=str(tmp_path / "sft.png"), full_page=True)


def test_sft_progress_of_an_epoch_run_reads_the_configs_epochs(live_server, page) -> None:
    run = Path(write_sft_run(str(live_server.sft), "br-sft-epochs", steps=40, eval_every=20))
    info = json.loads((run / "run.json").read_text())
    info["config"] = {"max_steps": -1, "epochs": 2.0}  # what sft.config writes: train for 2 epochs
    (run / "run.json").write_text(json.dumps(info))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for rec in lines:
        rec["epoch"] = rec["step"] / 40  # 40 steps = one epoch of two
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    page.goto(f"{live_server.url}/sft?run=br-sft-epochs")
    page.wait_for_function(
        "document.querySelector('.card[data-card=\"Progress\"] .value')?.innerText === '50.0%'", timeout=8000
    )
    assert page.locator('.card[data-card="Progress"] .sub').inner_text() == "epoch 1.00 of 2"


def test_compare_page_overlays_runs(live_server, page, tmp_path: Path) -> None:
    write_grpo_run(str(live_server.grpo), "br-cmp-a", steps=30, set_latest=False, seed=1)
    write_grpo_run(str(live_server.grpo), "br-cmp-b", steps=45, set_latest=False, seed=2)
    page.goto(f"{live_server.url}/compare?kind=grpo&runs=br-cmp-a,br-cmp-b&metric=loss")
    page.wait_for_function(
        "window.__dash.charts.compare && window.__dash.charts.compare.points() === 45", timeout=8000
    )
    labels = page.evaluate("window.__dash.charts.compare.u.series.map(s => s.label)")
    assert "br-cmp-a" in labels and "br-cmp-b" in labels
    page.screenshot(path=str(tmp_path / "compare.png"))


def test_run_directory_created_after_page_load_appears(browser, server_factory, tmp_path: Path) -> None:
    grpo, sft = tmp_path / "g", tmp_path / "s"
    grpo.mkdir()
    sft.mkdir()
    srv = server_factory(grpo, sft)
    ctx = browser.new_context(bypass_csp=True)
    try:
        pg = ctx.new_page()
        pg.goto(srv.url + "/")
        pg.locator("#empty:not(.hidden)").wait_for(timeout=5000)
        pg.wait_for_selector("#live.on", timeout=5000)
        write_grpo_run(str(grpo), "appeared", steps=10)
        pg.wait_for_function(
            "window.__dash.charts.reward && window.__dash.charts.reward.points() === 10", timeout=8000
        )
        assert pg.locator(".statusline .name").inner_text() == "appeared"
    finally:
        ctx.close()
        srv.stop()


def test_page_without_run_parameter_follows_the_latest_run(browser, server_factory, tmp_path: Path) -> None:
    grpo, sft = tmp_path / "g", tmp_path / "s"
    sft.mkdir()
    write_grpo_run(str(grpo), "older", steps=5)
    write_grpo_run(str(grpo), "newer", steps=7)  # becomes `latest`
    srv = server_factory(grpo, sft)
    ctx = browser.new_context(bypass_csp=True)
    try:
        pg = ctx.new_page()
        pg.goto(srv.url + "/")
        pg.wait_for_function(
            "window.__dash.charts.reward && window.__dash.charts.reward.points() === 7", timeout=8000
        )
        assert pg.locator(".statusline .name").inner_text() == "newer"
        assert pg.locator("#empty").get_attribute("class") == "empty hidden"
        assert pg.locator("#run-select option").count() == 3  # latest (newer), newer, older
    finally:
        ctx.close()
        srv.stop()


def test_no_signal_banner_follows_the_signal_guard(live_server, grpo_run: Path, page) -> None:
    metrics = grpo_run / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write(json.dumps({"event": "no_signal", "step": 60, "time": time.time()}) + "\n")
    page.goto(f"{live_server.url}/?run={grpo_run.name}")
    banner = page.locator("#signal-banner")
    banner.wait_for(state="visible", timeout=8000)
    text = banner.inner_text()
    assert "No gradient: the model is not learning." in text and "Since step 60" in text
    assert "GRPO_NUM_GENERATIONS" in text and "make pipeline" in text
    with metrics.open("a") as f:  # the guard says the signal is back: the banner goes, live
        f.write(json.dumps({"event": "signal_restored", "step": 70, "time": time.time()}) + "\n")
    banner.wait_for(state="hidden", timeout=8000)


def test_every_page_points_at_the_running_pipeline_phase(live_server, grpo_run: Path, page) -> None:
    pdir = live_server.pipelines / "pl"
    pdir.mkdir(parents=True)
    phases = [{"name": n, "status": "pending", "runs": {}} for n in ("sft", "grpo", "eval_base", "report")]
    phases[0].update(status="done", runs={"train": str(live_server.sft / "pl-sft")})
    phases[1].update(status="running", runs={"train": str(grpo_run)})
    (pdir / "pipeline.json").write_text(
        json.dumps({"name": "pl", "status": "running", "current": "grpo", "phases": phases})
    )
    (live_server.pipelines / "latest").symlink_to("pl")
    for url in ("/sft", "/completions"):
        page.goto(live_server.url + url)
        banner = page.locator("#pipeline-banner")
        banner.wait_for(timeout=8000)
        assert "Pipeline pl" in banner.inner_text() and "phase grpo (2/4)" in banner.inner_text()
        assert banner.locator("a").get_attribute("href") == f"/?run={grpo_run.name}"
    (live_server.pipelines / "latest").unlink()


def test_pace_and_eta_cards_read_real_timestamps(live_server, page) -> None:
    """A CPU run at 40 s a step, 6 steps of 100 in, with real Unix times (~1.8e9 s): the cards say
    40 s / step and ETA 1h 2m ((100 - 6) x 40 s), not the 10 000 s steps 6-digit rounding made of them."""
    from dashboard.synthetic import write_run_json

    run_dir = live_server.grpo / "paced"
    write_run_json(str(run_dir), "paced", "grpo", max_steps=100)
    t0 = time.time() - 6 * 40.0
    with (run_dir / "metrics.jsonl").open("w") as f:
        # step_time says 5 s: the cards must take the pace from `time`; constant, it also checks that a
        # flat series (smoothed to a few ulps of spread) draws without a JavaScript error
        for step in range(1, 7):
            rec = {
                "step": step,
                "time": t0 + 40.0 * step + 0.37,
                "loss": 0.1,
                "reward": 0.2,
                "step_time": 5.0,
            }
            f.write(json.dumps(rec) + "\n")
    page.goto(f"{live_server.url}/?run=paced")
    page.wait_for_function(
        "document.querySelector('.card[data-card=\"Step\"] .value')?.innerText === '6'", timeout=8000
    )
    throughput = page.locator('.card[data-card="Throughput"] .sub').inner_text()
    assert throughput == "40 s / step"
    assert page.locator('.card[data-card="Elapsed"] .sub').inner_text() == "ETA 1h 2m"


def test_a_run_whose_process_died_is_shown_as_died_and_not_live(
    live_server, page, tmp_path: Path, dead_identity
) -> None:
    run = Path(write_grpo_run(str(live_server.grpo), "br-died", steps=5, max_steps=100, set_latest=False))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running", "process": dead_identity}))
    page.goto(f"{live_server.url}/?run=br-died")
    page.wait_for_selector("#statusline .badge.died", timeout=8000)
    assert page.locator("#statusline .badge.died").inner_text() == "died"
    page.wait_for_selector("#live.idle", timeout=5000)
    assert page.locator("#live .txt").inner_text() == "connected · run died"
    option = page.locator("#run-select option[value='br-died']")
    assert option.inner_text() == "br-died · died"
    page.screenshot(path=str(tmp_path / "grpo-died.png"))
