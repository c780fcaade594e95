"""Self-repair evaluation (`--repair N`, eval/repair.py): the model is shown the check's verdict on
its failing answer (never the hidden tests) and tries again; summary.json gets the repair curve.

Real components throughout: a real HTTP server (scripted answers) or the tiny model through the
transformers backend, the real verifier and sandbox, the real environment checker."""

from __future__ import annotations

import json
import re
import shutil

from .conftest import ScriptedServer, llama_server_answer, local_args, run_eval

PROBLEM = {
    "id": "sum_list",
    "prompt": "(** [sum_list xs] is the sum of [xs]. Example: [sum_list [1; 2] = 3]. *)\n"
    "let sum_list (xs : int list) : int =",
    # the hidden tests: all but the first (the prompt's own example) must never reach the model
    "tests": ["sum_list [1; 2] = 3", "sum_list [] = 0", "sum_list [40961; 1] = 40962"],
    "solution": "List.fold_left ( + ) 0 xs",
    "split": "eval",
}
HIDDEN = PROBLEM["tests"][1:]
WRONG_TYPE = "```ocaml\nlet sum_list (xs : int list) : int =\n  List.fold_left ( +. ) 0. xs\n```"
WRONG_LINE_1 = "```ocaml\nlet sum_list (xs : int list) : int = List.fold_left ( +. ) 0. xs\n```"
CORRECT = "```ocaml\nlet sum_list xs = List.fold_left ( + ) 0 xs\n```"
# timing fields: the only ones two runs of the same answers may differ in
TIMING = ("duration_ms", "gen_seconds")


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def repair_run(tmp_path, repair: str, respond, *extra: str, env: dict | None = None, problems=(PROBLEM,)):
    """An evaluation of `problems` (n=2) through a scripted server answering with `respond`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in problems))
    with ScriptedServer(respond) as server:
        code, path = run_eval(
            ["--backend", "server", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--n", "2",
             "--k", "1,2", "--temperature", "0.5", "--concurrency", "1", "--repair", repair, *extra],
            {"OPENAI_BASE_URL": server.base_url, **(env or {})},
        )  # fmt: skip
    assert code == 0 and path is not None
    return path, server.calls


def asked_to_repair(body) -> bool:
    return "I checked your answer" in body["messages"][-1]["content"]


def fixes_after_feedback(count, body):
    """Answers a type error first; once the last message carries the compiler's verdict, the fix."""
    return 200, llama_server_answer(CORRECT if asked_to_repair(body) else WRONG_TYPE), {}


def never_fixes(count, body):
    return 200, llama_server_answer(WRONG_LINE_1), {}


def test_the_curve_rises_when_the_model_fixes_what_the_compiler_said(tmp_path):
    path, calls = repair_run(tmp_path, "2", fixes_after_feedback)
    assert len(calls) == 4  # 2 first answers, 2 repairs; nothing is asked after a pass
    s = json.loads((path / "summary.json").read_text())
    curve = s["repair"]["curve"]
    assert [c["repairs"] for c in curve] == [0, 1, 2]
    assert [c["pass@1"] for c in curve] == [0.0, 1.0, 1.0]
    assert [c["pass@1_ci"] for c in curve] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]  # one problem
    assert [round(c["mean_reward"], 6) for c in curve] == [0.21, 1.0, 1.0]
    assert [c["samples_repaired"] for c in curve] == [0, 2, 0]  # passing samples stop repairing
    assert [c["newly_passing"] for c in curve] == [0, 2, 0]
    assert [(c["passing"], c["samples"]) for c in curve] == [(0, 2), (2, 2), (2, 2)]
    assert [f["reached"] for f in curve[0]["funnel"]] == [2, 0, 0, 0, 0]  # parsed, not type-checked
    assert [f["reached"] for f in curve[1]["funnel"]] == [2, 2, 2, 2, 2]
    r = s["repair"]
    assert (r["max_repairs"], r["feedback"], r["repair_rows"]) == (2, "examples", 2)
    assert r["environment"]["feedback"] == "examples" and "{feedback}" in r["request"]
    assert s["settings"]["repair"] == 2
    # turn 0's metrics are the single-turn ones
    assert s["pass_at_k"]["pass@1"] == 0.0 and curve[0]["pass@1"] == s["pass_at_k"]["pass@1"]
    assert len(read_jsonl(path / "results.jsonl")) == 2
    repairs = read_jsonl(path / "repairs.jsonl")
    assert [(r["sample"], r["turn"], r["stage"]) for r in repairs] == [(0, 1, "pass"), (1, 1, "pass")]
    first = repairs[0]
    assert first["completion"] == CORRECT and first["tests_passed"] == first["tests_total"] == 3
    assert first["parent"] == {"turn": 0, "stage": "type_error", "total_reward": 0.21}
    assert first["feedback_stage"] == "type_error"
    # the compiler's error, with lines counted from the answer (its line 2), not from the harness's file
    assert first["feedback"].startswith("Line 2, characters ")
    assert "2 |   List.fold_left ( +. ) 0. xs" in first["feedback"] and "Error:" in first["feedback"]
    assert "candidate.ml" not in first["feedback"]


