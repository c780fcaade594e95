"""`python -m rlvr.synth` against a real HTTP server that plays the teacher with scripted answers (the
real OpenAI client, the real verifier): the exact accept/reject rules of both modes, provenance, the
summary, resuming, and the sources it refuses. tests/slow/test_synth_real.py runs it on a real model."""

from __future__ import annotations

import json
import re

import pytest

from rlvr.data import load_problems, load_sft_pairs, multipl_e_file
from rlvr.synth.__main__ import main
from tests.eval.conftest import ScriptedServer, llama_server_answer
from tests.train.conftest import PROBLEMS

TRIPLE = {
    "id": "triple",
    "prompt": "(** [triple x] is three times [x], for any integer, negative ones included. *)\nlet triple (x : int) : int =",
    "tests": ["triple 1 = 3", "triple 0 = 0", "triple (-2) = -6"],
    "solution": "let triple x = 3 * x",
    "split": "eval",
}
SOLUTIONS = {  # (function, seed) -> the teacher's answer
    ("double", 0): "```ocaml\nlet double x = 2 * x\n```",
    ("double", 1): "Here:\n```ocaml\n(* twice *)\nlet double x =   2 * x\n```",  # the same solution
    ("double", 2): "```ocaml\nlet double x = x + x\n```",
    ("double", 3): "```ocaml\nlet double x = x\n```",  # passes 1 of 5
    ("is_empty", 0): "```ocaml\nlet is_empty xs = (\n```",
    ("is_empty", 1): "```ocaml\nlet is_empty xs = xs = []\n```",
    ("is_empty", 2): "```ocaml\nlet is_empty = function [] -> true | _ -> false\n```",
    ("is_empty", 3): "```ocaml\nlet is_empty xs = List.length xs = 0\n```",
}


@pytest.fixture()
def source(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in [*PROBLEMS, TRIPLE]))
    return path


def solver(fail: set | frozenset = frozenset()):
    def respond(count, body):
        user = body["messages"][-1]["content"]
        name = re.search(r"^let (?:rec )?(\w+)", user, re.M).group(1)
        if (name, body.get("seed")) in fail:
            return 500, {"error": {"message": "boom"}}, {}
        return 200, llama_server_answer(SOLUTIONS[(name, body["seed"])]), {}

    return respond


def synth(url, source, out, *extra: str) -> int:
    return main(
        [
            "--teacher",
            url,
            "--data",
            str(source),
            "--out",
            str(out),
            "--no-progress",
            "--retries",
            "0",
            *extra,
        ]
    )


