"""The project's own files agree with each other: flake, lock, .envrc, Makefile, README, pyproject."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("rlvr", "sft", "eval", "dashboard", "scripts")
# a typed read through rlvr.envconf.Env (`e.int("X", ...)`, `Env(os.environ).bool("X", ...)`), or a raw one
ENV_READ = re.compile(
    r"""(?:(?:\b(?:e|env|self\.env)|\))\.(?:str|int|float|bool|choice|list|raw)\(\s*|environ(?:\.get)?\(\s*|environ\[\s*|getenv\(\s*)"([A-Z][A-Z0-9_]+)\""""
)


def env_vars_read_by_code() -> set[str]:
    found = set()
    for d in CODE_DIRS:
        for path in (REPO / d).rglob("*.py"):
            found |= set(ENV_READ.findall(path.read_text()))
    return found


def test_the_pattern_sees_every_kind_of_read():
    # the variables an earlier pattern missed: a choice, two booleans and a read on Env(os.environ)
    for var in ("VERIFIER_SANDBOX", "VERIFIER_NATIVE", "VERIFIER_COMPILE_SERVER", "LLAMA_CPP_NATIVE"):
        assert var in env_vars_read_by_code(), var


def recorded_defaults(monkeypatch) -> dict[str, object]:
    """VAR -> the default the code passes when it reads VAR, recorded by running every config parser
    on an empty environment (cpu profile)."""
    from rlvr import settings
    from rlvr.envconf import Env
    from rlvr.grpo.config import GRPOTrainConfig
    from rlvr.pipeline import PipelineConfig
    from rlvr.verifier import VerifierConfig
    from sft.config import SFTTrainConfig

    seen: dict[str, object] = {}
    for method in ("str", "int", "float", "bool", "choice", "list"):
        original = getattr(Env, method)

        def recording(self, name, default, *args, _original=original, **kwargs):
            seen.setdefault(name, default)
            return _original(self, name, default, *args, **kwargs)

        monkeypatch.setattr(Env, method, recording)
    GRPOTrainConfig.from_env({}, cuda=False, cpu_bf16=False)
    SFTTrainConfig.from_env({}, cuda=False, cpu_bf16=False)
    VerifierConfig.from_env({})
    PipelineConfig.from_env({})
    from eval.config import EvalConfig

    EvalConfig.from_sources({})
    from rlvr.service.config import RemoteConfig, ServerConfig

    ServerConfig.from_env({})
    RemoteConfig.from_env({})
    from rlvr.grpo.judge import JudgeSettings

    JudgeSettings.from_env({})
    settings.dashboard_address({})
    settings.tensorboard_port({})
    return seen


def documented_value(line_value: str) -> str | None:
    """The value of a `# export VAR=value` line; None when it is a placeholder or left empty."""
    v = line_value.strip()
    return None if not v or v.startswith("<") or v.startswith("~") else v


def same(documented: str, default: object) -> bool:
    if isinstance(default, bool):
        return documented in (("1", "true") if default else ("0", "false"))
    if isinstance(default, int | float):
        return float(documented) == float(default)
    if isinstance(default, list | tuple):
        return documented.split(",") == [str(x) for x in default]
    return documented == str(default)


def test_envrc_defaults_are_the_codes(monkeypatch):
    envrc = (REPO / ".envrc").read_text()
    documented = {
        var: documented_value(value)
        for var, value in re.findall(r"^#?\s*export ([A-Z][A-Z0-9_]+)=(\S*)", envrc, re.M)
    }
    defaults = recorded_defaults(monkeypatch)
    assert len(defaults) > 60  # the parsers really ran through the recorder
    checked, wrong = 0, []
    for var, default in defaults.items():
        doc = documented.get(var)
        if doc is None or default is None:
            continue  # a placeholder (<time>-<model>), or unset by default
        checked += 1
        if not same(doc, default):
            wrong.append(f"{var}: .envrc says {doc!r}, the code's default is {default!r}")
    assert wrong == [] and checked > 50


def test_envrc_documents_every_variable_the_code_reads():
    envrc = (REPO / ".envrc").read_text()
    documented = set(re.findall(r"^#?\s*export ([A-Z][A-Z0-9_]+)=", envrc, re.M))
    ignored = {"HOME", "PATH", "RANK", "LOCAL_RANK", "CI", "PYTHONPATH", "HF_HUB_DISABLE_TELEMETRY"}
    missing = sorted(env_vars_read_by_code() - documented - ignored)
    assert missing == []


def test_flake_parses():
    if not shutil.which("nix-instantiate"):
        pytest.skip("nix-instantiate not installed (make test installs Debian's nix-bin as root)")
    proc = subprocess.run(
        ["nix-instantiate", "--parse", str(REPO / "flake.nix")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_flake_lock_pins_the_input_the_flake_names():
    lock = json.loads((REPO / "flake.lock").read_text())
    node = lock["nodes"]["nixpkgs"]
    flake = (REPO / "flake.nix").read_text()
    assert f"github:NixOS/nixpkgs/{node['original']['ref']}" in flake
    assert re.fullmatch(r"[0-9a-f]{40}", node["locked"]["rev"])
    assert node["locked"]["narHash"].startswith("sha256-")
    assert lock["nodes"]["root"]["inputs"] == {"nixpkgs": "nixpkgs"}


def make_targets() -> dict[str, str]:
    text = (REPO / "Makefile").read_text()
    return dict(re.findall(r"^([a-zA-Z0-9_-]+):[^=\n]*?## (.+)$", text, re.M))


def test_make_help_lists_every_target_with_a_line():
    text = (REPO / "Makefile").read_text()
    defined = [t for t in re.findall(r"^([a-zA-Z0-9_-]+):(?!=)", text, re.M) if t != "PHONY"]
    assert sorted(t for t in set(defined) if defined.count(t) > 1) == []  # make keeps only the last recipe
    targets = set(defined)
    assert targets == set(make_targets())
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for target in targets:
        assert f"make {target} " in out


def test_every_make_command_in_the_readme_exists():
    readme = (REPO / "README.md").read_text()
    used = set(re.findall(r"\bmake ([a-z][a-z0-9-]+)", readme))
    assert used - set(make_targets()) == set()


def test_vllm_range_is_the_one_trl_supports():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"vllm>=0.22,<0.32"' in pyproject
