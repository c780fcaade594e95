"""ocamler-grpo's RL side: problems, prompts, the OCaml verifier, rewards and GRPO training."""
