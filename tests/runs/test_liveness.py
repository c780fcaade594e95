"""A run's state never lies (rlvr.liveness): one property per test, with real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from rlvr.liveness import STALL_MIN_S, process_identity, process_state, run_state, stall_after


def running(identity) -> dict:
    return {"status": "running", "process": identity}


def test_a_live_writing_run_is_running():
    assert run_state(running(process_identity()), idle_s=5.0) == "running"


def test_a_killed_run_is_died(dead_identity):
    assert run_state(running(dead_identity), idle_s=1.0) == "died"


def test_a_reused_pid_is_not_taken_for_the_run():
    identity = dict(process_identity(), pid_start=process_identity()["pid_start"] - 1)  # another start time
    assert process_state(identity) == "gone"
    assert run_state(running(identity), idle_s=1.0) == "died"


def test_a_reboot_since_the_run_started_is_died():
    identity = dict(process_identity(), boot_id="00000000-0000-0000-0000-000000000000")
    assert run_state(running(identity), idle_s=1.0) == "died"


def test_a_zombie_counts_as_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = process_identity(proc.pid)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        assert process_state(identity) == "gone"
    finally:
        proc.wait()


def test_a_live_process_that_stopped_writing_is_stalled():
    assert run_state(running(process_identity()), idle_s=STALL_MIN_S + 1) == "stalled"


def test_the_stall_threshold_follows_the_step_time():
    assert stall_after([]) == STALL_MIN_S
    assert stall_after([100.0, 300.0, 200.0]) == 2000.0  # 10 typical (median) steps
    assert run_state(running(process_identity()), idle_s=1500.0, step_times=[200.0]) == "running"


def test_a_run_on_another_host_is_judged_by_its_writes_only(dead_identity):
    other = dict(dead_identity, host=socket.gethostname() + "-elsewhere")
    assert process_state(other) == "unknown"
    assert run_state(running(other), idle_s=1.0) == "running"
    assert run_state(running(other), idle_s=STALL_MIN_S + 1) == "stalled"


def test_older_runs_with_a_bare_pid_are_checked_on_this_host(dead_identity):
    assert run_state({"status": "running", "pid": dead_identity["pid"]}, idle_s=1.0) == "died"


def test_a_final_status_is_shown_as_written(dead_identity):
    for status in ("finished", "stopped", "failed", "complete"):
        assert run_state({"status": status, "process": dead_identity}, idle_s=1e9) == status
    assert run_state({}, idle_s=None) == "unknown"
