"""Per-problem time limits from the reference solution (rlvr/verifier/time_limits.py, doc/reward.md)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from rlvr.problems import Problem
from rlvr.verifier import Verifier, VerifierConfig
from rlvr.verifier.core import RUNTIME_TAMPERING
from rlvr.verifier.harness import STACK_CHANGED, assemble_candidate, read_report
from rlvr.verifier.time_limits import TimeLimit, derive

REFERENCE = "List.fold_left ( + ) 0 xs"
LOOPS_ON_5 = "let rec sum_list xs = if xs = [5] then sum_list xs else List.fold_left ( + ) 0 xs"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of the test's own, so that every measurement here is made afresh."""
    monkeypatch.setenv("OCAMLER_CACHE", str(tmp_path))
    return tmp_path / "time-limits"


@pytest.fixture
def with_reference(sum_problem) -> Problem:
    return replace(sum_problem, solution=REFERENCE)


def test_a_fast_reference_gets_the_floor():
    assert derive(0.0, 1.0, 3.0) == TimeLimit(run_cpu_s=0.05, budget_s=0.2, reference_cpu_s=0.0)


def test_a_ten_millisecond_reference_gets_eighty():
    assert derive(0.01, 1.0, 3.0) == TimeLimit(run_cpu_s=0.08, budget_s=0.32, reference_cpu_s=0.01)


def test_a_limit_is_three_times_the_reference_plus_fifty_milliseconds():
    assert derive(0.1, 1.0, 3.0) == TimeLimit(run_cpu_s=0.35, budget_s=1.4, reference_cpu_s=0.1)


def test_a_slow_reference_is_capped_at_the_fixed_limits():
    assert derive(0.5, 1.0, 3.0) == TimeLimit(run_cpu_s=1.0, budget_s=3.0, reference_cpu_s=0.5)


def test_no_reference_means_the_fixed_limits():
    assert derive(None, 1.0, 3.0) == TimeLimit(run_cpu_s=1.0, budget_s=3.0, reference_cpu_s=None)


def test_a_problem_without_a_reference_keeps_the_fixed_limits(verifier, sum_problem):
    assert verifier.time_limit(sum_problem) == TimeLimit(1.0, 3.0, None)


def test_a_reference_that_fails_its_tests_gives_the_fixed_limits(cache, sum_problem):
    wrong = replace(sum_problem, solution="0")
    with Verifier() as v:
        assert v.time_limit(wrong) == TimeLimit(1.0, 3.0, None)


def test_a_problem_with_a_reference_gets_a_limit_derived_from_its_cpu_time(cache, with_reference):
    with Verifier() as v:
        limit = v.time_limit(with_reference)
    assert 0 < limit.reference_cpu_s < 0.1
    assert limit == derive(limit.reference_cpu_s, 1.0, 3.0)


def test_fixed_mode_ignores_the_reference(cache, with_reference):
    with Verifier(VerifierConfig(time_limits="fixed")) as v:
        assert v.time_limit(with_reference) == TimeLimit(1.0, 3.0, None)
        assert v.stats["reference_measurements"] == 0


def test_a_measurement_is_kept_on_disk_for_the_next_verifier(cache, with_reference):
    with Verifier() as v:
        first = v.time_limit(with_reference)
    [path] = cache.glob("*.json")
    record = json.loads(path.read_text())
    [measured] = record["values"].values()
    assert derive(measured, 1.0, 3.0) == first
    assert "OCaml" in record["context"]
    with Verifier() as v:
        assert v.time_limit(with_reference) == first
        assert v.stats["reference_measurements"] == 0


def test_a_problem_whose_tests_change_is_measured_again(cache, with_reference):
    with Verifier() as v:
        v.time_limit(with_reference)
    with Verifier() as v:
        v.time_limit(replace(with_reference, tests=with_reference.tests[:-1]))
        assert v.stats["reference_measurements"] == 1


def test_calibrate_gives_every_problem_its_limit(cache, with_reference, sum_problem):
    other = replace(with_reference, id="sum_again", tests=with_reference.tests[:3])
    with Verifier() as v:
        limits = v.calibrate([with_reference, other])
        assert sorted(limits) == ["sum_again", "sum_list"]
        assert v.stats["reference_measurements"] == 2


def test_a_loop_times_out_at_its_problems_limit_and_the_outcome_says_which(cache, with_reference):
    with Verifier() as v:
        limit = v.time_limit(with_reference)
        o = v.score(with_reference, LOOPS_ON_5)
    assert (o.stage, o.tests_passed, o.total_reward) == ("timeout", 4, 0.87)
    assert o.time_limit_s == limit.run_cpu_s
    assert f"timed out (limit: {limit.describe()})" in o.error
    assert limit.run_cpu_s < 0.2  # the hanging run cost this much CPU (test_cpu_supervisor.py), not 1 s


def test_a_passing_answer_records_the_limit_it_ran_under(cache, with_reference):
    with Verifier() as v:
        o = v.score(with_reference, REFERENCE)
        assert (o.total_reward, o.time_limit_s) == (1.0, v.time_limit(with_reference).run_cpu_s)


def test_an_answer_that_does_not_compile_has_no_time_limit(verifier, sum_problem):
    assert verifier.score(sum_problem, "xs +").time_limit_s is None


