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


def test_a_top_level_tool_calls_after_the_conversation_is_the_one_read(tmp_path: Path, write_lines) -> None:
    """The trap: the top-level `tool_calls` count and the conversation's nested `tool_calls` lists share
    a name. Lines with the count (and the other fields) after the conversation, whose strings and the
    model's arguments also say "tool_calls", in json.dumps' and in compact separators: the index reads
    the top-level integer and the top-level stage/reward, never a nested one."""
    import json

    def late(step: int, g: int, calls: int, compact: bool = False) -> str:
        ep = episode(step, "late", g, calls, forged=True)
        head = {k: v for k, v in ep.items() if k != "conversation"}
        line = {"conversation": ep["conversation"], **head}  # every field after the conversation
        return json.dumps(line, separators=(",", ":") if compact else None) + "\n"

    p = tmp_path / "completions.jsonl"
    write_lines(p, [late(1, 0, 1), late(1, 1, 2), late(1, 2, 3, compact=True), rec(1, "single", 0)])
    assert b'"tool_calls": [' in p.read_bytes() and b'"tool_calls":99' in p.read_bytes()
    ix = index(p)
    assert ix.progress()["corrupt"] == 0
    assert ix.facets()["tool_calls"] == {"1": 1, "2": 1, "3": 1}
    assert ix.facets()["stages"] == {"type_error": 3, "pass": 1}
    for n in (1, 2, 3):
        (g,) = ix.query(tool_calls=n)["groups"]
        assert [c["match"] for c in g["completions"]] == [c["tool_calls"] == n for c in g["completions"]]
    assert ix.query(tool_calls=99)["total"] == 0 and ix.query(step=7)["total"] == 0
    assert ix.query(tool_calls_min=2)["total"] == 1 and ix.query(stages=["pass"])["groups"][0][
        "problem_id"
    ] == ("single")
    assert ix.query(reward_min=0.5)["total"] == 1  # the forged reward 1.0 is never read


def test_a_long_episode_line_reads_its_fields_around_a_long_prompt(tmp_path: Path, write_lines) -> None:
    """Fields sit before and after a long prompt and completion (the scanner reads the head and the
    tail of what precedes the conversation first)."""
    p = tmp_path / "completions.jsonl"
    long = episode(5, "long", 0, 2)
    long["prompt"] = 'say "tool_calls": 7, "stage": "pass" ' * 200
    long["completion"] = "let x = 1\n" * 300
    write_lines(p, [long])
    ix = index(p)
    assert ix.facets()["tool_calls"] == {"2": 1}
    assert ix.facets()["stages"] == {"type_error": 1}


def test_a_synthetic_episode_run_indexes_exactly(tmp_path: Path) -> None:
    """dashboard.synthetic's episodes: the index's tool-call counts are those json.loads reads."""
    import json
    from collections import Counter

    from dashboard.synthetic import write_grpo_run

    run = Path(write_grpo_run(str(tmp_path), "ep", steps=12, episodes=True, set_latest=False))
    lines = [json.loads(x) for x in (run / "completions.jsonl").read_text().splitlines()]
    assert all(isinstance(x["conversation"], list) and "check_cost" in x for x in lines)
    ix = index(run / "completions.jsonl")
    calls = Counter(x["tool_calls"] for x in lines)
    assert ix.facets()["tool_calls"] == {str(n): calls[n] for n in sorted(calls)}
    groups = {(x["step"], x["problem_id"]) for x in lines if x["tool_calls"] >= 2}
    assert ix.query(tool_calls_min=2, page_size=100)["total"] == len(groups)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("env/tool_calls_mean" in m and "env/reward_by_calls/1" in m for m in metrics)
