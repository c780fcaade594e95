"""The OCaml problems as a verifiers 0.4 Taskset: the same problems, prompt, check tool and reward as
GRPO_ENVIRONMENT=ocaml (rlvr.environment), for trainers and evaluators built on verifiers.

    pip install -e '.[verifiers]'
    vf-eval ocamler-grpo --client.base-url http://127.0.0.1:8000/v1 -m bundled -n 4 --no-push

A task is one problem. Its prompt is the project's chat (rlvr.prompts); with tools on
(`--env.taskset.task.tools.max-tool-calls N`, N > 0, the default) the model may call `check` (the
Toolset in rlvr.verifiers_env.tools), whose feedback is rlvr.environment's, and the episode's reward is
the verifier's graduated score of the final answer on the hidden tests minus `check_cost` per check
that ran. An infrastructure failure (the sandbox could not run the answer) raises TaskError, so
verifiers records the rollout as errored instead of scoring it 0.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Iterable
from typing import Any

import verifiers.v1 as vf
from pydantic import Field

from ..data import load_problems
from ..environment import EnvironmentSettings, final_answer, tool_hint
from ..problems import Problem
from ..prompts import build_messages
from ..service.wire import problem_from_wire, problem_to_wire
from ..verifier import Outcome, Verifier, VerifierConfig
from ..verifier.scoring import TYPE_CHECK_MAX

_DEFAULTS = EnvironmentSettings()  # each default is defined once, in rlvr.environment

_verifier: Verifier | None = None
_verifier_lock = threading.Lock()


def process_verifier() -> Verifier:
    """This process's verifier (VERIFIER_* settings, the same sandbox as training), made on first use
    and closed at exit. The reward (in the evaluator's process) and each rollout's tool server (its
    own process) have one each."""
    global _verifier
    with _verifier_lock:
        if _verifier is None:
            _verifier = Verifier(VerifierConfig.from_env())
            atexit.register(_verifier.close)
        return _verifier


class OCamlState(vf.State):
    """What the tool server tells the reward: the checks that ran (each costs `check_cost`) and
    those a limit refused (free)."""

    checks: int = 0
    refused: int = 0
    sandbox_s: float = 0.0


class OCamlToolsConfig(vf.ToolsetConfig):
    """The `check` tool's limits (`--env.taskset.task.tools.*`); 0 tool calls = single-turn."""

    max_tool_calls: int = Field(_DEFAULTS.max_tool_calls, ge=0)
    feedback: str = Field(_DEFAULTS.feedback, pattern="^(compile|examples)$")
    max_code_bytes: int = Field(_DEFAULTS.max_code_bytes, ge=64)
    max_output_bytes: int = Field(_DEFAULTS.max_output_bytes, ge=64)
    sandbox_budget_s: float = Field(_DEFAULTS.sandbox_budget_s, gt=0)

    def settings(self) -> EnvironmentSettings:
        return EnvironmentSettings(
            name="ocaml",
            max_tool_calls=self.max_tool_calls,
            feedback=self.feedback,
            max_code_bytes=self.max_code_bytes,
            max_output_bytes=self.max_output_bytes,
            sandbox_budget_s=self.sandbox_budget_s,
        )


class OCamlTaskConfig(vf.TaskConfig):
    """Scoring knobs (`--env.taskset.task.*`)."""

    check_cost: float = Field(_DEFAULTS.check_cost, ge=0.0, le=1.0)
    tools: OCamlToolsConfig = OCamlToolsConfig()


class OCamlData(vf.TaskData):
    """One problem: its id, split and the problem itself in the reward servers' wire form (the tool
    server, another process, rebuilds it from here; the hidden tests never reach the prompt)."""

    split: str = "train"
    problem: dict[str, Any] = Field(default_factory=dict)

    def to_problem(self) -> Problem:
        return problem_from_wire(self.problem, f"task {self.id}")


class OCamlTask(vf.Task[OCamlData, OCamlState, OCamlTaskConfig]):
    """The graduated OCaml reward of the final answer, minus the cost of the checks, and the
    verifier's stages as metrics."""

    @property
    def key(self) -> str:
        return str(self.data.id)  # problem ids are unique within a problem set

    @classmethod
    def toolsets(cls, config: OCamlTaskConfig) -> list[vf.Toolset]:
        if config.tools.max_tool_calls == 0:
            return []
        from .tools import OCamlToolset

        return [OCamlToolset(config.tools)]

    async def _outcome(self, trace: vf.Trace, release: bool = False) -> Outcome:
        """The verdict of this trace's final answer, scored once: verifiers runs the metrics, then the
        rewards, and the reward `release`s it, so a long training run keeps no verdicts."""
        cache = self.__dict__.setdefault("_outcomes", {})
        if trace.id not in cache:
            turns = [{"role": "assistant", "content": m.content or ""} for m in trace.assistant_messages]
            answer = final_answer(turns)
            problem = self.data.to_problem()
            cache[trace.id] = await asyncio.to_thread(process_verifier().score, problem, answer)
        outcome = cache.pop(trace.id) if release else cache[trace.id]
        if outcome.total_reward is None:
            raise vf.TaskError(
                f"problem {self.data.id}: the verifier could not run the answer: {outcome.error}"
            )
        return outcome

    @vf.metric
    async def verifier(self, trace: vf.Trace) -> dict[str, float]:
        o = await self._outcome(trace)
        return {
            "pass": float(o.stage == "pass"),
            "type_checked": float(o.type_check == TYPE_CHECK_MAX),
            "tests_fraction": o.tests_passed / o.tests_total if o.tests_total else 0.0,
            "verdict": float(o.total_reward),
            "checks": float(trace.state.checks),
            "tool_calls": float(sum(len(m.tool_calls or []) for m in trace.assistant_messages)),
        }

    @vf.reward(weight=1.0)
    async def ocaml(self, trace: vf.Trace) -> float:
        """The verifier's graduated reward of the final answer minus check_cost per check that ran."""
        o = await self._outcome(trace, release=True)
        return round(float(o.total_reward) - self.config.check_cost * trace.state.checks, 6)


class OCamlTasksetConfig(vf.TasksetConfig):
    """Which problems (`--env.taskset.*`): any source rlvr.data.load_problems accepts."""

    source: str = "bundled"
    """bundled | a .jsonl/.json/.parquet file | a Hugging Face dataset id (downloaded only when asked)."""
    split: str | None = "eval"
    """train | eval | None for every problem of the source."""
    hub_split: str | None = None
    """The split of a Hugging Face dataset to read (its own split names, not train/eval)."""
    task: OCamlTaskConfig = OCamlTaskConfig()


class OCamlTaskset(vf.Taskset[OCamlTask, OCamlTasksetConfig]):
    """The project's problems, one task each, in the source's order."""

    def load(self) -> Iterable[OCamlTask]:
        problems, _report = load_problems(
            self.config.source, self.config.split, hub_split=self.config.hub_split
        )
        tools = self.config.task.tools
        for p in problems:
            messages = build_messages(p)
            if tools.max_tool_calls > 0:
                messages[-1]["content"] += tool_hint(tools.feedback)
            system, user = messages[0]["content"], messages[1:]
            yield OCamlTask(
                OCamlData(
                    id=p.id,
                    name=p.id,
                    prompt=user,
                    system_prompt=system,
                    split=p.split,
                    problem=problem_to_wire(p),
                ),
                self.config.task,
            )
