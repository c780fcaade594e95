"""Supervised fine-tuning (SFT) on reference solutions, before GRPO: `python -m sft.train` (make sft-train)."""
