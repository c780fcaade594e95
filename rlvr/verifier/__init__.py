"""The OCaml verifier: extraction, harness assembly, sandbox, scoring, style and degenerate rules."""

from .core import Check, OCamlNotFound, Verifier, VerifierConfig, find_ocaml
from .scoring import STAGES, Outcome, error_class

__all__ = [
    "STAGES",
    "Check",
    "OCamlNotFound",
    "Outcome",
    "Verifier",
    "VerifierConfig",
    "error_class",
    "find_ocaml",
]
