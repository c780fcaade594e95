"""An evaluation that was already made: same model, problems, settings, verifier, prompt and code.

Why: every pipeline evaluates the base model, and on two CPU cores that costs about 20 minutes for
the same numbers each time. `find_equivalent` finds a complete run whose summary.json matches on
everything that decides its results, so the pipeline can copy it instead (pipeline.log and the copy's
summary.json say so). A run is only ever matched on what it recorded: one written before the
problems' digest existed matches nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlvr.problems import Problem
from rlvr.prompts import SYSTEM_PROMPT
from rlvr.runlog import git_commit
from rlvr.verifier import VerifierConfig

from .config import EvalConfig

REPO = Path(__file__).resolve().parent.parent
# settings that name where a run is written, not what it measures
PLACE_SETTINGS = ("output_dir", "run_name", "resume")


def problems_digest(problems: Iterable[Problem]) -> str:
    """sha256 of the problems as evaluated (id, prompt, tests, in order): a changed test changes it."""
    rows = [[p.id, p.prompt, list(p.tests)] for p in problems]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def fingerprint(cfg: EvalConfig, verifier: VerifierConfig, problems: Iterable[Problem]) -> dict[str, Any]:
    """What decides an evaluation's results, in the form its summary.json records it (JSON types)."""
    fields = {
        "settings": {k: v for k, v in cfg.to_dict().items() if k not in PLACE_SETTINGS},
        "verifier": asdict(verifier),
        "system_prompt": SYSTEM_PROMPT,
        "git_commit": git_commit(REPO),
        "problems_sha256": problems_digest(problems),
    }
    if cfg.repair:  # the repair feedback depends on the environment's settings too (eval/repair.py)
        import os

        from rlvr.environment import EnvironmentSettings

        from .repair import environment_record

        fields["repair_environment"] = environment_record(EnvironmentSettings.from_env(os.environ))
    return json.loads(json.dumps(fields))


def recorded_fingerprint(summary: dict[str, Any]) -> dict[str, Any]:
    """The same fields as `fingerprint`, read back from a summary.json."""
    settings = summary.get("settings") or {}
    fields = {
        "settings": {k: v for k, v in settings.items() if k not in PLACE_SETTINGS},
        "verifier": summary.get("verifier"),
        "system_prompt": summary.get("system_prompt"),
        "git_commit": summary.get("git_commit"),
        "problems_sha256": (summary.get("data") or {}).get("problems_sha256"),
    }
    if settings.get("repair"):
        fields["repair_environment"] = (summary.get("repair") or {}).get("environment")
    return fields


def find_equivalent(root: Path, wanted: dict[str, Any]) -> Path | None:
    """The newest complete run under `root` whose recorded fingerprint equals `wanted`, or None.
    Copies made by an earlier reuse are skipped: the original is the one to name."""
    if wanted.get("git_commit") is None:  # not a git checkout: the code cannot be told apart
        return None
    matches = []
    for summary_path in Path(root).glob("*/summary.json"):
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if summary.get("reused_from"):
            continue
        if summary.get("status") == "complete" and recorded_fingerprint(summary) == wanted:
            matches.append((summary.get("finished") or "", summary_path.parent))
    return max(matches)[1] if matches else None
