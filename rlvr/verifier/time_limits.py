"""Per-problem time limits, derived from the reference solution the way programming judges do.

A problem with a reference solution gets, for every run of a candidate's test program,

    CPU limit = clamp(LIMIT_MULTIPLE x the reference's CPU time + LIMIT_CONSTANT_S, LIMIT_FLOOR_S, run_timeout_s)

and, for all the runs of one completion together (a run restarts after an assertion that hung), a CPU
budget of min(test_budget_s, BUDGET_RUNS x that limit); test_budget_s of wall clock stays the backstop. A problem without a reference keeps the fixed
limits (run_timeout_s, test_budget_s). The constants were chosen by measurement (doc/reward.md, "Time
limits"): no reference times out with the cores busy, and an infinite loop costs a fraction of a second.

The reference's CPU time (the largest of REFERENCE_RUNS full runs of its test program, in the sandbox) is
measured once per problem and machine and kept in $OCAMLER_CACHE/time-limits/<context hash>.json, keyed by the
problem's content (id, prompt, tests, reference): editing a problem measures it again, and a machine of
another kind (CPU model, OCaml version, sandbox mode) measures everything again.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from pathlib import Path

from .disk_cache import harness_digest

LIMIT_MULTIPLE = 3.0
LIMIT_CONSTANT_S = 0.05
LIMIT_FLOOR_S = 0.05
BUDGET_RUNS = 4
REFERENCE_RUNS = 3
# Part of the cache's context, with the harness's source: bump it when what a measurement means changes.
MEASUREMENT_VERSION = "1"


@dataclass(frozen=True)
class TimeLimit:
    """The limits that apply to one problem's test runs."""

    run_cpu_s: float  # CPU time of one run of the test program, all its processes together
    budget_s: float  # CPU time of all the runs of one completion's tests together
    reference_cpu_s: float | None = None  # what they were derived from; None: the fixed limits

    def describe(self) -> str:
        """How the limit came about, for error messages and `make validate-data`."""
        if self.reference_cpu_s is None:
            return f"{self.run_cpu_s:g} s CPU per run (fixed: no measured reference solution)"
        return (
            f"{self.run_cpu_s:.3f} s CPU per run ({LIMIT_MULTIPLE:g} x the reference's "
            f"{self.reference_cpu_s:.3f} s + {LIMIT_CONSTANT_S:g} s, at least {LIMIT_FLOOR_S:g} s, "
            "at most the fixed limit)"
        )


def derive(reference_cpu_s: float | None, run_timeout_s: float, test_budget_s: float) -> TimeLimit:
    """The limits for a problem whose reference used `reference_cpu_s` (None: no reference, or one that
    does not pass: the fixed limits)."""
    if reference_cpu_s is None:
        return TimeLimit(run_cpu_s=run_timeout_s, budget_s=test_budget_s)
    reference_cpu_s = round(reference_cpu_s, 4)  # what describe() shows: the limit follows from it
    run = LIMIT_MULTIPLE * reference_cpu_s + LIMIT_CONSTANT_S
    run = round(min(run_timeout_s, max(min(LIMIT_FLOOR_S, run_timeout_s), run)), 4)
    return TimeLimit(
        run_cpu_s=run,
        budget_s=round(min(test_budget_s, BUDGET_RUNS * run), 4),
        reference_cpu_s=reference_cpu_s,
    )


def cpu_model() -> str:
    """This machine's CPU model name (/proc/cpuinfo), or the platform's description of it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def measurement_context(ocaml_version: str, sandbox: str, native: bool, stack_words: int) -> str:
    """What a measurement depends on besides the problem: the machine and how the tests are built and
    run (the harness's source included)."""
    return (
        f"{cpu_model()}; OCaml {ocaml_version}; sandbox {sandbox}; {'native' if native else 'bytecode'}; "
        f"stack {stack_words} words; harness {harness_digest()}; measurement v{MEASUREMENT_VERSION}"
    )
