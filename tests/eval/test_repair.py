"""Self-repair evaluation (`--repair N`, eval/repair.py): the model is shown the check's verdict on
its failing answer (never the hidden tests) and tries again; summary.json gets the repair curve."""

from __future__ import annotations

import json

from .conftest import ScriptedServer, llama_server_answer, run_eval

PROBLEM = {
    "id": "sum_list",
    "prompt": "(** [sum_list xs] is the sum of [xs]. Example: [sum_list [1; 2] = 3]. *)\n"
    "let sum_list (xs : int list) : int =",
    # the hidden tests: their distinctive numbers must never reach the model
    "tests": ["sum_list [1; 2] = 3", "sum_list [] = 0", "sum_list [40961; 1] = 40962"],
    "solution": "List.fold_left ( + ) 0 xs",
    "split": "eval",
}
WRONG_TYPE = "```ocaml\nlet sum_list (xs : int list) : int =\n  List.fold_left ( +. ) 0. xs\n```"
CORRECT = "```ocaml\nlet sum_list xs = List.fold_left ( + ) 0 xs\n```"


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def repair_run(tmp_path, repair: str, respond):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps(PROBLEM) + "\n")
    with ScriptedServer(respond) as server:
        code, path = run_eval(
            ["--backend", "server", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--n", "2",
             "--k", "1,2", "--temperature", "0.5", "--concurrency", "1", "--repair", repair],
            {"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert code == 0 and path is not None
    return path, server.calls


def fixes_after_feedback(count, body):
    """Answers a type error first; once the last message carries the compiler's verdict, the fix."""
    last = body["messages"][-1]["content"]
    return 200, llama_server_answer(CORRECT if "I checked your answer" in last else WRONG_TYPE), {}


def test_the_curve_rises_when_the_model_fixes_what_the_compiler_said(tmp_path):
    path, _calls = repair_run(tmp_path, "2", fixes_after_feedback)
    s = json.loads((path / "summary.json").read_text())
    curve = s["repair"]["curve"]
    assert [c["repairs"] for c in curve] == [0, 1, 2]
    assert [c["pass@1"] for c in curve] == [0.0, 1.0, 1.0]
    assert [round(c["mean_reward"], 6) for c in curve] == [0.21, 1.0, 1.0]
    assert [c["samples_repaired"] for c in curve] == [0, 2, 0]  # passing samples stop repairing
    assert [c["newly_passing"] for c in curve] == [0, 2, 0]
    assert curve[0]["funnel"][0]["reached"] == 2 and curve[1]["funnel"][-1]["reached"] == 2
    assert s["repair"]["feedback"] == "examples" and s["repair"]["max_repairs"] == 2
    # turn 0 metrics are the single-turn ones
    assert s["pass_at_k"]["pass@1"] == 0.0
    repairs = read_jsonl(path / "repairs.jsonl")
    assert [(r["sample"], r["turn"], r["stage"]) for r in repairs] == [(0, 1, "pass"), (1, 1, "pass")]
    assert repairs[0]["feedback"].startswith("Line 2, characters ")
    assert "2 |   List.fold_left ( +. ) 0. xs" in repairs[0]["feedback"]


def test_the_model_is_never_shown_the_hidden_tests(tmp_path):
    _, calls = repair_run(tmp_path, "1", fixes_after_feedback)
    repair_calls = [c for c in calls if "I checked your answer" in c["messages"][-1]["content"]]
    assert len(repair_calls) == 2
    for c in repair_calls:
        assert [m["role"] for m in c["messages"]] == ["system", "user", "assistant", "user"]
        assert c["messages"][2]["content"] == WRONG_TYPE
    sent = json.dumps(calls)
    assert "40961" not in sent and "sum_list [] = 0" not in sent


def test_an_answer_wrong_only_on_hidden_tests_is_told_the_examples_hold(tmp_path):
    cheat = "```ocaml\nlet sum_list xs = if xs = [1; 2] then 3 else 7\n```"
    path, _ = repair_run(tmp_path, "1", lambda count, body: (200, llama_server_answer(cheat), {}))
    repairs = read_jsonl(path / "repairs.jsonl")
    assert repairs[0]["feedback"] == "Your code compiles, and all 1 of the problem's examples hold."
    curve = json.loads((path / "summary.json").read_text())["repair"]["curve"]
    assert [c["pass@1"] for c in curve] == [0.0, 0.0]


def test_without_repairs_the_summary_has_no_curve_and_no_repairs_file(tmp_path):
    path, calls = repair_run(tmp_path, "0", fixes_after_feedback)
    assert "repair" not in json.loads((path / "summary.json").read_text())
    assert not (path / "repairs.jsonl").exists()
    assert len(calls) == 2


def test_the_local_backend_repairs_too(tiny_model, problems_file, tmp_path):
    code, path = run_eval(
        ["--model", str(tiny_model), "--data", str(problems_file), "--output-dir", str(tmp_path),
         "--n", "1", "--max-tokens", "8", "--limit", "2", "--repair", "1"]
    )  # fmt: skip
    assert code == 0
    s = json.loads((path / "summary.json").read_text())
    assert [c["repairs"] for c in s["repair"]["curve"]] == [0, 1]
    repairs = read_jsonl(path / "repairs.jsonl")
    assert len(repairs) == s["repair"]["curve"][1]["samples_repaired"] == 2  # noise never passes
    html = (path / "report.html").read_text()
    assert "Self-repair (1 rounds, feedback: examples)" in html and "Funnel after each round" in html


def test_a_negative_repair_count_names_the_flag(tmp_path):
    code, _ = run_eval(["--repair", "-1", "--output-dir", str(tmp_path)])
    assert code == 2


def test_eval_compare_puts_two_repair_curves_side_by_side(tmp_path, capsys):
    from eval.compare import main

    fixed, _ = repair_run(tmp_path / "a", "1", fixes_after_feedback)
    stubborn, _ = repair_run(
        tmp_path / "b", "1", lambda count, body: (200, llama_server_answer(WRONG_TYPE), {})
    )
    single, _ = repair_run(tmp_path / "c", "0", fixes_after_feedback)
    capsys.readouterr()
    assert main([str(stubborn), str(fixed), "--out", str(tmp_path / "cmp")]) == 0
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    curve = c["repair"]["curve"]
    assert [p["repairs"] for p in curve] == [0, 1]
    assert (curve[0]["pass@1"]["delta"], curve[1]["pass@1"]["delta"]) == (0.0, 1.0)
    assert round(curve[1]["mean_reward"]["delta"], 6) == round(1.0 - 0.21, 6)
    assert "self-repair curves" in capsys.readouterr().out
    assert main([str(single), str(fixed), "--out", str(tmp_path / "cmp2")]) == 0
    note = json.loads((tmp_path / "cmp2" / "compare.json").read_text())["repair"]["note"]
    assert note.startswith(single.name + " has no self-repair curve")
