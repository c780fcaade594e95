"""The OCaml environment (rlvr.environment): what a check tells the model, what it never tells it,
its limits, the episode's reward, and its TRL face. Real OCaml and the real sandbox throughout."""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path

import pytest

from rlvr.envconf import ConfigError
from rlvr.environment import (
    Checker,
    EnvironmentSettings,
    OCamlEnvironment,
    environment_factory,
    final_answer,
    tool_chat_template,
)
from rlvr.grpo.config import GRPOTrainConfig
from rlvr.grpo.rewards import RewardContext, make_reward_function
from rlvr.problems import Problem

PROMPT = (
    "(** [sum_list xs] returns the sum of the integers in [xs].\n"
    "    Examples: [sum_list [1; 2; 3] = 6], [sum_list [] = 0]. *)\n"
    "let sum_list (xs : int list) : int ="
)
# hidden tests: the distinctive numbers must never reach the model
HIDDEN = ("sum_list [] = 0", "sum_list [1; 2; 3] = 6", "sum_list [40961; 1] = 40962", "sum_list [-7] = -7")
CORRECT = "let sum_list xs = List.fold_left ( + ) 0 xs"


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(id="sum_list", prompt=PROMPT, tests=HIDDEN, solution=CORRECT)


def make_env(verifier, problem, **settings) -> OCamlEnvironment:
    env = OCamlEnvironment(Checker(verifier, [problem], EnvironmentSettings(name="ocaml", **settings)))
    env.reset(problem_id=problem.id, prompt=[])
    return env


# -- what a check says --------------------------------------------------------------------------


def test_a_correct_answer_compiles_and_holds_every_example(verifier, problem):
    env = make_env(verifier, problem)
    assert env.check(CORRECT) == "Your code compiles, and all 2 of the problem's examples hold."


def test_a_type_error_reads_as_the_compiler_prints_it_with_lines_of_the_models_code(verifier, problem):
    env = make_env(verifier, problem)
    text = env.check("let sum_list xs =\n  List.fold_left ( +. ) 0 xs")
    assert text.startswith("Line 2, characters 24-25:\n2 |   List.fold_left ( +. ) 0 xs\n")
    assert (
        "Error: This expression has type int but an expression was expected of type\n         float" in text
    )
    assert "candidate.ml" not in text


def test_a_body_only_answer_counts_lines_from_the_body(verifier, problem):
    env = make_env(verifier, problem)
    assert env.check("List.fold_left ( +. ) 0. xs").startswith(
        "Line 1, characters 25-27:\n1 | List.fold_left ( +. ) 0. xs\n"
    )


def test_a_syntax_error_names_its_line(verifier, problem):
    env = make_env(verifier, problem)
    assert env.check("let sum_list xs =\n  match xs with\n  | [] -> 0\n  | x :: r -> x +").startswith(
        "Line 5, characters 0-0:\nError: Syntax error"
    )


def test_several_type_errors_are_counted(verifier, problem):
    env = make_env(verifier, problem)
    text = env.check('let helper = 1 + "a"\nlet other = 2 +. 1\nlet sum_list xs = 0')
    assert text.startswith("Line 1, characters 17-20:")
    assert text.endswith("(2 independent type errors in all; this is the first.)")


def test_failing_examples_are_listed_with_what_happened(verifier, problem):
    env = make_env(verifier, problem)
    assert env.check("let sum_list xs = List.length xs") == (
        "Your code compiles, but 1 of the problem's 2 examples does not hold:\n"
        "- `sum_list [1; 2; 3] = 6` is false"
    )
    assert env.check("let sum_list xs = List.hd xs + List.fold_left ( + ) 0 (List.tl xs)") == (
        "Your code compiles, but 1 of the problem's 2 examples does not hold:\n"
        '- `sum_list [] = 0` raised Failure("tl")'
    )


