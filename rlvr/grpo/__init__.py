"""GRPO's own modules: its settings (config), reward functions and their run files (rewards,
reward_log), its trainer hooks (callbacks) and its part of the training skeleton (trainer).

Everything directly under rlvr/ is shared by every stage (SFT, GRPO, evaluation, export): problems and
data, prompts, models, run files, the verifier, the training skeleton, the launcher and the pipeline.
"""
