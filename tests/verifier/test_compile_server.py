"""The compile server (rlvr/verifier/compile_server.py): same verdicts as one ocamlc per job, and it
recovers from compiler bombs, a dead server and a hung server by redoing that job per process."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest

from rlvr.envconf import ConfigError
from rlvr.problems import Problem
from rlvr.verifier import Outcome, Verifier, VerifierConfig, compile_server, core

CORRECT = "let sum_list xs = List.fold_left (+) 0 xs"
BOMB = "let f0 = fun x -> (x, x)\n" + "".join(
    f"let f{i} = fun x -> f{i - 1} (f{i - 1} x)\n" for i in range(1, 30)
)
CORPUS = Path(__file__).resolve().parents[2] / "bench" / "reward_corpus.jsonl"

# Completions whose compiler output exercises the paths that a persistent compiler could get wrong:
# printer state (weak type variables, type names), errors in either unit, alerts, link errors.
SUM_CASES = [
    "List.fold_left ( + ) 0 xs",
    "```ocaml\nlet sum_list xs = 0\n```",
    'let sum_list xs = List.fold_left (+) "" xs',
    'let h1 x = x + "a"\nlet h2 y = h1 y ^ 1\nlet sum_list xs = List.length xs + "s"',
    'let sum_list xs = "six"',
    "let sum_list xs = (1 +",
    "let sum_list xs = Unix.getpid ()",
    "let r = ref []\nlet sum_list xs = List.length !r",  # '_weak1: its name must not drift
    "let r = ref []\nlet s = ref []\nlet sum_list xs = List.length !r + List.length !s",
    'let sum_list (xs : int list) : string = String.concat "" (List.map string_of_int xs)',
    "let sum_list xs = String.lowercase xs",  # a deprecated function (an alert) and a type error
    "let sum_list xs = Missing_module.f xs",
    'let () = failwith "boom"\nlet sum_list xs = 0',
    "type t = A | B\nlet sum_list xs = match xs with [] -> A | _ -> B",
    "let sum_list = fun (type a) (xs : a list) -> (List.length xs : int)",
    "module M = struct let x = 1 end\nlet sum_list xs = M.y + List.length xs",
    "let rec sum_list xs = 1 + sum_list (0 :: xs)",
    "   \n",
]


def verdict(o: Outcome) -> tuple:
    return (o.stage, o.total_reward, o.type_check, o.compile, o.tests, o.tests_passed, o.type_errors, o.error)


def corpus_sample(step: int = 9) -> list[tuple[Problem, str]]:
    """Every `step`-th row of the benchmark corpus, without the non-terminating ones (slow)."""
    out = []
    with open(CORPUS) as f:
        for n, line in enumerate(f):
            row = json.loads(line)
            if n % step or row["kind"] == "loop":
                continue
            p = row["problem"]
            out.append((Problem(id=p["id"], prompt=p["prompt"], tests=tuple(p["tests"])), row["completion"]))
    return out


@pytest.fixture()
def one_worker():
    """A verifier with a single worker, so that its one compile server can be inspected."""
    with Verifier(VerifierConfig(jobs=1)) as v:
        yield v


def only_server(v: Verifier) -> compile_server.CompileServer:
    (w,) = v._workers
    assert w.server is not None
    return w.server


def test_server_and_per_process_give_identical_outcomes(sum_problem, tree_problem):
    items = [(sum_problem, c) for c in SUM_CASES]
    items += [
        (tree_problem, "match t with Leaf -> 0 | Node (l, _, r) -> tree_size l + 1"),
        (tree_problem, "0."),
    ]
    items += corpus_sample()
    with (
        Verifier(VerifierConfig(compile_server=True)) as on,
        Verifier(VerifierConfig(compile_server=False)) as off,
    ):
        with_server = on.score_batch(items)
        per_process = off.score_batch(items)
        again = on.score_batch(items[: len(SUM_CASES)])  # a second pass over warm servers
        assert on.stats["compile_fallbacks"] == 0  # every job was answered by a server...
        assert all(w.server is not None and w.server.starts == 1 for w in on._workers)
        assert all(w.server is None for w in off._workers)  # ...and none by the other verifier
    assert len(items) > 60
    assert {o.stage for o in per_process} >= {
        "pass",
        "test_failure",
        "type_error",
        "syntax_error",
        "compile_error",
    }
    for item, a, b in zip(items, with_server, per_process):
        assert verdict(a) == verdict(b), item[1]
    assert [verdict(o) for o in again] == [verdict(o) for o in with_server[: len(SUM_CASES)]]
    weak = with_server[SUM_CASES.index("let r = ref []\nlet sum_list xs = List.length !r")]
    assert "'_weak1" in weak.error


def test_a_compiler_bomb_is_redone_per_process_and_the_server_survives(one_worker, sum_problem):
    v = one_worker
    assert v.score(sum_problem, CORRECT).total_reward == 1.0
    server = only_server(v)
    o = v.score(sum_problem, BOMB + "\nlet sum_list xs = 0")
    assert o.stage in ("timeout", "compile_error")
    assert o.total_reward <= 0.05
    assert v.stats["compile_fallbacks"] == 1
    assert v.score(sum_problem, CORRECT).total_reward == 1.0
    assert (server.starts, v.stats["compile_fallbacks"]) == (1, 1)  # the same server, no more fallbacks


def test_a_dead_server_is_replaced_and_its_job_redone_per_process(one_worker, sum_problem):
    v = one_worker
    assert v.score(sum_problem, CORRECT).total_reward == 1.0
    server = only_server(v)
    assert server._proc is not None
    os.killpg(server._proc.pid, signal.SIGKILL)
    server._proc.wait()
    assert v.score(sum_problem, "let sum_list xs = 0").total_reward == 0.61  # redone per process
    assert v.stats["compile_fallbacks"] == 1
    assert v.score(sum_problem, CORRECT).total_reward == 1.0  # a new server
    assert (server.starts, v.stats["compile_fallbacks"]) == (2, 1)


def test_a_server_that_stops_answering_is_killed(one_worker, sum_problem, monkeypatch):
    v = one_worker
    assert v.score(sum_problem, CORRECT).total_reward == 1.0
    server = only_server(v)
    # The server lets a job run 5 s (the compile timeout) but the client waits only 1 s: it looks hung.
    monkeypatch.setattr(core, "SERVER_JOB_DEADLINE_S", 30.0)
    monkeypatch.setattr(compile_server, "REPLY_MARGIN_S", -4.0)
    o = v.score(sum_problem, BOMB + "\nlet sum_list xs = 0")
    assert o.stage in ("timeout", "compile_error")
    assert server._proc is None  # killed
    monkeypatch.undo()
    assert v.score(sum_problem, CORRECT).total_reward == 1.0
    assert server.starts == 2


def test_the_setting_turns_the_server_off():
    assert VerifierConfig.from_env({}).compile_server is True
    assert VerifierConfig.from_env({"VERIFIER_COMPILE_SERVER": "0"}).compile_server is False
    assert VerifierConfig.from_env({"VERIFIER_COMPILE_SERVER": "no"}).compile_server is False  # Env's syntax
    with pytest.raises(ConfigError, match=r"VERIFIER_COMPILE_SERVER='maybe': expected 1/0 \(or true/false\)"):
        VerifierConfig.from_env({"VERIFIER_COMPILE_SERVER": "maybe"})


def test_without_ocamlfind_it_compiles_per_process_after_one_log_line(monkeypatch, caplog, sum_problem):
    monkeypatch.setattr(compile_server, "_built", {})
    real_which = compile_server.shutil.which
    monkeypatch.setattr(compile_server.shutil, "which", lambda n: None if n == "ocamlfind" else real_which(n))
    with caplog.at_level(logging.WARNING), Verifier(VerifierConfig()) as v:
        assert [o.total_reward for o in v.score_batch([(sum_problem, CORRECT)] * 3)] == [1.0] * 3
        assert v.score(sum_problem, "let sum_list xs = 0").total_reward == 0.61
        assert all(w.server is None for w in v._workers)
    lines = [r for r in caplog.records if "compile server unavailable" in r.getMessage()]
    assert len(lines) == 1
    assert "ocamlfind" in lines[0].getMessage()


def test_the_binary_is_built_once_and_cached_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("OCAMLER_CACHE", str(tmp_path))
    monkeypatch.setattr(compile_server, "_built", {})
    ocamlc = core.find_ocaml()["ocamlc"]
    first = compile_server.server_binary(ocamlc)
    assert first is not None and first.is_relative_to(tmp_path)
    stamp = first.stat().st_mtime_ns
    compile_server._built.clear()  # a new process: finds the cached binary, does not rebuild
    assert compile_server.server_binary(ocamlc) == first
    assert first.stat().st_mtime_ns == stamp
