"""HTTP API against run directories written by the tests (FastAPI TestClient)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


def metric(step: int, **kw) -> dict:
    return {"step": step, "time": 1000.0 + step, **kw}


def test_runs_lists_runs_and_follows_latest_symlink(client: TestClient, dirs, make_run) -> None:
    make_run(dirs[0], "run-a", latest=False)
    make_run(dirs[0], "run-b", {"started_at": "2025-02-01T00:00:00+00:00"}, latest=False)
    (dirs[0] / "latest").symlink_to("run-a")
    body = client.get("/api/grpo/runs").json()
    assert [r["name"] for r in body["runs"]] == ["run-b", "run-a"]
    assert body["latest"] == "run-a"


def test_latest_may_be_a_text_file(client: TestClient, dirs, make_run) -> None:
    make_run(dirs[0], "run-a", latest=False)
    make_run(dirs[0], "run-b", latest=False)
    (dirs[0] / "latest").write_text("run-b\n")
    assert client.get("/api/grpo/runs").json()["latest"] == "run-b"
    assert client.get("/api/grpo/runs/latest").json()["run"] == "run-b"


def test_metrics_series_exact_values(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", [metric(1, loss=0.5, reward=0.1), metric(2, loss=0.25, reward=0.3)])
    body = client.get("/api/grpo/runs/r1/metrics").json()
    assert body["series"]["loss"] == {"x": [1.0, 2.0], "y": [0.5, 0.25], "n": 2}
    assert body["last"]["reward"] == 0.3
    assert body["pos"]["offset"] == (run / "metrics.jsonl").stat().st_size


def test_nan_and_null_come_back_as_json_null(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", ['{"step": 1, "loss": NaN, "grad_norm": null, "kl": 0.1}\n'])
    resp = client.get("/api/grpo/runs/r1/metrics")
    assert "NaN" not in resp.text
    body = resp.json()
    assert body["series"]["loss"]["y"] == [None]
    assert body["series"]["grad_norm"]["y"] == [None]
    assert body["last"]["loss"] is None


def test_partial_last_line_is_not_served_until_complete(
    client: TestClient, dirs, make_run, write_lines
) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", [metric(1, loss=1.0), '{"step": 2, "loss": 2.'])
    assert client.get("/api/grpo/runs/r1/metrics").json()["series"]["loss"]["y"] == [1.0]
    write_lines(run / "metrics.jsonl", ["5}\n"])
    body = client.get("/api/grpo/runs/r1/metrics").json()
    assert body["series"]["loss"]["y"] == [1.0, 2.5]
    assert body["corrupt"] == 0


def test_truncated_metrics_file_is_reread_from_the_start(
    client: TestClient, dirs, make_run, write_lines
) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", [metric(s, loss=float(s)) for s in range(1, 6)])
    client.get("/api/grpo/runs/r1/metrics")
    write_lines(run / "metrics.jsonl", [metric(1, loss=42.0)], mode="w")
    body = client.get("/api/grpo/runs/r1/metrics").json()
    assert body["series"]["loss"]["y"] == [42.0]
    assert (body["reset"], body["resets"]) == ("truncated", 1)


def test_rotated_metrics_file_is_reread(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", [metric(1, loss=1.0)])
    client.get("/api/grpo/runs/r1/metrics")
    write_lines(run / "new.jsonl", [metric(7, loss=7.0), metric(8, loss=8.0)])
    os.replace(run / "new.jsonl", run / "metrics.jsonl")
    body = client.get("/api/grpo/runs/r1/metrics").json()
    assert body["series"]["loss"]["x"] == [7.0, 8.0]
    assert body["reset"] == "rotated"


def test_corrupt_line_is_skipped_and_counted(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", [metric(1, loss=1.0), "{oops\n", metric(2, loss=2.0)])
    body = client.get("/api/grpo/runs/r1/metrics").json()
    assert body["series"]["loss"]["y"] == [1.0, 2.0]
    assert body["corrupt"] == 1
    assert client.get("/api/grpo/runs/r1").json()["files"]["metrics"]["corrupt"] == 1


def test_resume_event_line_is_reported_not_fatal(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(
        run / "metrics.jsonl",
        [metric(1, loss=1.0), {"event": "resume", "step": 1, "time": 5}, metric(2, loss=2.0)],
    )
    body = client.get("/api/grpo/runs/r1/metrics").json()
    assert body["events"] == [{"event": "resume", "step": 1.0, "time": 5}]
    assert body["series"]["loss"]["y"] == [1.0, 2.0]


def test_run_directory_appearing_later_is_found(client: TestClient, dirs, make_run, write_lines) -> None:
    assert client.get("/api/grpo/runs").json() == {
        "kind": "grpo",
        "runs": [],
        "latest": None,
        "runs_dir": str(dirs[0]),
    }
    assert client.get("/api/grpo/runs/latest/metrics").status_code == 404
    run = make_run(dirs[0], "late")
    write_lines(run / "metrics.jsonl", [metric(1, loss=3.0)])
    assert client.get("/api/grpo/runs").json()["latest"] == "late"
    assert client.get("/api/grpo/runs/latest/metrics").json()["series"]["loss"]["y"] == [3.0]


def test_run_without_metrics_file_yet_returns_empty_series(client: TestClient, dirs, make_run) -> None:
    make_run(dirs[0], "fresh")
    body = client.get("/api/grpo/runs/fresh/metrics").json()
    assert (body["series"], body["pos"]) == ({}, {"ino": 0, "offset": 0})


@pytest.mark.parametrize("name", ["..", "...", "%2E%2E", "..%2F..%2Fetc", "%2Fetc", "a%00b", ".hidden"])
def test_unsafe_run_names_are_rejected(client: TestClient, dirs, make_run, name: str) -> None:
    make_run(dirs[0], "ok")
    resp = client.get(f"/api/grpo/runs/{name}/metrics")
    assert resp.status_code in (400, 404)
    assert "series" not in resp.text


def test_symlinked_run_pointing_outside_is_rejected(
    client: TestClient, dirs, tmp_path: Path, write_lines
) -> None:
    outside = tmp_path / "outside"
    write_lines(outside / "metrics.jsonl", [metric(1, secret=1.0)])
    (dirs[0] / "evil").symlink_to(outside)
    resp = client.get("/api/grpo/runs/evil/metrics")
    assert resp.status_code == 400
    assert "evil" not in [r["name"] for r in client.get("/api/grpo/runs").json()["runs"]]


def test_symlinked_file_pointing_outside_is_rejected(
    client: TestClient, dirs, make_run, tmp_path: Path, write_lines
) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(tmp_path / "secret.jsonl", [metric(1, secret=1.0)])
    (run / "metrics.jsonl").symlink_to(tmp_path / "secret.jsonl")
    assert client.get("/api/grpo/runs/r1/metrics").status_code == 400


def test_stream_rejects_unsafe_run_name(client: TestClient) -> None:
    assert client.get("/api/grpo/stream", params={"run": "../x"}).status_code == 400


def test_script_completion_is_returned_verbatim_as_data(
    client: TestClient, dirs, make_run, write_lines
) -> None:
    run = make_run(dirs[0], "r1")
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    write_lines(
        run / "completions.jsonl",
        [
            {
                "step": 1,
                "problem_id": "p",
                "group_index": 0,
                "completion": evil,
                "stage": "pass",
                "reward": 1.0,
            }
        ],
    )
    resp = client.get("/api/grpo/runs/r1/completions")
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["groups"][0]["completions"][0]["completion"] == evil


def test_completions_endpoint_filters_and_pages(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    rows = [
        {
            "step": s,
            "problem_id": p,
            "group_index": g,
            "completion": "x",
            "stage": "type_error" if g == 0 and p == "q" else "pass",
            "reward": 0.1 * g,
        }
        for s in (1, 2)
        for p in ("p", "q")
        for g in range(3)
    ]
    write_lines(run / "completions.jsonl", rows)
    body = client.get(
        "/api/grpo/runs/r1/completions", params={"stage": "type_error", "page_size": 1, "page": 1}
    ).json()
    assert (body["total"], body["page"]) == (2, 1)
    assert [(g["step"], g["problem_id"]) for g in body["groups"]] == [(1, "q")]
    assert client.get("/api/grpo/runs/r1/completions", params={"reward_min": 0.15}).json()["total"] == 4


def test_completions_endpoint_filters_episodes_by_tool_calls(
    client: TestClient, dirs, make_run, write_lines
) -> None:
    run = make_run(dirs[0], "r1")
    rows = [
        {"step": 1, "problem_id": "p", "group_index": g, "completion": "x", "stage": "pass", "reward": 1.0,
         "tool_calls": g, "check_cost": 0.02 * g, "conversation": [{"role": "assistant", "content": "x"}]}
        for g in range(3)
    ]  # fmt: skip
    write_lines(run / "completions.jsonl", rows)
    body = client.get("/api/grpo/runs/r1/completions", params={"tool_calls": 2}).json()
    assert [c["match"] for c in body["groups"][0]["completions"]] == [False, False, True]
    assert client.get("/api/grpo/runs/r1/completions/facets").json()["tool_calls"] == {"0": 1, "1": 1, "2": 1}
    bad = client.get("/api/grpo/runs/r1/completions", params={"tool_calls": -1})
    assert bad.status_code == 422 and "tool_calls" in bad.text
    assert client.get("/api/grpo/runs/r1/completions", params={"tool_calls_min": "x"}).status_code == 422


def test_tool_calls_filters_count_exactly_on_a_mixed_run(
    client: TestClient, dirs, make_run, write_lines
) -> None:
    """Episodes (0, 1, 2, 2 calls at step 1; 3 calls at step 2, its count written after the conversation)
    and single-turn lines (step 3, no tool_calls field): exact totals for each filter, 422s naming the
    parameter."""
    run = make_run(dirs[0], "mixed")
    conv = [
        {"role": "assistant", "content": "", "tool_calls": [{"name": "check", "arguments": {"code": "let x = 1"}}]},
        {"role": "tool", "name": "check", "content": 'Error: "tool_calls": 9'},
    ]  # fmt: skip

    def line(step: int, pid: str, g: int, calls: int | None) -> dict:
        out = {"step": step, "problem_id": pid, "group_index": g, "prompt": "p", "completion": "let x = 1",
               "reward": 0.5, "stage": "pass", "error": None, "tests_passed": 1, "tests_total": 1}  # fmt: skip
        if calls is not None:
            out.update(tool_calls=calls, check_cost=0.02 * calls, conversation=conv * calls)
        return out

    rows = [line(1, "a", g, n) for g, n in enumerate((0, 1, 2, 2))]
    late = line(2, "b", 0, 3)
    rows.append({"conversation": late.pop("conversation"), **late})
    rows += [line(3, "c", g, None) for g in range(3)]
    write_lines(run / "completions.jsonl", rows)

    def total(**params) -> int:
        resp = client.get("/api/grpo/runs/mixed/completions", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()["total"]

    assert total() == 3
    assert total(tool_calls=0) == 1 and total(tool_calls=2) == 1 and total(tool_calls=3) == 1
    assert total(tool_calls=4) == 0 and total(tool_calls=9) == 0
    assert total(tool_calls_min=1) == 2 and total(tool_calls_min=3) == 1 and total(tool_calls_min=0) == 2
    assert total(tool_calls_min=1, step=1) == 1
    body = client.get("/api/grpo/runs/mixed/completions", params={"tool_calls_min": 2, "step": 1}).json()
    assert [c["match"] for c in body["groups"][0]["completions"]] == [False, False, True, True]
    facets = client.get("/api/grpo/runs/mixed/completions/facets").json()
    assert facets["tool_calls"] == {"0": 1, "1": 1, "2": 2, "3": 1}
    for name, bad in (
        ("tool_calls", "-1"),
        ("tool_calls", "two"),
        ("tool_calls_min", "1.5"),
        ("tool_calls", "40000"),
    ):
        resp = client.get("/api/grpo/runs/mixed/completions", params={name: bad})
        assert resp.status_code == 422, (name, bad)
        assert [e["loc"] for e in resp.json()["detail"]] == [["query", name]]


def test_batch_endpoint_histogram_and_error_classes(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(
        run / "batch_metrics.jsonl",
        [
            {
                "step": 1,
                "pass@1": 0.25,
                "stage_counts": {"pass": 1, "syntax_error": 3},
                "error_classes": {"Syntax error": 3},
            },
            {
                "step": 2,
                "pass@1": 0.5,
                "reward_histogram": {"edges": [0, 0.5, 1], "counts": [2, 2]},
                "error_classes": {"Syntax error": 1, "Unbound value": 2},
            },
        ],
    )
    body = client.get("/api/grpo/runs/r1/batch").json()
    assert body["series"]["pass@1"]["y"] == [0.25, 0.5]
    assert body["series"]["stage_counts/syntax_error"]["y"] == [3.0]
    assert body["histogram"] == {"step": 2, "edges": [0, 0.5, 1], "counts": [2, 2]}
    assert body["error_classes"] == [
        {"name": "Syntax error", "count": 4},
        {"name": "Unbound value", "count": 2},
    ]


def test_polling_endpoint_returns_lines_after_offset(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", [metric(1, loss=1.0)])
    first = client.get("/api/grpo/runs/r1/tail/metrics", params={"since": 0}).json()
    write_lines(run / "metrics.jsonl", [metric(2, loss=2.0)])
    nxt = client.get(
        "/api/grpo/runs/r1/tail/metrics", params={"since": first["next"], "ino": first["ino"]}
    ).json()
    assert [r["loss"] for r in nxt["records"]] == [2.0]
    assert nxt["start"] == first["next"] and nxt["reset"] is None


def test_polling_endpoint_reports_truncation(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[0], "r1")
    write_lines(run / "metrics.jsonl", [metric(1, loss=1.0), metric(2, loss=2.0)])
    first = client.get("/api/grpo/runs/r1/tail/metrics", params={"since": 0}).json()
    write_lines(run / "metrics.jsonl", [metric(1, loss=9.0)], mode="w")
    nxt = client.get(
        "/api/grpo/runs/r1/tail/metrics", params={"since": first["next"], "ino": first["ino"]}
    ).json()
    assert nxt["reset"] == "truncated"
    assert [r["loss"] for r in nxt["records"]] == [9.0]


def test_sft_run_train_and_eval_lines(client: TestClient, dirs, make_run, write_lines) -> None:
    run = make_run(dirs[1], "s1", {"kind": "sft"})
    write_lines(
        run / "metrics.jsonl",
        [
            {"step": 10, "loss": 1.5, "epoch": 0.1},
            {"step": 10, "eval_loss": 1.7, "epoch": 0.1},
            {"step": 20, "loss": 1.2, "epoch": 0.2},
        ],
    )
    body = client.get("/api/sft/runs/s1/metrics").json()
    assert body["series"]["loss"]["y"] == [1.5, 1.2]
    assert body["series"]["eval_loss"] == {"x": [10.0], "y": [1.7], "n": 1}


def test_run_info_returns_config(client: TestClient, dirs, make_run) -> None:
    make_run(dirs[0], "r1", {"config": {"max_steps": 123, "num_generations": 8}})
    assert client.get("/api/grpo/runs/r1").json()["meta"]["config"] == {
        "max_steps": 123,
        "num_generations": 8,
    }


@pytest.mark.parametrize("path", ["/", "/completions", "/sft", "/compare"])
def test_pages_load_only_local_assets_under_strict_csp(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    srcs = re.findall(r'(?:src|href)="([^"]+)"', resp.text)
    assert srcs and all(s.startswith("/") or s.startswith("data:") for s in srcs)
    for s in srcs:
        if s.startswith("/static/"):
            assert client.get(s).status_code == 200, s


def test_vendored_uplot_and_license_are_shipped() -> None:
    vendor = Path(__file__).resolve().parents[2] / "dashboard" / "static" / "vendor"
    assert (vendor / "uPlot.iife.min.js").stat().st_size > 40_000
    assert "MIT License" in (vendor / "uPlot.LICENSE").read_text()


def test_pipeline_endpoint_reads_the_latest_pipeline(client, dirs) -> None:
    assert client.get("/api/pipeline").json() == {"pipeline": None}
    root = dirs[0].parent / "pipeline_runs"
    (root / "p1").mkdir(parents=True)
    phases = [
        {"name": "sft", "status": "done", "runs": {"train": "/x/p1-sft"}, "seconds": 12.5, "started_at": "t"}
    ]
    (root / "p1" / "pipeline.json").write_text(
        json.dumps({"name": "p1", "status": "running", "current": "sft", "phases": phases, "config": {}})
    )
    (root / "latest").symlink_to("p1")
    got = client.get("/api/pipeline").json()
    assert (got["pipeline"], got["status"], got["current"]) == ("p1", "running", "sft")
    assert got["phases"] == [
        {"name": "sft", "status": "done", "runs": {"train": "/x/p1-sft"}, "seconds": 12.5}
    ]
    assert got["report"] == str((root / "p1" / "report.html").resolve())


def test_the_pages_get_the_stages_from_the_verifier(client: TestClient) -> None:
    from rlvr.verifier.scoring import STAGE_LABELS, STAGES

    r = client.get("/static/stages.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    lines = r.text.splitlines()
    assert f"export const STAGES = {json.dumps(list(STAGES))};" in lines
    assert f"export const STAGE_LABELS = {json.dumps(STAGE_LABELS)};" in lines
    common = client.get("/static/common.js").text  # the static files are still served beside it
    assert 'from "./stages.js"' in common and "export const STAGES = [" not in common


def test_a_run_whose_process_died_is_shown_as_died(client: TestClient, dirs, make_run, dead_identity) -> None:
    make_run(dirs[0], "dead", {"process": dead_identity})
    listed = client.get("/api/grpo/runs").json()["runs"][0]
    assert (listed["status"], listed["recorded_status"]) == ("died", "running")
    meta = client.get("/api/grpo/runs/dead").json()["meta"]
    assert (meta["status"], meta["recorded_status"]) == ("died", "running")


def test_a_run_that_stopped_writing_is_shown_as_stalled(
    client: TestClient, dirs, make_run, write_lines
) -> None:
    from rlvr.liveness import process_identity

    run = make_run(dirs[0], "quiet", {"process": process_identity()})  # this process: alive
    write_lines(run / "metrics.jsonl", [metric(1, step_time=60.0)])
    assert client.get("/api/grpo/runs/quiet").json()["meta"]["status"] == "running"
    old = 1_000_000_000  # 2001: long before any threshold
    for name in ("run.json", "metrics.jsonl"):
        os.utime(run / name, (old, old))
    assert client.get("/api/grpo/runs/quiet").json()["meta"]["status"] == "stalled"


def test_a_pipeline_whose_process_died_is_shown_as_died(client: TestClient, tmp_path, dead_identity) -> None:
    pipe = tmp_path / "pipeline_runs" / "p1"
    pipe.mkdir(parents=True)
    (pipe / "pipeline.json").write_text(
        json.dumps(
            {"name": "p1", "status": "running", "current": "sft", "process": dead_identity, "phases": []}
        )
    )
    (pipe / "pipeline.log").write_text("[pipeline] phase sft (1/6) started\n")
    (tmp_path / "pipeline_runs" / "latest").symlink_to("p1")
    body = client.get("/api/pipeline").json()
    assert (body["status"], body["recorded_status"]) == ("died", "running")