def test_the_model_is_never_shown_the_hidden_tests(tmp_path):
    """What the server received: the prompt, the previous answer and the compiler's verdict on it
    (Line 1 of the answer), in every repair turn; never a hidden test."""
    path, calls = repair_run(tmp_path, "2", never_fixes)
    assert len(calls) == 6  # 2 first answers + 2 samples x 2 repairs
    repair_calls = [c for c in calls if asked_to_repair(c)]
    assert len(repair_calls) == 4
    for c in repair_calls:
        messages = c["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert messages[:2] == calls[0]["messages"]  # the first turn's prompt, as it was
        assert messages[2]["content"] == WRONG_LINE_1  # the previous answer, as generated
        feedback = messages[3]["content"]
        assert feedback.startswith("I checked your answer:\n\nLine 1, characters ")
        assert "This expression has type" in feedback or "Error" in feedback
        assert feedback.endswith("Fix it. Reply with the whole corrected function in one ```ocaml block.")
    sent = json.dumps(calls)
    for test in HIDDEN:
        assert test not in sent
    assert "40961" not in sent and "40962" not in sent
    assert {c["seed"] for c in repair_calls} & {c["seed"] for c in calls[:2]} == set()
    s = json.loads((path / "summary.json").read_text())
    assert [c["pass@1"] for c in s["repair"]["curve"]] == [0.0, 0.0, 0.0]
    assert [c["samples_repaired"] for c in s["repair"]["curve"]] == [0, 2, 2]
    repairs = read_jsonl(path / "repairs.jsonl")
    assert [(r["sample"], r["turn"], r["parent"]["turn"]) for r in repairs] == [
        (0, 1, 0), (1, 1, 0), (0, 2, 1), (1, 2, 1),
    ]  # fmt: skip


def test_an_answer_wrong_only_on_hidden_tests_is_told_the_examples_hold(tmp_path):
    cheat = "```ocaml\nlet sum_list xs = if xs = [1; 2] then 3 else 7\n```"
    path, _ = repair_run(tmp_path, "1", lambda count, body: (200, llama_server_answer(cheat), {}))
    repairs = read_jsonl(path / "repairs.jsonl")
    assert repairs[0]["feedback"] == "Your code compiles, and all 1 of the problem's examples hold."
    assert repairs[0]["feedback_stage"] == "pass"  # the visible check passed; the hidden tests did not
    curve = json.loads((path / "summary.json").read_text())["repair"]["curve"]
    assert [c["pass@1"] for c in curve] == [0.0, 0.0]
    # ENV_FEEDBACK=compile: the examples are not run, the verdict is the build's
    path, _ = repair_run(
        tmp_path / "compile", "1", lambda count, body: (200, llama_server_answer(cheat), {}),
        env={"ENV_FEEDBACK": "compile"},
    )  # fmt: skip
    repairs = read_jsonl(path / "repairs.jsonl")
    assert repairs[0]["feedback"] == "Your code compiles (it type-checks against the signature and builds)."
    assert json.loads((path / "summary.json").read_text())["repair"]["feedback"] == "compile"


def test_without_repairs_nothing_changes(tmp_path):
    """repair=0 writes what an evaluation wrote before the option: no `repair` key, no repairs.jsonl,
    the same results rows; and turn 0 of a repair run is that same evaluation."""
    path, calls = repair_run(tmp_path / "zero", "0", fixes_after_feedback)
    s = json.loads((path / "summary.json").read_text())
    assert "repair" not in s and s["settings"]["repair"] == 0
    assert sorted(s) == sorted([
        "status", "error", "run", "started", "finished", "resumes", "process", "settings", "system_prompt",
        "model", "data", "verifier", "versions", "git_commit", "counts", "pass_at_k", "mean_reward",
        "metrics", "invalid_problems", "problems", "timing",
    ])  # fmt: skip
    assert "repair" not in json.dumps(s["timing"]) and s["counts"]["samples"] == 2
    assert sorted(p.name for p in path.iterdir()) == ["report.html", "results.jsonl", "summary.json"]
    assert len(calls) == 2 and "Self-repair" not in (path / "report.html").read_text()

    repaired, _ = repair_run(tmp_path / "two", "2", fixes_after_feedback)
    assert untimed(read_jsonl(repaired / "results.jsonl")) == untimed(read_jsonl(path / "results.jsonl"))
    r = json.loads((repaired / "summary.json").read_text())
    assert r["metrics"] == s["metrics"] and r["pass_at_k"] == s["pass_at_k"]


def test_the_local_backend_repairs_too(tiny_model, problems_file, local_run, tmp_path):
    """The tiny random model through the transformers backend, repair=1 on 2 problems: the curve has
    2 points, every sample (noise never passes) got one repair, and turn 0 is the run without repairs."""
    code, path = run_eval(local_args(tiny_model, problems_file, tmp_path, 1, "--limit", "2", "--repair", "1"))
    assert code == 0
    s = json.loads((path / "summary.json").read_text())
    curve = s["repair"]["curve"]
    assert [c["repairs"] for c in curve] == [0, 1] and s["model"]["backend"] == "transformers"
    repairs = read_jsonl(path / "repairs.jsonl")
    assert len(repairs) == curve[1]["samples_repaired"] == 4 == s["repair"]["repair_rows"]
    assert all(r["turn"] == 1 and r["feedback"] and r["completion_tokens"] <= 12 for r in repairs)
    assert s["repair"]["timing"]["generate_s"] > 0 and s["repair"]["timing"]["check_s"] > 0
    # same seed, same first batch (2 problems x 2 samples) as local_run: the same first answers
    first = read_jsonl(path / "results.jsonl")
    assert [r["completion"] for r in first] == [
        r["completion"] for r in read_jsonl(local_run / "results.jsonl")[:4]
    ]
    html = (path / "report.html").read_text()
    assert "Self-repair (1 round, feedback: examples)" in html and "Funnel after each round" in html
    assert "<svg" in html and "<polyline" in html and "repair 1</b>" in html
    assert html.count("<script") == 1 and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


def test_a_negative_repair_count_is_refused_before_anything_runs(tmp_path, capsys):
    code, path = run_eval(["--repair", "-1", "--output-dir", str(tmp_path)])
    assert code == 2 and path is None
    assert "--repair (EVAL_REPAIR)='-1'" in capsys.readouterr().err
    code, path = run_eval(["--output-dir", str(tmp_path)], {"EVAL_REPAIR": "-3"})
    assert code == 2 and path is None
    assert "EVAL_REPAIR='-3': expected the number of self-repair rounds" in capsys.readouterr().err
    code, path = run_eval(["--output-dir", str(tmp_path), "--repair", "1"], {"ENV_FEEDBACK": "hidden"})
    assert code == 2 and path is None and "ENV_FEEDBACK" in capsys.readouterr().err


def test_an_interrupted_repair_run_resumes_to_the_uninterrupted_one(tmp_path):
    """Batches of 1 problem: the kill leaves problem 1 (results and repairs) whole and problem 2's
    repairs torn; the continuation keeps the first, redoes the second, and ends where an uninterrupted
    run ends."""
    second = {**PROBLEM, "id": "sum_list_2"}
    args = ("--batch-size", "1")
    path, _ = repair_run(tmp_path, "1", fixes_after_feedback, *args, problems=(PROBLEM, second))
    whole = tmp_path / "whole"
    shutil.copytree(path, whole)
    results, repairs = read_jsonl(path / "results.jsonl"), read_jsonl(path / "repairs.jsonl")
    assert len(results) == len(repairs) == 4
    # the state of a kill while problem 2's repair rows were being written (its results come after them)
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results[:2]))
    (path / "repairs.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in repairs[:3]) + json.dumps(repairs[3])[:20]
    )
    summary = json.loads((path / "summary.json").read_text())
    summary["status"] = "interrupted"
    (path / "summary.json").write_text(json.dumps(summary))

    with ScriptedServer(fixes_after_feedback) as server:
        code, _ = run_eval(
            ["--resume", str(path), "--output-dir", str(tmp_path)],
            {"OPENAI_BASE_URL": server.base_url, "ENV_FEEDBACK": "compile"},  # the recorded one wins
        )
        assert len(server.calls) == 4  # problem 2 only: 2 first answers, 2 repairs
    assert code == 0
    assert untimed(read_jsonl(path / "results.jsonl")) == untimed(read_jsonl(whole / "results.jsonl"))
    assert untimed(read_jsonl(path / "repairs.jsonl")) == untimed(read_jsonl(whole / "repairs.jsonl"))
    s, w = (json.loads((p / "summary.json").read_text()) for p in (path, whole))
    assert s["status"] == "complete" and s["repair"]["curve"] == w["repair"]["curve"]
    assert s["repair"]["feedback"] == "examples" and s["resumes"][0]["problems_kept"] == 1


