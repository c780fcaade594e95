"""VERIFIER_NATIVE=1: the test program is built with ocamlopt and run as a native executable, in the
same sandbox, with the same limits (its stack through RLIMIT_STACK instead of OCAMLRUNPARAM)."""

from __future__ import annotations

import pytest

from rlvr.problems import Problem
from rlvr.verifier import Verifier, VerifierConfig

LONG = Problem(
    id="length_tr",
    prompt="(** [length_tr xs] is the length of [xs]. *)\nlet length_tr (xs : int list) : int =",
    tests=("length_tr [1; 2] = 2", "length_tr (List.init 100_000 (fun i -> i)) = 100_000"),
)


@pytest.fixture(scope="module")
def native():
    with Verifier(VerifierConfig(native=True)) as v:
        yield v


def test_a_correct_answer_passes_natively(native, sum_problem):
    o = native.score(sum_problem, "List.fold_left ( + ) 0 xs")
    assert (o.stage, o.total_reward) == ("pass", 1.0)


def test_a_loop_is_a_timeout_natively(native, sum_problem):
    code = "let rec sum_list xs = if xs = [5] then sum_list xs else List.fold_left ( + ) 0 xs"
    o = native.score(sum_problem, code)
    assert (o.stage, o.tests_passed, o.total_reward) == ("timeout", 4, 0.87)


def test_non_tail_recursion_overflows_the_native_stack_too(native):
    o = native.score(LONG, "let rec length_tr = function [] -> 0 | _ :: t -> 1 + length_tr t")
    assert (o.stage, o.tests_passed) == ("test_failure", 1)
    assert "raised Stack overflow" in o.error


def test_a_type_error_is_counted_natively(native, sum_problem):
    o = native.score(sum_problem, 'xs + "a"')
    assert (o.stage, o.type_errors) == ("type_error", 1)
