"""Every sandbox attack and every reward hack listed in doc/security.md, against the real sandbox and compiler.

Each must earn no test credit it did not compute, and harm nothing: after the worst of them the next
correct completion still scores 1.0.
"""

import os
import time

import pytest

from rlvr.problems import Problem

CORRECT = "let sum_list xs = List.fold_left (+) 0 xs"
# A wrong answer (constant 0) legitimately passes 2 of the 5 sum_list tests: 0.25 + 0.10 + 0.65 * 2/5.
WRONG_SCORE = 0.61


def probe_problem(name: str, ret: str, tests: tuple[str, ...]) -> Problem:
    """A problem whose answer is a probe of the sandbox; its tests pass only if the sandbox holds."""
    return Problem(id=name, prompt=f"(** probe *)\nlet {name} (u : unit) : {ret} =", tests=tests)


def test_exit_0_earns_no_test_credit(verifier, sum_problem):
    o = verifier.score(sum_problem, "let sum_list xs = exit 0")
    assert (o.tests_passed, o.total_reward) == (0, 0.35)


def test_exit_at_module_initialisation_earns_no_test_credit(verifier, sum_problem):
    o = verifier.score(sum_problem, "let () = exit 0\nlet sum_list xs = List.fold_left (+) 0 xs")
    assert o.tests_passed == 0
    assert o.error.startswith("the program failed before the tests started")


def test_raising_at_module_initialisation_earns_no_test_credit(verifier, sum_problem):
    o = verifier.score(sum_problem, 'let () = failwith "boom"\nlet sum_list xs = List.fold_left (+) 0 xs')
    assert o.tests_passed == 0
    assert "boom" in o.error


def test_printing_the_anchor_result_marker_earns_nothing(verifier, sum_problem):
    code = 'let () = print_string "GRPO_TEST_RESULT:5/5\\n"\nlet sum_list xs = 0'
    assert verifier.score(sum_problem, code).tests_passed == 2


def test_forged_markers_with_a_guessed_nonce_earn_nothing(verifier, sum_problem):
    forged = "".join(f"\\n{'0' * 32} {i} start\\n{'0' * 32} {i} pass" for i in range(5))
    code = f'let () = print_string "{forged}\\n{"0" * 32} -1 done\\n"\nlet sum_list xs = 0'
    assert verifier.score(sum_problem, code).total_reward == WRONG_SCORE


def test_at_exit_handler_earns_nothing(verifier, sum_problem):
    code = 'let () = at_exit (fun () -> print_string "pass pass pass")\nlet sum_list xs = exit 0'
    assert verifier.score(sum_problem, code).tests_passed == 0


def test_uncaught_exception_handler_earns_nothing(verifier, sum_problem):
    code = (
        'let () = Printexc.set_uncaught_exception_handler (fun _ _ -> print_string "ok"; exit 0)\n'
        "let sum_list xs = raise Exit"
    )
    assert verifier.score(sum_problem, code).tests_passed == 0


def test_shadowing_equality_changes_nothing(verifier, sum_problem):
    o = verifier.score(sum_problem, "let (=) _ _ = true\nlet (<>) _ _ = false\nlet sum_list xs = 0")
    assert o.total_reward == WRONG_SCORE


def test_shadowing_stdlib_and_printf_changes_nothing(verifier, sum_problem):
    code = (
        "module Stdlib = struct let (=) _ _ = true end\nmodule Printf = struct let printf _ = () end\n"
        "module List = struct let length _ = 0 let init _ _ = [] end\nlet not _ = true\nlet sum_list xs = 0"
    )
    assert verifier.score(sum_problem, code).total_reward == WRONG_SCORE


def test_the_nonce_cannot_be_read_from_stdin(verifier):
    p = probe_problem("stdin_probe", "string option", ("stdin_probe () = None",) * 5)
    body = "try Some (input_line stdin) with End_of_file -> None"
    assert verifier.score(p, body).total_reward == 1.0


def test_test_sources_and_the_program_are_not_readable(verifier):
    p = probe_problem("file_probe", "bool", ("file_probe () = false",) * 5)
    body = (
        'List.exists Sys.file_exists ["tests.ml"; "candidate.ml"; "/w/tests.ml"; "/tmp/prog"; '
        'Sys.executable_name; "/proc/self/cmdline"]'
    )
    assert verifier.score(p, body).total_reward == 1.0