def test_eval_compare_puts_two_repair_curves_side_by_side(tmp_path, capsys):
    from eval.compare import main

    stubborn, _ = repair_run(tmp_path / "a", "1", never_fixes)
    fixed, _ = repair_run(tmp_path / "b", "1", fixes_after_feedback)
    single, _ = repair_run(tmp_path / "c", "0", fixes_after_feedback)
    capsys.readouterr()
    assert main([str(stubborn), str(fixed), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    repair = c["repair"]
    assert repair["rounds"] == 1 and repair["notes"] == []
    curve = repair["curve"]
    assert [p["repairs"] for p in curve] == [0, 1]
    assert [(p["pass@1"]["a"], p["pass@1"]["b"], p["pass@1"]["delta"]) for p in curve] == [
        (0.0, 0.0, 0.0), (0.0, 1.0, 1.0),
    ]  # fmt: skip
    assert curve[1]["pass@1"]["delta_interval"] == [1.0, 1.0]  # one problem: the exact bootstrap
    assert round(curve[1]["mean_reward"]["delta"], 6) == round(1.0 - 0.21, 6)
    assert "self-repair curves (feedback A: examples, B: examples" in printed
    lines = printed.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("self-repair curves")) :]
    assert table[1].split() == ["k", "pass@1", "A", "B", "B", "-", "A", "95%", "interval", "reward", "A",
                                "B", "B", "-", "A", "95%", "interval"]  # fmt: skip
    assert table[2].startswith("0 ") and "+0.0 pp" in table[2]
    row = table[3]
    assert "0.0%" in row and "100.0%" in row and "+100.0 pp" in row and "[+100.0 pp, +100.0 pp]" in row
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "Self-repair curves" in html and "+100.0 pp" in html

    assert main([str(single), str(fixed), "--out", str(tmp_path / "cmp2")]) == 0
    assert "self-repair: " + single.name + " has no self-repair curve" in capsys.readouterr().out
    note = json.loads((tmp_path / "cmp2" / "compare.json").read_text())["repair"]["note"]
    assert note.startswith(single.name + " has no self-repair curve")


