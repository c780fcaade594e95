"""Infrastructure failures are never scores: missing tools are named, sandbox failures are masked."""

import json

import pytest

from rlvr.data import load_problems, multipl_e_file
from rlvr.verifier import OCamlNotFound, Verifier, VerifierConfig, find_ocaml


def test_missing_ocaml_is_reported_with_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(OCamlNotFound, match="apt-get install ocaml-nox"):
        find_ocaml()


def test_sandbox_that_cannot_start_gives_none_and_is_counted(sum_problem):
    with Verifier(VerifierConfig(retries=1)) as v:
        v.sandbox.bwrap = "/nonexistent/bwrap"
        o = v.score(sum_problem, "List.fold_left ( + ) 0 xs")
        assert (o.total_reward, o.stage) == (None, "infra_error")
        assert v.infra_failures == 1


def test_a_problem_whose_tests_cannot_compile_is_reported_as_invalid(verifier):
    problems, _ = load_problems(str(multipl_e_file("mbpp-ml.jsonl")))
    broken = next(p for p in problems if p.id == "mbpp_117_list_to_float")
    o = verifier.score(broken, "[]")
    assert (o.stage, o.total_reward) == ("infra_error", None)
    assert o.error.startswith("problem 'mbpp_117_list_to_float' is invalid: its test code does not compile")


def test_bad_verifier_settings_name_the_variable():
    from rlvr.envconf import ConfigError

    with pytest.raises(ConfigError, match="VERIFIER_SANDBOX='docker': expected one of bwrap, rlimit"):
        VerifierConfig.from_env({"VERIFIER_SANDBOX": "docker"})
    with pytest.raises(ConfigError, match="VERIFIER_RUN_TIMEOUT='fast': expected a number"):
        VerifierConfig.from_env({"VERIFIER_RUN_TIMEOUT": "fast"})
    with pytest.raises(ConfigError, match="VERIFIER_MEMORY_MB='32': expected an integer >= 64"):
        VerifierConfig.from_env({"VERIFIER_MEMORY_MB": "32"})
    with pytest.raises(ConfigError, match="VERIFIER_TEST_BUDGET='0'"):
        VerifierConfig.from_env({"VERIFIER_TEST_BUDGET": "0"})


def test_rlimit_mode_warns_loudly_and_still_scores(sum_problem):
    with (
        pytest.warns(RuntimeWarning, match="WITHOUT bubblewrap"),
        Verifier(VerifierConfig(sandbox="rlimit")) as v,
    ):
        assert v.score(sum_problem, "List.fold_left ( + ) 0 xs").total_reward == 1.0
        assert v.score(sum_problem, "let sum_list xs = 0").total_reward == 0.61


def test_outcome_serialises_to_json(verifier, sum_problem):
    d = json.loads(json.dumps(verifier.score(sum_problem, "0").to_dict()))
    assert d["id"] == "sum_list"
