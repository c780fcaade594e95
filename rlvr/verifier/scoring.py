"""The score table and the Outcome record (doc/reward.md is the human-readable version)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

TYPE_CHECK_MAX = 0.25
COMPILE_MAX = 0.10
TESTS_MAX = 0.65

# errors -> type-check credit; >= 10 errors -> 0.01; a syntax error -> 0.
TYPE_CHECK_BY_ERRORS = {
    0: 0.25,
    1: 0.20,
    2: 0.15,
    3: 0.10,
    4: 0.05,
    5: 0.04,
    6: 0.03,
    7: 0.025,
    8: 0.02,
    9: 0.015,
}
TYPE_CHECK_MANY_ERRORS = 0.01
COMPILE_OK = 0.10
COMPILE_FAILED_AFTER_TYPECHECK = 0.05
COMPILE_PARTIAL_AFTER_TYPE_ERRORS = 0.01
MAX_COUNTED_TYPE_ERRORS = 10

STAGES = (
    "pass",
    "test_failure",
    "compile_error",
    "type_error",
    "syntax_error",
    "timeout",
    "empty",
    "infra_error",
)
# how reports and the dashboard name each stage (the dashboard serves both as /static/stages.js)
STAGE_LABELS = {
    "pass": "all tests pass",
    "test_failure": "test failure",
    "compile_error": "compile error",
    "type_error": "type error",
    "syntax_error": "syntax error",
    "timeout": "timeout",
    "empty": "empty",
    "infra_error": "infra error",
}


def type_check_credit(errors: int) -> float:
    """Graduated credit for a unit with `errors` independent type errors."""
    return TYPE_CHECK_BY_ERRORS.get(errors, TYPE_CHECK_MANY_ERRORS)


@dataclass
class Outcome:
    """The verdict on one completion. The same fields appear in rewards/<name>.jsonl, the scoring CLI
    and eval results. `total_reward` is None for infrastructure failures (TRL then masks the sample)."""

    id: str
    total_reward: float | None
    type_check: float = 0.0
    compile: float = 0.0
    tests: float = 0.0
    tests_passed: int = 0
    tests_total: int = 0
    stage: str = "empty"
    error: str | None = None
    type_errors: int = 0
    is_degenerate: bool = False
    degenerate_reasons: list[str] = field(default_factory=list)
    degenerate_penalty: float = 0.0
    style_penalty: float = 0.0
    style_reasons: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    time_limit_s: float | None = None  # CPU seconds per test run that applied (None: the tests never ran)

    def to_dict(self) -> dict:
        return asdict(self)


def finalize(o: Outcome) -> Outcome:
    """Set `total_reward` from the components and penalties (clamped to [0, 1], rounded to 1e-6)."""
    if o.stage == "infra_error":
        o.total_reward = None
        return o
    raw = o.type_check + o.compile + o.tests - o.style_penalty - o.degenerate_penalty
    o.total_reward = round(min(1.0, max(0.0, raw)), 6)
    return o


_ERROR_CLASSES = [
    ("Syntax error", re.compile(r"Syntax error|Illegal character|not terminated|might be unmatched")),
    ("Unbound value", re.compile(r"Unbound value")),
    ("Unbound constructor", re.compile(r"Unbound constructor")),
    ("Unbound module", re.compile(r"Unbound module")),
    ("Unbound type", re.compile(r"Unbound type constructor")),
    ("Unbound record field", re.compile(r"Unbound record field")),
    (
        "Wrong number of arguments",
        re.compile(r"applied to too many arguments|is not a function|arguments? but is here applied"),
    ),
    (
        "Type mismatch",
        re.compile(r"This expression has type|has type .* but|This pattern matches values of type"),
    ),
    ("Signature mismatch", re.compile(r"does not match the problem's signature")),
    (
        "Link error",
        re.compile(r"Reference to undefined global|Error while linking|No implementations provided"),
    ),
    ("Timeout", re.compile(r"timed out|timeout")),
    ("Exception", re.compile(r"exception|raised")),
    ("Wrong answer", re.compile(r"returned false")),
]


def error_class(error: str | None) -> str | None:
    """A short class name for an error message (for dashboards and eval summaries)."""
    if not error:
        return None
    for name, pattern in _ERROR_CLASSES:
        if pattern.search(error):
            return name
    return "Other"
