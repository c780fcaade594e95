"""The episode for verifiers: one agent seat playing one OCaml task, with defaults that run on one
machine. verifiers' own defaults provision a remote Prime sandbox per rollout; here the agent is
verifiers' chat program (OCamlHarness: model calls and the `check` tool, no shell) in a local
subprocess, and its turns are capped at the checks allowed plus the final answer.
"""

from __future__ import annotations

import verifiers.v1 as vf
from pydantic import model_validator

from .taskset import OCamlTasksetConfig


class OCamlEnvConfig(vf.SingleAgentEnvConfig):
    """`--env.*`: the seat `agent` (its runtime defaults to a local subprocess; `--env.agent.runtime.type
    prime` puts it back in verifiers' remote sandbox) over the OCaml taskset."""

    agent: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())

    @model_validator(mode="after")
    def _turns_follow_the_checks(self) -> OCamlEnvConfig:
        # unset max_turns: one turn per check the tool allows, and one for the final answer
        if self.agent.max_turns is None and isinstance(self.taskset, OCamlTasksetConfig):
            turns = self.taskset.task.tools.max_tool_calls + 1
            self.agent = self.agent.model_copy(update={"max_turns": turns})
        return self


class OCamlEnv(vf.Env[OCamlEnvConfig]):
    """verifiers' single-agent episode, with OCamlEnvConfig's defaults."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        await agents.agent.run(task)
