"""MultiPL-E rows: problems no answer can pass are reported as invalid and left out of every rate,
and unfenced answers are cut at the problem's stop tokens before scoring."""

from __future__ import annotations

import json

from eval.local_model import Generation
from eval.run import sample_rows
from rlvr.data import load_problems

from .conftest import run_eval


def test_invalid_problems_are_listed_not_counted(tiny_model, mbpp_file, tmp_path):
    code, path = run_eval(
        [
            "--model",
            str(tiny_model),
            "--data",
            str(mbpp_file),
            "--output-dir",
            str(tmp_path),
            "--max-tokens",
            "8",
        ]
    )
    assert code == 0 and path is not None
    s = json.loads((path / "summary.json").read_text())
    assert s["data"]["schema"] == "multipl-e"
    assert s["counts"]["problems"] == 3 and s["counts"]["invalid_problems"] == 1
    assert [p["id"] for p in s["invalid_problems"]] == ["mbpp_133_sum_negativenum"]
    assert "does not compile" in s["invalid_problems"][0]["reason"]
    rows = [json.loads(line) for line in (path / "results.jsonl").open()]
    assert {r["problem_id"] for r in rows} == {"mbpp_100_next_smallest_palindrome", "mbpp_101_kth_element"}
    m = s["metrics"]
    assert m["problems"] == 2 and m["samples"] == 2 and sum(m["stages"].values()) == 2
    assert "mbpp_133_sum_negativenum" not in {p["id"] for p in m["per_problem"]}
    html = (path / "report.html").read_text()
    assert "Invalid problems (1)" in html and "mbpp_133_sum_negativenum" in html


def test_unfenced_answers_are_cut_at_the_stop_tokens(mbpp_file, verifier):
    problems, _ = load_problems(str(mbpp_file))
    kth = next(p for p in problems if p.id == "mbpp_101_kth_element")
    raw = ' List.nth arr (k - 1)\n\nlet () = print_endline "trailing junk the model kept writing"'
    fenced = "```ocaml\nlet kth_element (arr : int list) (k : int) : int = List.nth arr (k - 1)\n```"
    rows = sample_rows(
        kth,
        [Generation(raw), Generation(fenced)],
        verifier.score_batch([(kth, " List.nth arr (k - 1)"), (kth, fenced)]),
    )
    assert rows[0]["completion"] == raw and rows[0]["scored_text"] == " List.nth arr (k - 1)"
    assert rows[1]["scored_text"] is None  # a fenced answer is scored as it is
    assert [r["stage"] for r in rows] == ["pass", "pass"]