def test_a_wrong_type_is_reported_against_the_signature(verifier, problem):
    env = make_env(verifier, problem)
    text = env.check('let sum_list xs = String.concat "" xs')
    assert text.startswith(
        "Your code compiles on its own, but `sum_list` does not have the type the problem's signature asks for:\n"
        "Error: "
    )


def test_the_hidden_tests_are_never_shown(verifier, problem):
    """An answer right on the examples and wrong on a hidden test: the check says all examples hold
    (the hidden test never ran); the hidden tests' text is in no feedback."""
    env = make_env(verifier, problem, max_tool_calls=10)
    answers = [
        "let sum_list xs = match xs with [] -> 0 | [1; 2; 3] -> 6 | _ -> 1",
        "let sum_list xs = List.length xs",
        "let sum_list xs = assert false",
        'let sum_list (xs : string list) = ""',
    ]
    texts = [env.check(a) for a in answers]
    assert texts[0] == "Your code compiles, and all 2 of the problem's examples hold."
    for text in texts:
        assert "40961" not in text and "-7" not in text
    assert verifier.score(problem, answers[0]).tests_passed == 2  # the hidden tests do fail it


def test_compile_feedback_runs_no_example(verifier, problem):
    env = make_env(verifier, problem, feedback="compile")
    assert env.check("let sum_list xs = 42") == (
        "Your code compiles (it type-checks against the signature and builds)."
    )
    assert env.check('let sum_list xs = "a"').startswith("Your code compiles on its own, but `sum_list`")


def test_a_problem_without_examples_checks_the_signature_only(verifier):
    bare = Problem(id="bare", prompt="(** Add one. *)\nlet incr1 (n : int) : int =", tests=("incr1 1 = 2",))
    env = make_env(verifier, bare)
    assert env.check("n + 1") == "Your code compiles. The problem states no examples to run."
    assert env.check("n +. 1").startswith("Line 1, characters 0-1:")
    assert env.check("let incr1 n = n +. 1.").startswith(
        "Your code compiles on its own, but `incr1` does not"
    )


def test_an_empty_answer_is_told_to_send_code(verifier, problem):
    env = make_env(verifier, problem)
    assert env.check("   ").startswith("There is no code to check")


# -- limits ---------------------------------------------------------------------------------------


def test_checks_past_the_limit_are_refused_without_running(verifier, problem):
    env = make_env(verifier, problem, max_tool_calls=1)
    env.check(CORRECT)
    assert (
        env.check(CORRECT) == "No checks left (1 per problem): give your final answer in an ```ocaml block."
    )
    assert (env.checks, env.refused) == (1, 1)


def test_code_past_the_size_limit_is_refused(verifier, problem):
    env = make_env(verifier, problem, max_code_bytes=64)
    assert env.check(CORRECT + " " * 64) == "Not checked: the code is longer than 64 bytes."
    assert env.checks == 0


def test_feedback_is_cut_to_the_byte_limit(verifier, problem):
    env = make_env(verifier, problem, max_output_bytes=80)
    text = env.check("let sum_list xs =\n  List.fold_left ( +. ) 0 xs")
    assert len(text.encode()) <= 80 and text.endswith("... (cut)")


def test_the_sandbox_time_budget_ends_the_checks(verifier, problem):
    env = make_env(verifier, problem, sandbox_budget_s=0.2, max_tool_calls=10)
    env.check("let () = while true do () done\nlet sum_list xs = 0")
    assert env.sandbox_s >= 0.2
    assert env.check(CORRECT).startswith("No sandbox time left")


# -- an attack inside a tool call is contained ---------------------------------------------------


