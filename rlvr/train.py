"""GRPO (or RLOO) training of an OCaml-writing model: `python -m rlvr.train` (make rlvr-train).

Reads its settings from the environment (rlvr.grpo.config, documented in .envrc), prints them, and
writes the run directory described in doc/metrics.md. Thin by design: TRL's trainers do the RL, PEFT
the LoRA, the verifier the reward; rlvr.grpo.trainer wires them together on the skeleton both trainers
share (rlvr.training).
"""

from __future__ import annotations

import sys

from .grpo.trainer import GRPOJob
from .training import run_training


def main(env: dict[str, str] | None = None) -> int:
    return run_training(GRPOJob(), env)


if __name__ == "__main__":
    sys.exit(main())
