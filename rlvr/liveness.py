"""Is a run really running? The state of a run from what it recorded and what this host can see.

A run writes `status: running` when it starts and its final status when it ends. A process killed with
SIGKILL, by the OOM killer or by a reboot writes nothing, so `running` alone can lie for ever. Each run
therefore records who wrote it (`process`: host, boot id, pid, the pid's start time), and readers
(the dashboard, `make status`, the pipeline's resume check) combine that with the age of its newest line:

- `died`: recorded as running, but its process is gone on this host: no such pid, a zombie, a pid
  reused by another process (a different start time), or the machine rebooted (a different boot id).
- `stalled`: recorded as running, the process may be alive (or lives on another host), but nothing was
  written for much longer than the run's steps take (`stall_after`).
- `running`: recorded as running, alive, and writing.
- anything else (`finished`, `stopped`, `failed`, ...) is the status the run wrote itself.
"""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# A run is stalled after this many seconds without a line, or STALL_STEPS of its typical step, if longer:
# loading a model, an SFT evaluation pass or a checkpoint can take minutes on CPU without a line.
STALL_MIN_S = 900.0
STALL_STEPS = 10


def boot_id() -> str | None:
    """This boot of this machine (Linux): it changes at every reboot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def pid_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (field 22 of /proc/<pid>/stat); None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """What a run records about the process that writes it (this one by default)."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "boot_id": boot_id(), "pid": pid, "pid_start": pid_start(pid)}


def pid_alive(pid: int) -> bool:
    """A live process with this pid (a zombie, which has exited but not been reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_state(identity: Any) -> str:
    """`alive`, `gone`, or `unknown` (no identity, or one from another host) for a recorded identity."""
    if not isinstance(identity, dict) or not isinstance(identity.get("pid"), int):
        return "unknown"
    if identity.get("host") != socket.gethostname():
        return "unknown"
    if identity.get("boot_id") and boot_id() and identity["boot_id"] != boot_id():
        return "gone"  # rebooted since
    pid = identity["pid"]
    if not pid_alive(pid):
        return "gone"
    recorded, now = identity.get("pid_start"), pid_start(pid)
    if recorded is not None and now is not None and recorded != now:
        return "gone"  # the pid was reused by another process
    return "alive"


def recorded_identity(record: dict[str, Any]) -> dict[str, Any] | None:
    """The `process` a run.json / pipeline.json / summary.json recorded; for files written before it
    was recorded, their bare `pid`, taken to be on this host."""
    identity = record.get("process")
    if isinstance(identity, dict):
        return identity
    pid = record.get("pid")
    return {"host": socket.gethostname(), "pid": pid} if isinstance(pid, int) else None


def stall_after(step_times: Iterable[float]) -> float:
    """Seconds without a new line after which a running run counts as stalled."""
    times = [t for t in step_times if isinstance(t, int | float) and t > 0]
    typical = statistics.median(times) if times else 0.0
    return max(STALL_MIN_S, STALL_STEPS * typical)


def run_state(record: dict[str, Any], idle_s: float | None, step_times: Iterable[float] = ()) -> str:
    """The state to show for a run whose run.json (pipeline.json, summary.json) is `record`: its recorded
    status, or for `running`: running, stalled or died. `idle_s`: seconds since the run last wrote a
    file (None: unknown); `step_times`: its recent step durations, to scale the stall threshold."""
    status = record.get("status")
    if status != "running":
        return status if isinstance(status, str) and status else "unknown"
    if process_state(recorded_identity(record)) == "gone":
        return "died"
    if idle_s is not None and idle_s > stall_after(step_times):
        return "stalled"
    return "running"
