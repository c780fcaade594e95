"""Completions index: grouping, filters, search, paging, backward build, live appends."""

from __future__ import annotations

from pathlib import Path

import pytest

import dashboard.completions_index as ci
from dashboard.completions_index import CompletionsIndex


def rec(
    step: int, pid: str, g: int, stage: str = "pass", reward: float = 1.0, completion: str = "let x = 1"
) -> dict:
    return {
        "step": step,
        "problem_id": pid,
        "group_index": g,
        "prompt": f"prompt for {pid}",
        "completion": completion,
        "reward": reward,
        "stage": stage,
        "error": None if stage == "pass" else f"Error: {stage}",
        "tests_passed": 3 if stage == "pass" else 0,
        "tests_total": 3,
    }


@pytest.fixture
def comp_file(tmp_path: Path, write_lines) -> Path:
    p = tmp_path / "completions.jsonl"
    rows = []
    for step in (1, 2, 3):
        for pid in ("a", "b"):
            for g in range(4):
                stage = "syntax_error" if (step == 2 and pid == "b" and g == 1) else "pass"
                rows.append(
                    rec(
                        step,
                        pid,
                        g,
                        stage,
                        0.0 if stage != "pass" else 1.0,
                        completion=f"let s{step}{pid}{g} = 0",
                    )
                )
    write_lines(p, rows)
    return p


def index(p: Path) -> CompletionsIndex:
    ix = CompletionsIndex(str(p))
    ix.refresh()
    ix._thread and ix._thread.join(10)
    return ix


def test_groups_are_newest_step_first_with_all_members(comp_file: Path) -> None:
    res = index(comp_file).query(page_size=2)
    assert res["total"] == 6
    assert [(g["step"], g["problem_id"]) for g in res["groups"]] == [(3, "a"), (3, "b")]
    assert [c["group_index"] for c in res["groups"][0]["completions"]] == [0, 1, 2, 3]


def test_stage_filter_returns_whole_group_and_marks_match(comp_file: Path) -> None:
    res = index(comp_file).query(stages=["syntax_error"])
    assert res["total"] == 1
    (g,) = res["groups"]
    assert (g["step"], g["problem_id"], g["n"]) == (2, "b", 4)
    assert [c["match"] for c in g["completions"]] == [False, True, False, False]


def test_reward_range_problem_and_step_filters(comp_file: Path) -> None:
    ix = index(comp_file)
    assert ix.query(reward_max=0.5)["total"] == 1
    assert ix.query(problem="a")["total"] == 3
    assert ix.query(step=1)["total"] == 2
    assert ix.query(step_min=2, problem="b")["total"] == 2
    assert ix.query(problem="nope")["total"] == 0


def test_paging_is_done_on_the_server(comp_file: Path) -> None:
    ix = index(comp_file)
    pages = [
        [(g["step"], g["problem_id"]) for g in ix.query(page=p, page_size=4)["groups"]] for p in (0, 1, 2)
    ]
    assert pages == [[(3, "a"), (3, "b"), (2, "a"), (2, "b")], [(1, "a"), (1, "b")], []]


def test_text_search_matches_completion_text(comp_file: Path) -> None:
    res = index(comp_file).query(q="S2B1")  # case-insensitive
    assert res["total"] == 1 and res["total_exact"] is True
    assert (res["groups"][0]["step"], res["groups"][0]["problem_id"]) == (2, "b")


def test_text_search_does_not_match_json_keys(comp_file: Path) -> None:
    assert index(comp_file).query(q="group_index")["total"] == 0


def test_backward_build_in_small_chunks_indexes_every_line(tmp_path: Path, write_lines, monkeypatch) -> None:
    monkeypatch.setattr(ci, "BACK_CHUNK", 300)
    p = tmp_path / "completions.jsonl"
    write_lines(p, [rec(s, f"p{k}", g) for s in range(1, 41) for k in range(3) for g in range(2)])
    ix = index(p)
    assert ix.progress()["complete"] is True
    assert ix.progress()["rows"] == 240
    assert ix.query()["total"] == 120
    assert ix.facets()["step_min"] == 1


def test_appended_lines_are_indexed_incrementally(comp_file: Path, write_lines) -> None:
    ix = index(comp_file)
    write_lines(comp_file, [rec(4, "c", g) for g in range(4)] + ['{"step": 4, "problem_id": "c", "gro'])
    ix.refresh()
    res = ix.query(page_size=1)
    assert res["total"] == 7
    assert res["groups"][0]["problem_id"] == "c" and res["groups"][0]["n"] == 4


def test_corrupt_completion_line_is_counted(comp_file: Path, write_lines) -> None:
    ix = index(comp_file)
    write_lines(comp_file, ["{broken json\n"])
    ix.refresh()
    assert ix.progress()["corrupt"] == 1


def test_facets_count_stages(comp_file: Path) -> None:
    f = index(comp_file).facets()
    assert f["stages"] == {"pass": 23, "syntax_error": 1}
    assert f["problems"] == ["a", "b"]
    assert (f["step_min"], f["step_max"]) == (1, 3)