def read(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_solutions_keep_the_best_distinct_passing_answers(source, tmp_path):
    out = tmp_path / "solutions.jsonl"
    with ScriptedServer(solver()) as server:
        assert synth(server.base_url, source, out, "--n", "4", "--keep", "2") == 0
    rows = read(out)
    assert [(r["id"], r["solution"]) for r in rows] == [
        ("double.synth0", "let double x = 2 * x"),
        ("double.synth1", "let double x = x + x"),
        ("is_empty.synth0", "let is_empty xs = xs = []"),
        ("is_empty.synth1", "let is_empty xs = List.length xs = 0"),
    ]
    summary = json.loads((tmp_path / "solutions.jsonl.summary.json").read_text())
    assert summary["kept"] == 4
    assert summary["rejected"] == {"does_not_compile": 1, "duplicate": 1, "fails_tests": 1, "over_keep": 1}
    assert summary["requests"] == {"made": 8, "failed": 0, "reused_from_ledger": 0}
    assert summary["tokens"] == {"prompt": 8 * 40, "completion": 8 * 7}
    assert summary["eval_problems_skipped"] == 1
    assert not any("triple" in json.dumps(c) for c in server.calls)  # eval problems are never asked about
    p = rows[0]["provenance"]
    assert (p["teacher"], p["model"], p["temperature"], p["sample"]) == (server.base_url, "scripted", 0.8, 0)
    assert p["scores"]["total_reward"] == 1.0 and len(p["verifier"]) == 12
    # the loaders read it: as SFT pairs and as training problems
    assert len(load_sft_pairs(str(out))) == 4
    assert [q.id for q in load_problems(str(out))[0]] == [r["id"] for r in rows]


def test_an_interrupted_run_continues_and_asks_nothing_twice(source, tmp_path):
    out = tmp_path / "s.jsonl"
    with ScriptedServer(solver(fail={("is_empty", 3)})) as server:
        assert synth(server.base_url, source, out, "--n", "4") == 1  # one request failed: is_empty undecided
    assert json.loads((tmp_path / "s.jsonl.summary.json").read_text())["undecided"] == 1
    assert [r["id"] for r in read(out)] == ["double.synth0", "double.synth1"]
    with ScriptedServer(solver()) as again:
        assert synth(again.base_url, source, out, "--n", "4") == 0
    assert len(again.calls) == 1  # only the missing answer: is_empty's sample 3
    assert again.calls[0]["seed"] == 3 and "let is_empty" in again.calls[0]["messages"][-1]["content"]
    summary = json.loads((tmp_path / "s.jsonl.summary.json").read_text())
    assert summary["requests"] == {"made": 1, "failed": 0, "reused_from_ledger": 3} and summary["kept"] == 4
    with ScriptedServer(solver()) as third:
        assert synth(third.base_url, source, out, "--n", "3") == 2  # other settings: refused, not mixed


NEW = {
    "id": "sum_pairs",
    "prompt": "(** [sum_pairs ps] adds up both members of every pair in [ps].\n    Example: [sum_pairs [(1, 2); (3, 4)] = 10]. *)\nlet sum_pairs (ps : (int * int) list) : int =",
    "tests": [
        "sum_pairs [] = 0",
        "sum_pairs [(1, 2)] = 3",
        "sum_pairs [(1, 2); (3, 4)] = 10",
        "sum_pairs [(-1, 1)] = 0",
        "sum_pairs [(5, 0); (0, 5)] = 10",
    ],
    "solution": "let sum_pairs ps = List.fold_left (fun acc (a, b) -> acc + a + b) 0 ps",
    "difficulty": "easy",
    "tags": ["lists"],
}
PROBLEM_ANSWERS = {
    0: NEW,
    1: {"id": "count_evens", "prompt": "(** [count_evens xs] is how many even integers [xs] holds.\n    Example: [count_evens [1; 2; 4] = 2]. *)\nlet count_evens (xs : int list) : int =",
        "tests": ["count_evens [] = 0", "count_evens [1; 2; 4] = 2", "count_evens [3] = 0", "count_evens [0; -2] = 2"],
        "solution": "let count_evens xs = List.length xs"},  # its reference fails (a different exercise from 0)
    2: {"id": "uses_unbound", "prompt": "(** [uses_unbound x] is [x]. *)\nlet uses_unbound (x : int) : int =",
        "tests": ["uses_unbound 1 = nowhere 1"], "solution": "let uses_unbound x = x"},  # tests do not compile
    3: {"id": "always_true", "prompt": "(** [always_true x] is [x + 1] for every integer. *)\nlet always_true (x : int) : int =",
        "tests": ["1 = 1", "true"], "solution": "let always_true x = x + 1"},  # a stub passes every test
    4: {**NEW, "id": "double"},  # the id exists
    5: {**TRIPLE, "id": "triple_again", "prompt": TRIPLE["prompt"].replace("triple", "triple_again"),
        "tests": ["triple_again 1 = 3"], "solution": "let triple_again x = 3 * x", "split": "train"},  # an eval problem
    6: "Sure! Here is a nice problem about lists.",
    7: {**NEW, "id": "sum_pairs_2"},  # the same exercise as 0
}  # fmt: skip


def teacher_of_problems(count, body):
    answer = PROBLEM_ANSWERS[body["seed"]]
    text = answer if isinstance(answer, str) else "```json\n" + json.dumps(answer) + "\n```"
    return 200, llama_server_answer(text), {}


def test_new_problems_are_kept_only_when_validated_like_the_bundled_set(source, tmp_path):
    out = tmp_path / "problems.jsonl"
    with ScriptedServer(teacher_of_problems) as server:
        assert synth(server.base_url, source, out, "--mode", "problems", "--n", "8") == 0
    summary = json.loads((tmp_path / "problems.jsonl.summary.json").read_text())
    assert summary["kept"] == 1
    assert summary["rejected"] == {
        "duplicate_id": 1, "malformed": 1, "near_duplicate": 2, "reference_fails": 1,
        "tests_do_not_compile": 1, "tests_do_not_discriminate": 1,
    }  # fmt: skip
    rows = read(out)
    assert len(rows) == 1 and rows[0]["id"] in ("sum_pairs", "sum_pairs_2")
    assert rows[0]["split"] == "train" and rows[0]["provenance"]["mode"] == "problems"
    assert load_problems(str(out))[0][0].solution == NEW["solution"]
    shown = " ".join(c["messages"][-1]["content"] for c in server.calls)
    assert "triple" not in shown and "double" in shown  # examples come from the train split only
    ledger = [json.loads(x) for x in (tmp_path / "problems.jsonl.ledger.jsonl").read_text().splitlines()]
    reasons = {d["rejected"][0]: d["why"] for d in ledger if d.get("event") == "decision" and d["rejected"]}
    assert reasons["near_duplicate"].startswith("prompt ")
    assert "similar to" in reasons["near_duplicate"]


def test_merge_writes_the_existing_train_problems_too(source, tmp_path):
    out = tmp_path / "merged.jsonl"
    with ScriptedServer(solver()) as server:
        assert synth(server.base_url, source, out, "--n", "4", "--keep", "1", "--merge") == 0
    ids = [r["id"] for r in read(out)]
    assert ids == ["double", "is_empty", "double.synth0", "is_empty.synth0"]
    assert len(load_problems(str(out))[0]) == 4


def test_multipl_e_is_never_a_source(tmp_path, capsys):
    mbpp = multipl_e_file()
    assert (
        main(["--teacher", "http://127.0.0.1:9/v1", "--data", str(mbpp), "--out", str(tmp_path / "x.jsonl")])
        == 2
    )
    assert "MultiPL-E is for evaluation only" in capsys.readouterr().err


def test_an_unreachable_teacher_stops_at_start(source, tmp_path, capsys):
    from rlvr.service.process import free_port

    code = main(
        [
            "--teacher",
            f"http://127.0.0.1:{free_port()}/v1",
            "--data",
            str(source),
            "--out",
            str(tmp_path / "x.jsonl"),
            "--retries",
            "0",
        ]
    )
    assert code == 2 and "cannot list its models" in capsys.readouterr().err


def test_the_ledger_survives_odd_line_breaks_and_a_torn_last_line(tmp_path):
    from rlvr.synth.ledger import Ledger

    path = tmp_path / "l.jsonl"
    ledger = Ledger(path, {"mode": "x"})
    ledger.answer("a#0", text="one\u2028two\x85three")  # str.splitlines would split these
    ledger.answer("a#1", text="fine")
    with path.open("ab") as f:
        f.write(b'{"event": "answer", "key": "a#2", "te')  # killed mid-write
    again = Ledger(path, {"mode": "x"})
    assert again.answers["a#0"]["text"] == "one\u2028two\x85three" and sorted(again.answers) == ["a#0", "a#1"]
    again.answer("a#2", text="redone")
    assert sorted(Ledger(path, {"mode": "x"}).answers) == ["a#0", "a#1", "a#2"]
