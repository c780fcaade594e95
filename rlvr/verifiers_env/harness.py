"""The harness `vf-eval ocamler-grpo` runs by default: verifiers' plain chat program (its `null`
harness), which offers the model the task's MCP tools (here `check`) and nothing else.

Exported so that it, not verifiers' default `bash` harness, is what an unpinned run gets: a bash
harness would run the model's commands on the evaluating machine, outside the verifier's sandbox
(doc/security.md). Pinning `--env.agent.harness.id bash` is the user's explicit choice.
"""

from __future__ import annotations

from verifiers.v1.harnesses.null import NullHarness


class OCamlHarness(NullHarness):
    """Chat turns and the `check` tool; no shell, no file edits."""
