"""Run limits: CPU time is what stops a test run; the wall clock is only a backstop (doc/security.md)."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest

from rlvr.problems import Problem
from rlvr.verifier.harness import MINOR_HEAP_WORDS
from rlvr.verifier.sandbox import Limits, Sandbox
from rlvr.verifier.time_limits import derive

LOOP = "let rec f x = f (x + 1)\nlet () = f 0\n"
IGNORES_SIGXCPU = "let () = Sys.set_signal Sys.sigxcpu Sys.Signal_ignore\n" + LOOP
FLOOD = "let () = while true do print_string (String.make 65536 'x') done\n"


def bytecode(tmp_path: Path, source: str) -> Path:
    (tmp_path / "p.ml").write_text(source)
    subprocess.run(["ocamlc", "-o", "p", "p.ml"], cwd=tmp_path, check=True, capture_output=True)
    return tmp_path / "p"


def sandbox(mode: str) -> Sandbox:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rlimit mode warns at start, as it should
        return Sandbox(mode)


@pytest.mark.parametrize("mode", ["bwrap", "rlimit"])
def test_a_run_killed_by_its_cpu_limit_is_a_timeout(tmp_path, mode):
    r = sandbox(mode).run_bytecode(bytecode(tmp_path, LOOP), Limits(wall_s=20, cpu_s=1))
    assert (r.timed_out, r.cpu_limited) == (True, True)


@pytest.mark.parametrize("mode", ["bwrap", "rlimit"])
def test_the_cpu_limit_is_enforced_to_a_few_milliseconds(tmp_path, mode):
    r = sandbox(mode).run_bytecode(bytecode(tmp_path, LOOP), Limits(wall_s=20, cpu_s=0.2))
    assert r.cpu_limited
    assert 0.2 <= r.cpu_s < 0.25  # a few ms quiet; the supervisor's thread can be late on a busy machine


def test_a_run_reports_the_cpu_time_it_used(tmp_path):
    r = sandbox("bwrap").run_bytecode(bytecode(tmp_path, 'let () = print_string "ok"\n'), Limits(cpu_s=1))
    assert (r.returncode, r.stdout, r.cpu_limited) == (0, "ok", False)
    assert 0 < r.cpu_s < 0.1


def test_the_cpu_limit_stops_a_loop_long_before_the_wall_cap(tmp_path):
    r = sandbox("bwrap").run_bytecode(bytecode(tmp_path, LOOP), Limits(wall_s=20, cpu_s=1))
    assert r.duration_s < 10


def test_a_program_that_ignores_sigxcpu_dies_at_the_hard_cpu_limit_as_a_timeout(tmp_path):
    r = sandbox("bwrap").run_bytecode(bytecode(tmp_path, IGNORES_SIGXCPU), Limits(wall_s=20, cpu_s=1))
    assert (r.timed_out, r.cpu_limited) == (True, True)


def test_a_program_killed_for_its_output_is_not_a_timeout(tmp_path):
    r = sandbox("bwrap").run_bytecode(bytecode(tmp_path, FLOOD), Limits(wall_s=20, cpu_s=5))
    assert (r.flooded, r.timed_out, r.cpu_limited) == (True, False, False)


def test_a_run_may_use_three_times_its_cpu_limit_of_wall_clock(verifier):
    lim = verifier._run_limits(derive(None, 1.0, 3.0), 10.0)
    assert (lim.cpu_s, lim.wall_s) == (1.0, 3.0)


def test_a_short_cpu_limit_still_gets_half_a_second_more_of_wall_clock(verifier):
    lim = verifier._run_limits(derive(0.02, 1.0, 3.0), 10.0)
    assert (lim.cpu_s, lim.wall_s) == (0.11, 0.61)


def test_the_wall_cap_of_a_run_never_exceeds_what_is_left_of_the_budget(verifier):
    assert verifier._run_limits(derive(None, 1.0, 3.0), 0.5).wall_s == 0.5


def test_an_assertion_that_loops_fails_alone_with_the_exact_partial_score(verifier, sum_problem):
    code = "let rec sum_list xs = if xs = [5] then sum_list xs else List.fold_left ( + ) 0 xs"
    o = verifier.score(sum_problem, code)
    assert (o.stage, o.tests_passed, o.total_reward) == ("timeout", 4, 0.87)


def test_the_test_program_runs_with_the_larger_minor_heap(verifier):
    # the test expression reads it (an answer may not name Gc)
    p = Problem(
        id="gc_probe",
        prompt="(** probe *)\nlet gc_probe (u : unit) : unit =",
        tests=(f"(gc_probe (); (Gc.get ()).Gc.minor_heap_size = {MINOR_HEAP_WORDS})",),
    )
    o = verifier.score(p, "()")
    assert (o.stage, o.tests_passed) == ("pass", 1)
