"""The CPU supervisor: a sandbox's processes together get the CPU time of their limit, to a few
milliseconds, however they fork, sleep or handle signals (doc/security.md). These run a shell inside the
sandbox (the compiler's view of the host has one; the test program's has not) to try each evasion."""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path

import pytest

from rlvr.verifier.sandbox import CPU_RESCAN_S, Limits, Sandbox

MODES = ["bwrap", "rlimit"]


def sandbox(mode: str) -> Sandbox:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rlimit mode warns at start, as it should
        return Sandbox(mode)


def sh(mode: str, tmp_path: Path, script: str, cpu_s: float = 0.3, wall_s: float = 10.0):
    return sandbox(mode).compile(["/bin/sh", "-c", script], tmp_path, Limits(wall_s=wall_s, cpu_s=cpu_s))


def processes_with(tag: str) -> list[int]:
    """Host pids whose command line holds `tag` (what a sandbox left running)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if tag.encode() in f.read():
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("mode", MODES)
def test_forked_processes_share_one_cpu_limit(tmp_path, mode):
    r = sh(mode, tmp_path, "for i in 1 2 3 4; do (while :; do :; done) & done; wait")
    assert r.cpu_limited
    # four busy children found at most one rescan late each
    assert 0.3 <= r.cpu_s < 0.3 + 4 * CPU_RESCAN_S + 0.1
    assert r.duration_s < 5


@pytest.mark.parametrize("mode", MODES)
def test_a_process_that_ignores_every_catchable_signal_is_still_stopped(tmp_path, mode):
    r = sh(mode, tmp_path, "trap '' HUP INT TERM XCPU USR1 USR2; while :; do :; done")
    assert r.cpu_limited
    assert r.cpu_s < 0.45  # limit 0.3 s; the supervisor can be late on a loaded machine


@pytest.mark.parametrize("mode", MODES)
def test_a_sleeping_process_is_stopped_by_the_wall_clock_backstop(tmp_path, mode):
    r = sh(mode, tmp_path, "sleep 30", wall_s=0.5)
    assert (r.timed_out, r.cpu_limited) == (True, False)
    assert r.duration_s < 5


@pytest.mark.parametrize("mode", MODES)
def test_no_process_of_a_stopped_sandbox_survives(tmp_path, mode):
    tag = "survivor" + secrets.token_hex(6)
    script = f"sh -c 'while :; do :; done' {tag} & sh -c 'sleep 60' {tag} & wait"
    r = sh(mode, tmp_path, script)
    assert r.cpu_limited
    assert processes_with(tag) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_child_that_outlives_its_parent_is_stopped_too(tmp_path, mode):
    # The parent exits at once, its orphan loops. bwrap: the pid namespace ends with its first process;
    # rlimit: the orphan still holds the output pipes, and its CPU time still counts.
    tag = "orphan" + secrets.token_hex(6)
    r = sh(mode, tmp_path, f"sh -c 'while :; do :; done' {tag} & exit 0")
    assert r.cpu_s < 0.45  # limit 0.3 s; the supervisor can be late on a loaded machine
    assert processes_with(tag) == []


@pytest.mark.parametrize("mode", MODES)
def test_closing_the_output_does_not_escape_the_cpu_limit(tmp_path, mode):
    r = sh(mode, tmp_path, "exec >&- 2>&-; while :; do :; done")
    assert r.cpu_limited
    assert r.cpu_s < 0.45  # limit 0.3 s; the supervisor can be late on a loaded machine


@pytest.mark.parametrize("mode", MODES)
def test_a_process_left_behind_with_its_output_closed_is_stopped(tmp_path, mode):
    # rlimit mode: Sys.command can start a shell; one that lets go of the output pipes is still stopped
    tag = "detached" + secrets.token_hex(6)
    r = sh(mode, tmp_path, f"sh -c 'exec >/dev/null 2>&1; while :; do :; done' {tag} & exit 0")
    assert r.returncode == 0 or r.timed_out
    assert processes_with(tag) == []


def test_a_nested_pid_namespace_cannot_hide_from_the_supervisor(tmp_path):
    # bwrap mode forbids new user namespaces inside the sandbox, so `unshare` fails at once
    tag = "nested" + secrets.token_hex(6)
    r = sh("bwrap", tmp_path, f"unshare -Upf sh -c 'while :; do :; done' {tag} || while :; do :; done")
    assert r.cpu_limited
    assert r.cpu_s < 0.45  # limit 0.3 s; the supervisor can be late on a loaded machine
    assert "unshare failed" in r.stderr
    assert processes_with(tag) == []
