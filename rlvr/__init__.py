"""ocamler-grpo's shared core and its RL stage.

Modules directly under rlvr/ serve every stage: problems, data and assertions, prompts, models,
settings and envconf, run files (runlog), the verifier, export, the training skeleton (training,
callbacks, config), the launcher and the pipeline. GRPO's own modules are under rlvr/grpo/, SFT's
under sft/, evaluation's under eval/.
"""