def test_an_attack_inside_a_tool_call_is_contained(verifier, problem, tmp_path):
    """Code sent to the tool runs in the verifier's sandbox: no file outside, no secret, no network,
    no process that outlives it, and the check returns in bounded time."""
    marker = tmp_path / "pwned"
    os.environ["ENV_TEST_SECRET"] = "hunter2-secret"
    env = make_env(verifier, problem, max_tool_calls=10)
    attacks = [
        f'let sum_list xs = ignore (Sys.command "touch {marker}"); 6',
        f'let () = let oc = open_out "{marker}" in output_string oc "x"; close_out oc\nlet sum_list xs = 6',
        'let sum_list xs = failwith (Sys.getenv "ENV_TEST_SECRET")',
        'let sum_list xs = ignore (Sys.command "curl -s http://127.0.0.1:1/ &"); 6',
        "let () = while true do ignore (Unix.fork ()) done\nlet sum_list xs = 0",
        "let rec sum_list xs = 1 + sum_list xs",
    ]
    start = time.monotonic()
    texts = [env.check(a) for a in attacks]
    assert time.monotonic() - start < 60
    assert not marker.exists()
    assert all("hunter2" not in t for t in texts)
    assert "raised Not_found" in texts[2]  # the sandbox's environment is empty
    assert texts[4].startswith(
        "Your code type-checks, but it does not build: Error: Module `Unix' is unavailable"
    )
    assert texts[5].endswith("- `sum_list [] = 0` raised Stack overflow")  # the small stack holds
    del os.environ["ENV_TEST_SECRET"]


# -- the final answer and the episode's reward ---------------------------------------------------


def test_the_final_answer_is_the_last_ocaml_block_of_the_models_turns():
    episode = [
        {"role": "assistant", "content": "```ocaml\nlet f = 1\n```", "tool_calls": [{"function": {}}]},
        {"role": "tool", "name": "check", "content": "```ocaml\nlet f = 666\n```"},
        {"role": "assistant", "content": "Fixed:\n```ocaml\nlet f = 2\n```\nand\n```\nlet f = 3\n```"},
        {"role": "assistant", "content": "Done."},
    ]
    assert final_answer(episode) == "```ocaml\nlet f = 3\n```"
    assert final_answer([{"role": "assistant", "content": "let f = 4"}]) == "let f = 4"
    assert final_answer("text\n```ocaml\nlet f = 5") == "```ocaml\nlet f = 5\n```"  # cut at the end
    assert final_answer([]) == ""


def test_the_episode_reward_is_the_verdict_minus_the_cost_of_each_check(verifier, problem):
    ctx = RewardContext(verifier, [problem], check_cost=0.02)
    reward = make_reward_function("ocaml", ctx)
    envs = [make_env(verifier, problem) for _ in range(3)]
    envs[1].check("let sum_list xs = 0")
    envs[2].check("let sum_list xs = 0")
    envs[2].check(CORRECT)
    answer = [{"role": "assistant", "content": f"```ocaml\n{CORRECT}\n```"}]
    wrong = [{"role": "assistant", "content": '```ocaml\nlet sum_list xs = "a"\n```'}]
    values = reward(
        prompts=[[]] * 3,
        completions=[answer, answer, wrong],
        problem_id=[problem.id] * 3,
        environments=envs,
    )
    assert values == [1.0, 0.98, round(0.21 - 0.04, 6)]


def test_an_infrastructure_failure_stays_none_whatever_the_checks(verifier, problem):
    broken = Problem(id="broken", prompt=PROMPT, tests=('sum_list [] = "no"',))
    ctx = RewardContext(verifier, [broken], check_cost=0.02)
    reward = make_reward_function("ocaml", ctx)
    env = make_env(verifier, broken)
    env.check(CORRECT)
    completion = [{"role": "assistant", "content": CORRECT}]
    assert reward(prompts=[[]], completions=[completion], problem_id=["broken"], environments=[env]) == [None]


# -- settings -------------------------------------------------------------------------------------


def test_settings_are_read_from_the_environment_variables():
    s = EnvironmentSettings.from_env(
        {
            "GRPO_ENVIRONMENT": "ocaml",
            "GRPO_MAX_TOOL_CALLS": "5",
            "ENV_FEEDBACK": "compile",
            "ENV_CHECK_COST": "0.1",
        }
    )
    assert (s.enabled, s.max_tool_calls, s.feedback, s.check_cost) == (True, 5, "compile", 0.1)
    assert not EnvironmentSettings.from_env({}).enabled


