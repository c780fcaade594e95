"""The verifiers 0.4 environment (rlvr.verifiers_env), loaded through verifiers' own loader and scored
with the real verifier and sandbox. Runs where the '.[verifiers]' extra is installed (make test
installs it); tests/slow/test_verifiers_eval.py runs verifiers' evaluation over HTTP."""

import asyncio
import json
import sys

import pytest

if sys.version_info < (3, 11):  # the one place it cannot run: verifiers 0.4 has no Python 3.10 release
    pytest.skip("verifiers 0.4 needs Python >= 3.11", allow_module_level=True)

import verifiers.v1 as vf
from verifiers.v1.graph import MessageNode
from verifiers.v1.trace import AgentInfo, TraceTask

from rlvr.verifier import Verifier, VerifierConfig
from rlvr.verifiers_env import OCamlState
from rlvr.verifiers_env import taskset as taskset_module
from rlvr.verifiers_env.tools import OCamlToolset
from tests.conftest import SUM_PROMPT, SUM_TESTS

WRONG_BUT_BUILDS = "```ocaml\nlet sum_list (xs : int list) : int = match xs with [] -> 0 | x :: _ -> x\n```"
RIGHT = "```ocaml\nlet sum_list (xs : int list) : int = List.fold_left ( + ) 0 xs\n```"


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory):
    """A problem set in the project's JSONL schema: one problem, eval split."""
    path = tmp_path_factory.mktemp("vf") / "problems.jsonl"
    row = {"id": "sum_list", "prompt": SUM_PROMPT, "tests": list(SUM_TESTS), "split": "eval"}
    path.write_text(json.dumps(row) + "\n")
    return path


def load(**taskset):
    """The taskset as vf-eval loads it: by id, through verifiers' loader."""
    config = vf.taskset_config_type("ocamler-grpo").model_validate({"id": "ocamler-grpo", **taskset})
    return vf.load_taskset(config)


def trace_of(task, *replies: str, checks: int = 0):
    """A finished rollout's trace: the model's replies, and the checks the tool server counted."""
    trace = vf.Trace(
        task=TraceTask(type=type(task).__name__, data=task.data, key=task.key),
        agent=AgentInfo(config=vf.AgentConfig()),
        state=OCamlState(checks=checks),
    )
    for reply in replies:
        trace.nodes.append(MessageNode(message=vf.AssistantMessage(content=reply), sampled=True))
    return trace


def scored(task, *replies: str, checks: int = 0):
    trace = trace_of(task, *replies, checks=checks)
    asyncio.run(task.score(trace))
    return trace


def test_verifiers_loader_finds_the_taskset_env_and_a_harness_without_a_shell():
    from rlvr.verifiers_env import OCamlEnv, OCamlHarness, OCamlTaskset

    assert type(load()) is OCamlTaskset
    assert vf.environment_class("ocamler-grpo") is OCamlEnv
    assert vf.default_harness_id("ocamler-grpo") == "ocamler-grpo"  # not verifiers' bash harness
    harness = vf.load_harness(vf.harness_config_type("ocamler-grpo")(id="ocamler-grpo"))
    assert type(harness) is OCamlHarness and not OCamlHarness.EXECUTES_CODE
    env = vf.resolve_env_config({"taskset": {"id": "ocamler-grpo"}})
    assert env.agent.runtime.type == "subprocess" and env.agent.max_turns == 4  # 3 checks + the answer


def test_the_bundled_eval_split_becomes_tasks_with_the_training_prompt():
    from rlvr.data import load_problems

    tasks = list(load())
    eval_ids = [p.id for p in load_problems("bundled", "eval")[0]]
    assert [t.data.id for t in tasks] == eval_ids and all(t.data.split == "eval" for t in tasks)
    first = tasks[0]
    assert first.data.system_prompt.startswith("You are an expert OCaml programmer")
    user = first.data.prompt[-1].content
    assert user.startswith("Implement this OCaml function:") and "call the `check` tool" in user
    assert [t.key for t in tasks] == eval_ids  # the problem id is the key
    assert len(list(load(split="train"))) == len(load_problems("bundled", "train")[0]) > 0


def test_without_tools_the_task_is_single_turn(problems_file):
    (task,) = load(source=str(problems_file), task={"tools": {"max_tool_calls": 0}})
    assert "check" not in task.data.prompt[-1].content
    assert type(task).toolsets(task.config) == []