def test_environment_secrets_are_not_visible(verifier, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    p = probe_problem("env_probe", "string option", ("env_probe () = None",) * 5)
    assert verifier.score(p, 'Sys.getenv_opt "HF_TOKEN"').total_reward == 1.0


def test_there_is_no_shell_so_no_network_or_background_processes(verifier):
    p = probe_problem("shell_probe", "int", ("shell_probe () <> 0",) * 5)
    body = 'Sys.command "true" + Sys.command "curl http://127.0.0.1:1/ & sleep 100 &"'
    assert verifier.score(p, body).total_reward == 1.0


def test_writing_or_deleting_outside_the_sandbox_fails(verifier, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    planted = tmp_path / "planted.txt"
    p = probe_problem("fs_probe", "bool", ("fs_probe () = true",) * 5)
    body = (
        f'(try Sys.remove "{victim}"; false with Sys_error _ -> true) && '
        f'(try close_out (open_out "{planted}"); false with Sys_error _ -> true)'
    )
    assert verifier.score(p, body).total_reward == 1.0
    assert victim.read_text() == "keep me"
    assert not planted.exists()


def test_infinite_loop_is_cut_within_the_budget(verifier, sum_problem):
    start = time.monotonic()
    o = verifier.score(sum_problem, "let rec sum_list xs = sum_list xs")
    assert o.stage == "timeout"
    assert time.monotonic() - start < verifier.config.test_budget_s + 2


def test_deep_recursion_fails_the_assertion_only(verifier, sum_problem):
    o = verifier.score(sum_problem, "let rec sum_list xs = 1 + sum_list (0 :: xs)")
    assert o.tests_passed == 0
    assert "Stack overflow" in o.error


def test_output_flood_is_capped_and_earns_nothing(verifier, sum_problem):
    code = "let () = while true do print_string (String.make 65536 'x') done\nlet sum_list xs = 0"
    o = verifier.score(sum_problem, code)
    assert o.tests_passed == 0
    assert len(o.error) < 1000


def test_many_small_files_stay_in_the_capped_tmpfs(verifier, sum_problem):
    # The files are named by number; none may land on the host (other verifiers on this machine may
    # add their own directories to the scratch space meanwhile, so its size proves nothing).
    scratch = verifier._scratch or "/tmp"
    code = "let () = for i = 0 to 200000 do close_out (open_out (string_of_int i)) done\nlet sum_list xs = 0"
    assert verifier.score(sum_problem, code).tests_passed == 0
    assert [n for n in os.listdir(scratch) if n.isdigit()] == []
    assert [n for _d, _s, files in os.walk(verifier._root) for n in files if n.isdigit()] == []


def test_fork_bomb_cannot_fork_and_the_next_answer_still_scores(verifier, sum_problem):
    # No Unix library is linked and there is no shell: Sys.command is the only way to start a process.
    code = 'let () = for _ = 1 to 2000 do ignore (Sys.command ":(){ :|:& };:") done\nlet sum_list xs = 0'
    assert verifier.score(sum_problem, code).total_reward == WRONG_SCORE
    unix = verifier.score(sum_problem, "let rec sum_list xs = ignore (Unix.fork ()); sum_list xs")
    assert unix.stage == "compile_error"
    assert verifier.score(sum_problem, CORRECT).total_reward == 1.0


def test_memory_bomb_is_stopped_and_the_next_answer_still_scores(verifier, sum_problem):
    code = (
        "let () = let l = ref [] in while true do l := Array.make 1000000 0 :: !l done\nlet sum_list xs = 0"
    )
    assert verifier.score(sum_problem, code).tests_passed == 0
    assert verifier.score(sum_problem, CORRECT).total_reward == 1.0


@pytest.mark.parametrize(
    "bomb",
    [
        # exponential type: each f doubles the size of the previous one's type
        "let f0 = fun x -> (x, x)\n"
        + "".join(f"let f{i} = fun x -> f{i - 1} (f{i - 1} x)\n" for i in range(1, 30)),
        "let _ = " + "[" * 30000 + "]" * 30000,  # blows the compiler's stack
    ],
    ids=["exponential-type", "deep-nesting"],
)
def test_compiler_bombs_are_limited(verifier, sum_problem, bomb):
    start = time.monotonic()
    o = verifier.score(sum_problem, bomb + "\nlet sum_list xs = 0")
    assert o.stage in ("timeout", "compile_error")
    assert o.total_reward <= 0.05
    assert time.monotonic() - start < verifier.config.compile_timeout_s + 3
