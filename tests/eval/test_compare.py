"""eval.compare on two real runs of the tiny model (seeds 1 and 2), from Python and from the CLI."""

from __future__ import annotations

import json

import pytest

from eval.compare import compare, format_table, main
from eval.outputs import load_run


def test_compare_two_real_runs(local_run, local_run_seed2, tmp_path, capsys):
    a, b = load_run(local_run), load_run(local_run_seed2)
    c = compare(a, b)
    assert c["common_problems"] == 3 and c["only_a"] == [] and c["only_b"] == []
    assert c["ks"] == [1, 2]
    metrics = [r["metric"] for r in c["rates"]]
    assert metrics[:3] == ["pass@1", "pass@2", "mean reward"]
    assert [m for m in metrics if m.startswith("funnel: ")] == [
        "funnel: parsed", "funnel: type_checked", "funnel: compiled", "funnel: some_tests", "funnel: all_tests",
    ]  # fmt: skip
    for r in c["rates"]:
        if r["a"] is not None and r["b"] is not None:
            assert abs(r["delta"] - (r["b"] - r["a"])) < 1e-12
    reward = next(r for r in c["rates"] if r["metric"] == "mean reward")
    assert reward["a"] == a.summary["mean_reward"] and reward["b"] == b.summary["mean_reward"]
    assert sum(sum(row.values()) for row in c["transitions"].values()) == 3
    ids = {p["id"] for p in c["improved"]} | {p["id"] for p in c["regressed"]}
    assert ids <= {p["id"] for p in a.summary["problems"]}
    assert not {p["id"] for p in c["improved"]} & {p["id"] for p in c["regressed"]}
    assert "settings differ: seed" not in " ".join(c["warnings"])  # seed is expected to differ
    table = format_table(c)
    assert "pass@2" in table and "stage transitions" in table

    out = tmp_path / "cmp"
    assert main([str(local_run), str(local_run_seed2), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean reward" in printed and "improved in B" in printed
    written = json.loads((out / "compare.json").read_text())
    assert written["a"]["name"] == "tiny-seed1" and written["b"]["name"] == "tiny-seed2"
    html = (out / "compare.html").read_text()
    assert "tiny-seed1" in html and "Stage transitions" in html and "<script" not in html


def test_compare_by_name_and_on_different_problem_sets(local_run, local_run_seed2, monkeypatch, tmp_path):
    b = load_run(local_run_seed2)
    dropped = b.rows[0]["problem_id"]
    b.rows = [r for r in b.rows if r["problem_id"] != dropped]
    c = compare(load_run(local_run), b)
    assert c["common_problems"] == 2 and c["only_a"] == [dropped]

    monkeypatch.setenv("EVAL_OUTPUT_DIR", str(local_run.parent))
    assert main(["tiny-seed1", "tiny-seed2", "--out", str(tmp_path / "x")]) == 0
    assert main(["tiny-seed1", "no-such-run"]) == 2


def _constructed(tmp_path, name: str, rewards: dict[str, float]):
    """A run whose problems each have one sample, a type error with the given reward (0: a syntax error)."""
    from eval.outputs import LoadedRun

    rows = [
        {
            "problem_id": pid,
            "sample": 0,
            "stage": "type_error" if r else "syntax_error",
            "total_reward": r,
            "type_check": r,
            "tests_passed": 0,
            "tests_total": 3,
        }
        for pid, r in rewards.items()
    ]
    problems = [{"id": pid, "difficulty": "easy", "valid": True} for pid in rewards]
    return LoadedRun(
        tmp_path / name, {"status": "complete", "settings": {"ks": [1]}, "problems": problems}, rows
    )


def test_compare_gives_the_hand_computed_paired_interval(tmp_path):
    # B - A per problem: mean reward (0, 0, 0.2); parsed (0, 0, 1). 27 resamples, enumerated: the
    # mean of the differences is 0 with probability 8/27 (CDF 0.296 >= 0.025) and its largest value
    # is the full gain (CDF reaches 0.975 only there), as in test_stats' hand-computed example.
    a = _constructed(tmp_path, "a", {"p1": 0.1, "p2": 0.2, "p3": 0.0})
    b = _constructed(tmp_path, "b", {"p1": 0.1, "p2": 0.2, "p3": 0.2})
    c = compare(a, b)
    rates = {r["metric"]: r for r in c["rates"]}
    reward = rates["mean reward"]["delta_interval"]
    assert reward["estimate"] == pytest.approx(0.2 / 3)
    assert (reward["low"], reward["high"], reward["n"], reward["resamples"], reward["exact"]) == (
        0.0, pytest.approx(0.2), 3, 27, True,
    )  # fmt: skip
    parsed = rates["funnel: parsed"]["delta_interval"]
    assert (parsed["estimate"], parsed["low"], parsed["high"]) == (pytest.approx(1 / 3), 0.0, 1.0)
    assert "delta_interval" not in rates["funnel: all_tests"]  # no per-problem value for it
    assert c["samples_per_problem"] == {"a": 1, "b": 1}
    assert c["reward_ratio"]["estimate"] == pytest.approx(0.5 / 0.3)
    table = format_table(c)
    assert "[+0.000, +0.200]" in table and "paired bootstrap over the 3 problems" in table