def test_a_correct_reply_scores_1_and_a_wrong_one_what_the_verifier_gives(problems_file):
    (task,) = load(source=str(problems_file))
    right = scored(task, RIGHT)
    assert right.rewards["ocaml"].score == 1.0 and right.reward == 1.0
    assert right.metrics == {
        "pass": 1.0,
        "type_checked": 1.0,
        "tests_fraction": 1.0,
        "verdict": 1.0,
        "checks": 0.0,
        "tool_calls": 0.0,
    }
    wrong = scored(task, WRONG_BUT_BUILDS)  # type checks (0.25) and builds (0.10), passes 2 tests of 5
    assert wrong.rewards["ocaml"].score == pytest.approx(0.25 + 0.10 + 0.65 * 2 / 5)
    assert (wrong.metrics["pass"], wrong.metrics["tests_fraction"]) == (0.0, 0.4)
    garbage = scored(task, "I do not know OCaml.")
    assert garbage.rewards["ocaml"].score == 0.0
    assert task.__dict__["_outcomes"] == {}  # each verdict is scored once and released by the reward


def test_the_answer_is_the_last_ocaml_block_and_each_check_costs(problems_file):
    (task,) = load(source=str(problems_file), task={"check_cost": 0.05})
    trace = scored(task, WRONG_BUT_BUILDS, RIGHT + "\nDone.", checks=2)
    assert trace.rewards["ocaml"].score == pytest.approx(1.0 - 2 * 0.05)
    assert (trace.metrics["verdict"], trace.metrics["checks"]) == (1.0, 2.0)
    earlier = scored(task, RIGHT, "I am done.")  # no block in the last turn: the last block counts
    assert earlier.rewards["ocaml"].score == 1.0


def test_an_infrastructure_failure_is_an_error_not_a_zero(problems_file, monkeypatch):
    broken = Verifier(VerifierConfig(retries=1))
    broken.sandbox.bwrap = "/nonexistent/bwrap"
    monkeypatch.setattr(taskset_module, "_verifier", broken)
    (task,) = load(source=str(problems_file))
    trace = trace_of(task, RIGHT)
    with pytest.raises(vf.TaskError, match="could not run the answer"):
        asyncio.run(task.score(trace))
    assert "ocaml" not in trace.rewards or trace.rewards["ocaml"] is None
    broken.close()


def test_a_bad_source_names_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "not ocaml"}\n')
    from rlvr.data import DataError

    with pytest.raises(DataError, match=r"bad\.jsonl:1"):
        list(load(source=str(bad)))


def run_tool(toolset, code: str) -> str:
    return asyncio.run(toolset.check(code))


def test_the_check_tool_shows_the_compiler_and_the_examples_and_counts_checks(problems_file):
    (task,) = load(source=str(problems_file), task={"tools": {"max_tool_calls": 2}})
    tools = OCamlToolset(task.config.tools)
    asyncio.run(tools.setup_task(task.data))
    state = tools.state
    typo = run_tool(tools, "let sum_list (xs : int list) : int = List.fold_left ( + ) 0 x")
    assert "Line 1, characters" in typo and "Unbound value x" in typo
    wrong = run_tool(tools, WRONG_BUT_BUILDS)
    assert "compiles" in wrong.lower()
    assert "sum_list [1; 2; 3] = 6" in wrong  # the doc comment's example, which it fails
    for hidden in [t for t in SUM_TESTS if t not in SUM_PROMPT]:  # the hidden tests never reach the model
        assert hidden not in typo + wrong
    assert (state.checks, state.refused) == (2, 0)
    assert run_tool(tools, RIGHT).startswith("No checks left (2 per problem)")
    assert (state.checks, state.refused) == (2, 1)


def test_a_stopped_tool_server_leaves_no_scratch_directory(tmp_path):
    """verifiers stops a rollout's tool server with SIGTERM: its verifier must close (compile servers,
    the /dev/shm scratch directory) instead of leaking one directory per rollout."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from rlvr.verifiers_env import OCamlToolsConfig

    shm = Path("/dev/shm")
    before = set(shm.glob("ocaml-verify-*"))
    port_file = tmp_path / "port"
    env = {**os.environ, "MCP_PORT_FILE": str(port_file), "VF_CONFIG": OCamlToolsConfig().model_dump_json()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlvr.verifiers_env.tools"], env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (set(shm.glob("ocaml-verify-*")) - before) and proc.poll() is None:
            assert time.monotonic() < deadline, "the tool server made no verifier"
            time.sleep(0.2)
        assert port_file.exists() and proc.poll() is None
        os.killpg(proc.pid, signal.SIGTERM)  # as verifiers' subprocess runtime stops it
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert set(shm.glob("ocaml-verify-*")) - before == set()