def test_repair_rows_of_a_multipl_e_style_problem_are_scored_after_the_stop_tokens(tmp_path):
    """MultiPL-E's convention applies to repaired answers as to first ones: an unfenced answer is cut
    at the problem's stop tokens before it is scored and checked."""
    problem = {  # MultiPL-E's schema
        "name": "mbpp_0_twice",
        "prompt": "(**Write a function that doubles an integer.\n*)\nlet twice (x : int) : int =",
        "tests": "\nlet assertions =\n let candidate = twice in\n  (assert ((candidate 21) = 42));\n  ()\n",
        "stop_tokens": ["\n\n", "\n(*", "\ntype", "\nlet"],
        "language": "ml",
    }

    def respond(count, body):
        if asked_to_repair(body):
            return 200, llama_server_answer("x * 2\n\nthis prose is cut off"), {}
        return 200, llama_server_answer("x +. 2.\n\nmore prose"), {}

    path, _ = repair_run(tmp_path, "1", respond, problems=(problem,))
    repairs = read_jsonl(path / "repairs.jsonl")
    assert {r["stage"] for r in repairs} == {"pass"} and repairs[0]["scored_text"] == "x * 2"
    assert repairs[0]["completion"] == "x * 2\n\nthis prose is cut off"
    assert repairs[0]["feedback"].startswith("Line 1, characters ")
    assert "more prose" not in repairs[0]["feedback"]