def test_the_test_program_runs_with_the_configured_stack(verifier):
    p = Problem(
        id="stack_probe",
        prompt="(** probe *)\nlet stack_probe (u : unit) : unit =",
        tests=(f"(stack_probe (); (Gc.get ()).Gc.stack_limit = {verifier.config.stack_words})",),
    )
    o = verifier.score(p, "()")
    assert (o.stage, o.tests_passed) == ("pass", 1)


RAISE_THEN_RESTORE = (
    "let rec len = function [] -> 0 | _ :: t -> 1 + len t\n"
    "let sum_list xs =\n"
    "  let c = Gc.get () in\n"
    "  Gc.set { c with Gc.stack_limit = 1 lsl 28 };\n"
    "  ignore (len (List.init 200_000 Fun.id));\n"
    "  Gc.set c;\n"
    "  List.fold_left ( + ) 0 xs"
)


def test_an_answer_that_names_gc_gets_no_test_credit(verifier, sum_problem):
    # it could raise the stack limit, recurse, and put the limit back before the harness looks
    o = verifier.score(sum_problem, RAISE_THEN_RESTORE)
    assert (o.stage, o.tests_passed, o.total_reward) == ("test_failure", 0, 0.35)
    assert o.error == RUNTIME_TAMPERING


def test_an_answer_that_declares_an_external_primitive_gets_no_test_credit(verifier, sum_problem):
    code = 'external set : Stdlib.Gc.control -> unit = "caml_gc_set"\nlet sum_list xs = List.fold_left ( + ) 0 xs'
    o = verifier.score(sum_problem, code)
    assert (o.tests_passed, o.error) == (0, RUNTIME_TAMPERING)


def test_a_stack_limit_changed_during_a_test_fails_that_test(verifier):
    # the harness's own check, behind the one on the answer's source: here the test itself changes it
    p = Problem(
        id="stack_change",
        prompt="(** probe *)\nlet stack_change (u : unit) : unit =",
        tests=("(stack_change (); Gc.set { (Gc.get ()) with Gc.stack_limit = 1 lsl 20 }; true)", "true"),
    )
    o = verifier.score(p, "()")
    assert o.tests_passed == 0
    assert STACK_CHANGED.removeprefix("exn ") in o.error


LONG = Problem(
    id="length_tr",
    prompt="(** [length_tr xs] is the length of [xs], for lists of any length. *)\nlet length_tr (xs : int list) : int =",
    tests=("length_tr [1; 2] = 2", "length_tr (List.init 100_000 (fun i -> i)) = 100_000"),
)


def test_a_non_tail_recursive_answer_overflows_the_small_stack_on_100k_elements(verifier):
    code = "let rec length_tr = function [] -> 0 | _ :: t -> 1 + length_tr t"
    o = verifier.score(LONG, code)
    assert (o.tests_passed, o.stage) == (1, "test_failure")
    assert "raised Stack overflow" in o.error


def test_a_tail_recursive_answer_passes_on_100k_elements(verifier):
    code = "let length_tr xs = List.fold_left (fun n _ -> n + 1) 0 xs"
    assert verifier.score(LONG, code).total_reward == 1.0


def test_a_problem_check_is_kept_on_disk_for_the_next_verifier(cache, sum_problem):
    with Verifier() as v:
        assert v.check_problem(sum_problem) is None
        assert v.stats["problem_checks"] == 1
    with Verifier() as v:
        assert v.check_problem(sum_problem) is None
        assert v.stats["problem_checks"] == 0


def test_an_invalid_problem_stays_invalid_from_the_disk_cache(cache, sum_problem):
    broken = replace(sum_problem, id="broken", tests=('sum_list [] = "zero"',))
    with Verifier() as v:
        first = v.check_problem(broken)
    with Verifier() as v:
        assert v.check_problem(broken) == first
        assert v.stats["problem_checks"] == 0
    assert first and "does not compile" in first


def test_the_test_program_reports_its_own_cpu_time_when_done(verifier, sum_problem):
    """What a reference is timed by: the program's own count, exact where the sandbox polls."""
    burn = "let t = Sys.time () in while Sys.time () -. t < 0.05 do () done; List.fold_left ( + ) 0 xs"
    p = replace(sum_problem, tests=sum_problem.tests[:1])
    candidate, _full, _ = assemble_candidate(p.signature, burn)
    w = verifier._worker()
    verifier._write_units(w, candidate, p)
    assert verifier._compile(w, ["-o", "prog", w.nonce_files[1], "candidate.ml", "tests.ml"]).returncode == 0
    run = verifier._run_program(
        w.work / "prog", verifier._run_limits(derive(None, 1.0, 3.0), 3.0), "a" * 32, 0
    )
    report = read_report(run.marker_lines, "a" * 32, 1, 0)
    assert report.done and 0.05 <= report.cpu_s < 0.07


def test_timing_the_reference_first_does_not_score_the_reference_for_the_answer(cache, with_reference):
    # The first answer seen for a problem triggers the reference's timing in the same worker directory.
    with Verifier(VerifierConfig(jobs=1)) as v:
        o = v.score(with_reference, "0")
        assert v.stats["reference_measurements"] == 1
    assert (o.stage, o.tests_passed) == ("test_failure", 2)  # "0" is right for [] and [-1; 1] only


def test_gc_named_in_a_comment_changes_nothing(verifier, sum_problem):
    o = verifier.score(sum_problem, "(* no Gc tricks, no external calls *)\nList.fold_left ( + ) 0 xs")
    assert (o.stage, o.tests_passed) == ("pass", 5)