def test_the_tool_schema_raises_the_cpu_prompt_budget():
    """The schema and the hint add ~310 tokens: the cpu default of 512 would drop most bundled prompts."""
    on = GRPOTrainConfig.from_env({"GRPO_ENVIRONMENT": "ocaml"}, cuda=False, cpu_bf16=False)
    off = GRPOTrainConfig.from_env({}, cuda=False, cpu_bf16=False)
    assert (on.max_prompt_length, off.max_prompt_length) == (1024, 512)


@pytest.mark.parametrize(
    "env, named",
    [
        ({"GRPO_ENVIRONMENT": "gym"}, "GRPO_ENVIRONMENT"),
        ({"GRPO_ENVIRONMENT": "ocaml", "ENV_FEEDBACK": "tests"}, "ENV_FEEDBACK"),
        ({"GRPO_ENVIRONMENT": "ocaml", "ENV_CHECK_COST": "-1"}, "ENV_CHECK_COST"),
        ({"GRPO_ENVIRONMENT": "ocaml", "GRPO_MAX_TOOL_CALLS": "-1"}, "GRPO_MAX_TOOL_CALLS"),
        ({"GRPO_ENVIRONMENT": "ocaml", "GRPO_ALGORITHM": "rloo"}, "GRPO_ALGORITHM=grpo"),
    ],
)
def test_bad_settings_name_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        GRPOTrainConfig.from_env(env, cuda=False, cpu_bf16=False)


def test_llama_server_rollouts_are_refused_with_the_environment():
    with pytest.raises(ConfigError, match="GRPO_ROLLOUT_ENGINE=transformers"):
        GRPOTrainConfig.from_env(
            {"GRPO_ENVIRONMENT": "ocaml", "GRPO_ROLLOUT_ENGINE": "llama-server"}, cuda=False, cpu_bf16=False
        )


# -- TRL's face -----------------------------------------------------------------------------------


def test_trl_sees_one_tool_with_a_typed_schema(verifier, problem):
    from transformers.utils import get_json_schema

    env = environment_factory(Checker(verifier, [problem], EnvironmentSettings(name="ocaml")))()
    # TRL lists the class's functions: every public one but reset/get_reward becomes a tool
    public = [n for n, _ in inspect.getmembers(type(env), inspect.isfunction) if not n.startswith("_")]
    assert public == ["check", "reset"]
    schema = get_json_schema(env.check)["function"]
    assert schema["name"] == "check"
    assert schema["parameters"]["required"] == ["code"]
    assert schema["parameters"]["properties"]["code"]["type"] == "string"


def test_the_bundled_models_template_is_given_tool_calls():
    from trl.chat_template_utils import supports_tool_calling

    from rlvr.models import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model("bundled"))
    assert not supports_tool_calling(tok)
    assert "ChatML" in tool_chat_template(tok)
    assert supports_tool_calling(tok)
    assert tool_chat_template(tok) is None  # already able: left alone


def test_check_before_reset_is_an_error(verifier, problem):
    env = environment_factory(Checker(verifier, [problem], EnvironmentSettings(name="ocaml")))()
    with pytest.raises(RuntimeError, match="reset"):
        env.check(CORRECT)


def test_docs_describe_every_setting():
    doc = (Path(__file__).resolve().parent.parent / "doc" / "environment.md").read_text()
    envrc = (Path(__file__).resolve().parent.parent / ".envrc").read_text()
    for var in (
        "GRPO_ENVIRONMENT",
        "GRPO_MAX_TOOL_CALLS",
        "ENV_FEEDBACK",
        "ENV_CHECK_COST",
        "ENV_MAX_CODE_BYTES",
        "ENV_MAX_OUTPUT_BYTES",
        "ENV_SANDBOX_BUDGET_S",
    ):
        assert var in doc and var in envrc, var