def test_a_repair_run_is_reused_only_for_the_same_repairs_and_feedback(monkeypatch):
    """eval.reuse: the repair rounds are a setting, and a repair run's feedback settings are part of
    what it measured; a run without repairs fingerprints as before (no environment in it)."""
    from eval.backends.llama import PROMPT_TOKENS, context_per_slot
    from eval.config import EvalConfig
    from eval.reuse import fingerprint
    from rlvr.problems import Problem
    from rlvr.verifier import VerifierConfig

    problems = [Problem(id=PROBLEM["id"], prompt=PROBLEM["prompt"], tests=tuple(PROBLEM["tests"]))]
    plain = fingerprint(EvalConfig.from_sources({}), VerifierConfig(), problems)
    assert "repair_environment" not in plain and plain["settings"]["repair"] == 0
    two = EvalConfig.from_sources({"EVAL_REPAIR": "2"})
    monkeypatch.setenv("ENV_FEEDBACK", "compile")
    compile_only = fingerprint(two, VerifierConfig(), problems)
    monkeypatch.setenv("ENV_FEEDBACK", "examples")
    examples = fingerprint(two, VerifierConfig(), problems)
    assert compile_only["settings"]["repair"] == 2 and compile_only != examples
    assert examples["repair_environment"]["feedback"] == "examples"
    # llama-server: a repair prompt holds the previous answer and the feedback on it too
    monkeypatch.setenv("ENV_MAX_OUTPUT_BYTES", "1000")
    single = EvalConfig.from_sources({"EVAL_MAX_TOKENS": "300"})
    assert context_per_slot(single) == PROMPT_TOKENS + 300
    assert context_per_slot(EvalConfig.from_sources({"EVAL_MAX_TOKENS": "300", "EVAL_REPAIR": "1"})) >= (
        PROMPT_TOKENS + 300 + 300 + 1000
    )
