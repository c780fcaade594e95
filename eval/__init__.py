"""Evaluation of OCaml-writing models: generate with a model (local transformers or an OpenAI-compatible
server), score every sample with the project's verifier, and report pass@k, mean reward, the stage
funnel and per-problem results (doc/eval.md). Entry points: `python -m eval.run`, `python -m eval.compare`.
"""
