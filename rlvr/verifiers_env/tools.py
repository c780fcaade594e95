"""The `check` tool for verifiers: an MCP tool server, one per rollout, around rlvr.environment's Checker.

verifiers launches it as `python -m rlvr.verifiers_env.tools` in a subprocess runtime, hands it the
rollout's task (`setup_task`) and syncs `OCamlState` with the reward through its state channel. The
code the model sends runs only in the verifier's sandbox (VERIFIER_* settings, as for the reward), and
the model reads exactly what GRPO_ENVIRONMENT=ocaml shows: the compiler's first error with lines counted
from its own code, or that it compiles and which visible examples fail; never the hidden tests.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import verifiers.v1 as vf

from ..environment import Checker
from ..problems import Problem
from .taskset import OCamlData, OCamlState, OCamlToolsConfig, process_verifier


class OCamlToolset(vf.Toolset[OCamlToolsConfig, OCamlState]):
    """One rollout's `check` tool with its limits: checks per episode, code and output bytes per
    check, sandbox seconds per episode (past a limit the tool says so instead of running)."""

    TOOL_PREFIX = None  # the model sees `check`, as in training

    def __init__(self, config: OCamlToolsConfig) -> None:
        super().__init__(config)
        self._problem: Problem | None = None
        self._checker: Checker | None = None

    async def setup(self) -> None:
        """verifiers stops a tool server with SIGTERM, which uvicorn re-raises once it has shut
        down. Leaving through SystemExit instead of the default action runs atexit, which closes the
        verifier: its compile servers and its scratch directory in /dev/shm go with the server."""
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        await asyncio.to_thread(process_verifier)

    async def setup_task(self, task) -> None:
        """`task` is the rollout's OCamlData (verifiers sends the task's data, not the Task)."""
        data = task if isinstance(task, OCamlData) else OCamlData.model_validate(task.model_dump())
        self._problem = data.to_problem()
        self._checker = Checker(process_verifier(), [self._problem], self.config.settings())

    @vf.tool
    async def check(self, code: str) -> str:
        """Type-check and build an OCaml answer in a sandbox, and run the problem's examples on it.

        Args:
            code: The whole answer: the OCaml definition of the function, helpers included.

        Returns:
            The compiler's first error (lines counted from your code), or that it compiles and which
            of the problem's examples fail.
        """
        if self._checker is None or self._problem is None:
            raise RuntimeError("check: the tool server has no task (setup_task did not run)")
        state = self.state
        refusal = self._checker.refusal(state.checks, state.sandbox_s)
        if refusal is not None:
            state.refused += 1
            return refusal
        result = await asyncio.to_thread(self._checker.check, self._problem, str(code))
        if result.check is None:
            state.refused += 1
        else:
            state.checks += 1
            state.sandbox_s += result.sandbox_s
        return result.text


def _exit_on_sigterm(signum: int, _frame) -> None:
    sys.exit(128 + signum)


if __name__ == "__main__":
    OCamlToolset.run()