def test_parse_process_chunks_map_to_the_index_codes(tmp_path: Path, write_lines, monkeypatch) -> None:
    # Old lines (indexed by the parse process) use problem ids and a stage name
    # that the newest chunk (indexed in the thread) never saw, so codes must be translated.
    monkeypatch.setattr(ci, "BACK_CHUNK", 2000)
    p = tmp_path / "completions.jsonl"
    old = [
        rec(s, f"old{s % 4}", g, stage="weird_stage" if s == 2 else "pass")
        for s in range(1, 30)
        for g in range(2)
    ]
    new = [rec(s, "newest", g) for s in range(30, 33) for g in range(2)]
    write_lines(p, [*old, "{not json\n", *new])
    ix = index(p)
    assert ix.progress() == {
        "complete": True,
        "indexed_bytes": p.stat().st_size,
        "total_bytes": p.stat().st_size,
        "rows": 64,
        "corrupt": 1,
    }
    f = ix.facets()
    assert f["stages"] == {"pass": 62, "weird_stage": 2}
    assert f["problems"] == ["newest", "old0", "old1", "old2", "old3"]
    res = ix.query(problem="old1", page_size=100)
    assert [g["step"] for g in res["groups"]] == [29, 25, 21, 17, 13, 9, 5, 1]
    assert all(c["problem_id"] == "old1" for g in res["groups"] for c in g["completions"])
    (g,) = ix.query(stages=["weird_stage"])["groups"]
    assert (g["step"], g["problem_id"], g["n"]) == (2, "old2", 2)


def test_a_dying_parse_process_falls_back_to_the_thread(tmp_path: Path, write_lines, monkeypatch) -> None:
    import os

    from dashboard.offload import Offloaded

    monkeypatch.setattr(ci, "BACK_CHUNK", 300)
    monkeypatch.setattr(ci, "Offloaded", lambda *_a: Offloaded(os._exit, 3))
    p = tmp_path / "completions.jsonl"
    write_lines(p, [rec(s, f"p{k}", g) for s in range(1, 21) for k in range(3) for g in range(2)])
    ix = index(p)
    assert ix.progress()["complete"] is True and ix.progress()["rows"] == 120
    assert ix.query()["total"] == 60
    assert ix.facets()["step_min"] == 1


def episode(step: int, pid: str, g: int, calls: int, forged: bool = False) -> dict:
    """A completions.jsonl line of a multi-turn run (rlvr.grpo.reward_log): tool_calls, check_cost and
    the conversation last. With `forged`, the model's tool-call arguments carry keys named like the
    indexed fields, which the index must not read."""
    args = {"code": "let x = 1"}
    if forged:
        args.update({"tool_calls": 99, "stage": "pass", "reward": 1.0, "step": 7})
    turns = []
    for _ in range(calls):
        turns.append(
            {"role": "assistant", "content": "", "tool_calls": [{"name": "check", "arguments": args}]}
        )
        turns.append({"role": "tool", "name": "check", "content": 'Line 1:\nError: "tool_calls": 5'})
    turns.append({"role": "assistant", "content": "```ocaml\nlet x = 1\n```"})
    return {
        **rec(step, pid, g, "type_error", 0.2),
        "tool_calls": calls,
        "check_cost": 0.02 * calls,
        "conversation": turns,
    }


@pytest.fixture
def episodes_file(tmp_path: Path, write_lines) -> Path:
    p = tmp_path / "completions.jsonl"
    rows = [episode(1, "a", g, calls) for g, calls in enumerate((0, 1, 2, 2))]
    rows += [episode(2, "a", 0, 1, forged=True), rec(2, "b", 0), rec(2, "b", 1)]
    write_lines(p, rows)
    return p


def test_episodes_are_filtered_by_their_number_of_tool_calls(episodes_file: Path) -> None:
    ix = index(episodes_file)
    assert ix.facets()["tool_calls"] == {"0": 1, "1": 2, "2": 2}
    res = ix.query(tool_calls=2)
    assert [(g["step"], g["problem_id"]) for g in res["groups"]] == [(1, "a")]
    assert [c["match"] for c in res["groups"][0]["completions"]] == [False, False, True, True]
    assert ix.query(tool_calls_min=1)["total"] == 2  # (2, a) and (1, a); single-turn lines never match
    assert ix.query(tool_calls=0)["total"] == 1


def test_keys_inside_the_conversation_are_not_read_as_the_lines_fields(episodes_file: Path) -> None:
    """The forged line's arguments say tool_calls 99, stage pass, reward 1, step 7: the index keeps the
    top-level values (1 call, type_error, 0.2, step 2), even with the conversation parsed first."""
    ix = index(episodes_file)
    assert ix.query(tool_calls=99)["total"] == 0
    assert ix.query(step=7)["total"] == 0
    forged = ix.query(step=2, tool_calls=1)["groups"][0]["completions"][0]
    assert (forged["stage"], forged["reward"], forged["tool_calls"]) == ("type_error", 0.2, 1)
    assert ix.query(step=2, stages=["pass"])["groups"][0]["problem_id"] == "b"


def test_a_single_turn_run_has_no_tool_call_facet(comp_file: Path) -> None:
    assert index(comp_file).facets()["tool_calls"] == {}
