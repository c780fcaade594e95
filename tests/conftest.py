"""Shared fixtures: a real verifier (real OCaml, real bubblewrap sandbox) and small problems."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from rlvr.problems import Problem
from rlvr.verifier import Verifier, VerifierConfig

SUM_PROMPT = (
    "(** [sum_list xs] returns the sum of the integers in [xs]; let the sum of [] be 0.\n"
    "    Example: [sum_list [1; 2; 3] = 6]. *)\n"
    "let sum_list (xs : int list) : int ="
)
SUM_TESTS = (
    "sum_list [] = 0",
    "sum_list [5] = 5",
    "sum_list [1; 2; 3] = 6",
    "sum_list [-1; 1] = 0",
    "sum_list (List.init 1000 (fun i -> i)) = 499500",
)


@pytest.fixture(scope="session")
def verifier():
    with Verifier(VerifierConfig(sandbox="bwrap")) as v:
        yield v


@pytest.fixture(scope="session")
def sum_problem() -> Problem:
    return Problem(id="sum_list", prompt=SUM_PROMPT, tests=SUM_TESTS)


@pytest.fixture(scope="session")
def tree_problem() -> Problem:
    return Problem(
        id="tree_size",
        prompt=(
            "type tree = Leaf | Node of tree * int * tree\n\n"
            "(** [tree_size t] counts the nodes of [t]. *)\n"
            "let rec tree_size (t : tree) : int ="
        ),
        tests=(
            "tree_size Leaf = 0",
            "tree_size (Node (Leaf, 1, Leaf)) = 1",
            "tree_size (Node (Leaf, 1, Node (Leaf, 2, Leaf))) = 2",
            "tree_size (Node (Node (Leaf, 0, Leaf), 1, Node (Leaf, 2, Leaf))) = 3",
        ),
    )


@pytest.fixture()
def dead_identity() -> dict:
    """The recorded identity (rlvr.liveness) of a real process that was killed with SIGKILL and reaped."""
    import subprocess
    import sys

    from rlvr.liveness import process_identity

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = process_identity(proc.pid)
    proc.kill()
    proc.wait()
    return identity


@pytest.fixture()
def tmpfs(tmp_path):
    """`tmpfs(size)`: a real tmpfs of `size` (e.g. "12m") mounted under tmp_path, unmounted after. Mounting
    needs root (CI runs as root); elsewhere the test is skipped, saying so."""
    import subprocess

    mounts = []

    def mount(size: str):
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        made = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)
