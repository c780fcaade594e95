"""`eval.run --resume`: an interrupted local evaluation continues to the run an uninterrupted one writes."""

from __future__ import annotations

import json
import shutil

from .conftest import eval_problems, run_eval


def cut(run, keep_lines: int, status: str = "interrupted"):
    """The run as a kill leaves it: the first `keep_lines` rows, a torn line, status not complete."""
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text("".join(lines[:keep_lines]) + lines[keep_lines][:25])
    summary = json.loads((run / "summary.json").read_text())
    summary["status"] = status
    (run / "summary.json").write_text(json.dumps(summary))


def rows(run):
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def test_a_resumed_run_equals_the_uninterrupted_one(local_run, tmp_path):
    run = tmp_path / "cut"
    shutil.copytree(local_run, run)
    # batches of 2 problems x 2 samples: keep batch 1 whole (4 rows) and 1 row of batch 2 (3 problems)
    cut(run, 5)
    code, _ = run_eval(["--resume", str(run), "--output-dir", str(tmp_path)])
    assert code == 0
    fields = ("problem_id", "sample", "completion", "total_reward", "stage")
    assert [[r[f] for f in fields] for r in rows(run)] == [[r[f] for f in fields] for r in rows(local_run)]
    summary = json.loads((run / "summary.json").read_text())
    original = json.loads((local_run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["metrics"] == original["metrics"]
    assert summary["started"] == original["started"] and summary["resumes"][0]["problems_kept"] == 2


def test_a_complete_run_is_not_resumed(local_run, tmp_path, capsys):
    code, _ = run_eval(["--resume", str(local_run), "--output-dir", str(tmp_path)])
    assert code == 2
    assert "is complete; nothing to resume" in capsys.readouterr().err


def test_a_run_whose_problems_changed_is_not_resumed(local_run, tmp_path, capsys):
    run = tmp_path / "cut"
    shutil.copytree(local_run, run)
    cut(run, 4)
    changed = tmp_path / "changed.jsonl"
    problems = eval_problems()
    problems[0]["tests"] = problems[0]["tests"][:1]
    changed.write_text("".join(json.dumps(p) + "\n" for p in problems))
    summary = json.loads((run / "summary.json").read_text())
    summary["settings"]["data"] = str(changed)
    (run / "summary.json").write_text(json.dumps(summary))
    code, _ = run_eval(["--resume", str(run), "--output-dir", str(tmp_path)])
    assert code == 2
    assert "are not the ones loaded now" in capsys.readouterr().err


def test_a_run_still_being_written_is_not_resumed(local_run, tmp_path, capsys):
    from rlvr.liveness import process_identity

    run = tmp_path / "live"
    shutil.copytree(local_run, run)
    summary = json.loads((run / "summary.json").read_text())
    summary.update(status="running", process=process_identity())  # this very process: alive
    (run / "summary.json").write_text(json.dumps(summary))
    code, _ = run_eval(["--resume", str(run), "--output-dir", str(tmp_path)])
    assert code == 2
    assert "still being written by a live process" in capsys.readouterr().err
