"""Run untrusted programs (and the compiler on untrusted source) with hard limits.

Two modes (doc/security.md):
- "bwrap" (default): bubblewrap with every namespace unshared (no network, own pid namespace), a cleared
  environment, a size-capped tmpfs as the only writable place, no /proc, no shell, all capabilities
  dropped, an unprivileged uid; plus rlimits (via `prlimit`), a CPU-time supervisor and a wall-clock
  SIGKILL.
- "rlimit": rlimits, a new session and a cleared environment only. Weaker: for machines without
  bubblewrap; it warns loudly.

CPU time is enforced to the millisecond by `_CpuWatch`: it reads the CPU time of every process of the
sandbox from the host's /proc (the whole pid namespace in bwrap mode, the session in rlimit mode; children
included, reaped or not) every few milliseconds and SIGKILLs them all past the limit. RLIMIT_CPU, which
counts whole seconds and each process on its own, stays as a backstop a second later.

A sandbox that fails to start is an infrastructure failure (`SandboxError`), never a verdict on the code.
bwrap's `--json-status-fd` tells the two apart: a child pid is reported only once the sandbox is up.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

MODES = ("bwrap", "rlimit")


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, fork failure, missing tool): retry, don't score."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed process."""

    wall_s: float = 2.0
    cpu_s: float = 2.0  # CPU time of all the sandbox's processes together, enforced to a few ms
    memory_mb: int = 512  # address space
    stack_mb: float = 8
    file_mb: int = 1  # largest file it may write
    open_files: int = 64
    tmpfs_mb: int = 16  # all it may write in total (bwrap mode)
    output_bytes: int = 64 * 1024  # kept of stdout and of stderr each; the rest is read and dropped


@dataclass
class RunResult:
    """What a sandboxed process did."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    marker_lines: list[str] = field(default_factory=list)  # stdout lines containing `marker`, uncapped
    flooded: bool = False  # killed here for printing more than 64 x output_bytes
    cpu_limited: bool = False  # killed for its CPU time (by the supervisor, or the rlimit backstop)
    # CPU time the sandbox's processes used: the larger of wait4's rusage and the supervisor's last poll.
    # bwrap does not hand its pid namespace's rusage back, so there it is the poll (up to one poll
    # interval short); the verifier times reference solutions by the program's own report instead.
    cpu_s: float = 0.0


# How a process killed by its CPU rlimit reports: bubblewrap passes on 128 + signal, Popen -signal.
_CPU_LIMIT_SIGNALS = (signal.SIGXCPU, signal.SIGKILL)
# The CPU supervisor polls every CPU_POLL_FRACTION of the limit, within these bounds, and looks for new
# processes of the sandbox (forks) every CPU_RESCAN_S: a run can overshoot its limit by at most about
# one poll interval, or one rescan interval per core for processes forked since the last scan.
CPU_POLL_MIN_S = 0.001
CPU_POLL_MAX_S = 0.01
CPU_POLL_FRACTION = 0.02
CPU_RESCAN_S = 0.02
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.path.exists(p)), None
    )


def _library_binds(binary: str) -> list[str]:
    """bwrap arguments that make `binary` and the shared libraries it loads (per ldd) visible read-only,
    file by file: no directory of the host (and so no shell) comes along.

    Top-level symlinks such as /lib64 -> usr/lib64 are recreated so the ELF interpreter path resolves.
    """
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    paths = [binary]
    for line in out.splitlines():
        parts = line.split("=>")
        path = (parts[1] if len(parts) > 1 else parts[0]).strip().split(" ")[0]
        if path.startswith("/"):
            paths.append(path)
    symlinks: dict[str, str] = {}
    targets: dict[str, str] = {}  # path inside the sandbox -> real file on the host
    for p in paths:
        top = "/" + p.split("/")[1]
        seen = p
        if os.path.islink(top):
            symlinks[top] = os.readlink(top)
            seen = os.path.normpath(os.path.join(os.path.dirname(top), symlinks[top], *p.split("/")[2:]))
        targets[seen] = os.path.realpath(p)
        targets[os.path.realpath(p)] = os.path.realpath(p)
    args: list[str] = []
    for link, target in sorted(symlinks.items()):
        args += ["--symlink", target, link]
    for inside, real in sorted(targets.items()):
        args += ["--ro-bind", real, inside]
    return args


class Sandbox:
    """Launches processes in the configured isolation mode."""

    def __init__(self, mode: str = "bwrap", ocamlrun: str | None = None):
        if mode not in MODES:
            raise ValueError(f"VERIFIER_SANDBOX={mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        self.prlimit = _tool("prlimit")
        self.bwrap = _tool("bwrap")
        if mode == "bwrap" and not self.bwrap:
            raise SandboxError(
                "VERIFIER_SANDBOX=bwrap but bubblewrap is not installed (Debian: apt-get install bubblewrap); "
                "set VERIFIER_SANDBOX=rlimit to run with the weaker rlimit-only sandbox"
            )
        if mode == "rlimit":
            warnings.warn(
                "VERIFIER_SANDBOX=rlimit: model-written code runs WITHOUT bubblewrap isolation (no network, "
                "filesystem or pid namespace). Only rlimits and a wall-clock kill protect this machine.",
                RuntimeWarning,
                stacklevel=2,
            )
        self._compile_binds: list[str] = []
        for d in ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/etc/alternatives", "/nix/store"):
            if os.path.exists(d):
                self._compile_binds += ["--ro-bind", d, d]
        self.ocamlrun = ocamlrun or _tool("ocamlrun")
        self._run_binds = _library_binds(os.path.realpath(self.ocamlrun)) if self.ocamlrun else []
        self._native_binds: list[str] | None = None  # the shared libraries of native test programs
        self._userns = _no_nested_userns(self.bwrap) if mode == "bwrap" else []

    # -- command construction -------------------------------------------------------------------

    def _rlimit_prefix(self, lim: Limits) -> list[str]:
        if not self.prlimit:
            raise SandboxError("`prlimit` (util-linux) is missing: cannot apply resource limits")
        mb = 1024 * 1024
        backstop = math.ceil(lim.cpu_s) + 1  # whole seconds; _CpuWatch stops the run before this
        return [
            self.prlimit,
            f"--cpu={backstop}:{backstop + 1}",
            f"--as={lim.memory_mb * mb}",
            f"--stack={int(lim.stack_mb * mb)}",
            f"--fsize={lim.file_mb * mb}",
            f"--nofile={lim.open_files}",
            "--core=0",
            "--",
        ]

    def _bwrap_common(self, lim: Limits, status_fd: int | None) -> list[str]:
        assert self.bwrap
        status = ["--json-status-fd", str(status_fd)] if status_fd is not None else []
        return [
            self.bwrap,
            "--unshare-all",
            *self._userns,
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin",
            "--uid",
            "65534",
            "--gid",
            "65534",
            *status,
            "--dev",
            "/dev",
            "--size",
            str(lim.tmpfs_mb * 1024 * 1024),
            "--tmpfs",
            "/tmp",
        ]

    # -- entry points ---------------------------------------------------------------------------

    def compile(self, argv: list[str], workdir: Path, lim: Limits) -> RunResult:
        """Run a compiler command in `workdir` (bound read-write at /w). The compiler and its
        standard library are visible read-only; nothing else of the host is."""
        if self.mode == "rlimit":
            return self._launch(self._rlimit_prefix(lim) + argv, lim, cwd=workdir)
        status_r, status_w = os.pipe()
        cmd = (
            self._rlimit_prefix(lim)
            + self._bwrap_common(lim, status_w)
            + self._compile_binds
            + ["--bind", str(workdir), "/w", "--chdir", "/w", "--"]
            + argv
        )
        return self._launch(cmd, lim, status_fds=(status_r, status_w))

    def start_server(
        self, binary: Path, inside: str, args: list[str], workdir: Path, lim: Limits
    ) -> subprocess.Popen:
        """Start a long-lived compiler process (the compile server) under exactly the isolation and
        limits of `compile`: the same read-only binds, `workdir` read-write at /w as its only writable
        host directory, the same rlimits; `binary` is bound read-only at `inside`. Its stdin and stdout
        are pipes to the caller; the caller owns its lifetime (kill its process group)."""
        if self.mode == "rlimit":
            cmd = [*self._rlimit_prefix(lim), str(binary), *args]
            cwd: Path | None = workdir
        else:
            cmd = (
                self._rlimit_prefix(lim)
                + self._bwrap_common(lim, None)
                + self._compile_binds
                + ["--ro-bind", str(binary), inside]
                + ["--bind", str(workdir), "/w", "--chdir", "/w", "--", inside, *args]
            )
            cwd = None
        try:
            return self._popen(cmd, cwd)
        except OSError as e:
            raise SandboxError(f"could not start {cmd[0]}: {e}") from e

    def _popen(
        self,
        cmd: list[str],
        cwd: Path | None,
        pass_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """Start `cmd` with piped stdio, a cleared environment (bwrap: none at all; it sets the
        sandbox's own) and its own session, so the whole process group can be killed."""
        return subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={"PATH": "/usr/bin:/bin", **(env or {})} if self.mode == "rlimit" else {},
            start_new_session=True,
            pass_fds=pass_fds,
        )

    def run_bytecode(
        self,
        program: Path,
        lim: Limits,
        stdin: bytes = b"",
        marker: str | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        """Run a bytecode executable with `ocamlrun`, its environment only `env` (and PATH). In bwrap
        mode the program is copied into the sandbox's tmpfs as /tmp/prog and only ocamlrun and its
        shared libraries are visible: no shell, no compiler, no sources."""
        if not self.ocamlrun:
            raise SandboxError("ocamlrun not found: install OCaml (Debian: apt-get install ocaml-nox)")
        ocamlrun = os.path.realpath(self.ocamlrun)
        return self._run_copied(program, lim, self._run_binds, ocamlrun, stdin, marker, env or {})

    def run_native(
        self, program: Path, lim: Limits, stdin: bytes = b"", marker: str | None = None
    ) -> RunResult:
        """Run a native executable (VERIFIER_NATIVE=1) as `run_bytecode` runs bytecode: in bwrap mode
        copied into the tmpfs as /tmp/prog, with only the shared libraries it loads visible. A native
        program is larger than the 1 MiB file-size limit, under which bubblewrap copies it: that limit
        grows to the program's size."""
        size_mb = math.ceil(os.path.getsize(program) / 2**20)
        if lim.file_mb <= size_mb:
            lim = replace(lim, file_mb=size_mb + 1, tmpfs_mb=max(lim.tmpfs_mb, 2 * size_mb + 2))
        if self.mode == "bwrap" and self._native_binds is None:
            # Every native program of one compiler loads the same libraries: ask ldd once, and bind
            # those, not the program's own host path.
            binds = _library_binds(os.path.realpath(program))
            real = os.path.realpath(program)
            self._native_binds = [
                a
                for i in range(0, len(binds), 3)
                if not (binds[i] == "--ro-bind" and binds[i + 1] == real)
                for a in binds[i : i + 3]
            ]
        return self._run_copied(program, lim, self._native_binds or [], None, stdin, marker, {})

    def _run_copied(
        self,
        program: Path,
        lim: Limits,
        binds: list[str],
        interpreter: str | None,
        stdin: bytes,
        marker: str | None,
        env: dict[str, str],
    ) -> RunResult:
        """Run a copy of `program` (through `interpreter`, if any): in bwrap mode at /tmp/prog in the
        sandbox's tmpfs, seeing only `binds`; in rlimit mode from a private temporary directory."""
        head = [interpreter] if interpreter else []
        if self.mode == "rlimit":
            with tempfile.TemporaryDirectory(prefix="ocaml-run-") as d:
                dest = Path(d) / "prog"
                shutil.copy(program, dest)
                cmd = [*self._rlimit_prefix(lim), *head, str(dest)]
                return self._launch(cmd, lim, cwd=Path(d), stdin=stdin, marker=marker, env=env)
        status_r, status_w = os.pipe()
        prog_fd = os.open(program, os.O_RDONLY)
        try:
            cmd = (
                self._rlimit_prefix(lim)
                + self._bwrap_common(lim, status_w)
                + binds
                + [arg for k, v in sorted(env.items()) for arg in ("--setenv", k, v)]
                + ["--perms", "0755", "--file", str(prog_fd), "/tmp/prog", "--chdir", "/tmp", "--"]
                + [*head, "/tmp/prog"]
            )
            return self._launch(
                cmd, lim, stdin=stdin, marker=marker, status_fds=(status_r, status_w), extra_fds=(prog_fd,)
            )
        finally:
            os.close(prog_fd)

    # -- the process itself ---------------------------------------------------------------------

    def _launch(
        self,
        cmd: list[str],
        lim: Limits,
        cwd: Path | None = None,
        stdin: bytes = b"",
        marker: str | None = None,
        status_fds: tuple[int, int] | None = None,
        extra_fds: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
    ) -> RunResult:
        pass_fds = tuple(extra_fds) + ((status_fds[1],) if status_fds else ())
        start = time.monotonic()
        try:
            proc = self._popen(cmd, cwd, pass_fds, env)
        except OSError as e:
            if status_fds:
                os.close(status_fds[0])
                os.close(status_fds[1])
            raise SandboxError(f"could not start {cmd[0]}: {e}") from e
        if status_fds:
            os.close(status_fds[1])
        # rlimit mode: prlimit execs the command, so the sandbox is proc's session; bwrap mode: the pid
        # namespace whose init bwrap reports on its status fd.
        watch = _CpuWatch(lim.cpu_s, session=None if status_fds else proc.pid)
        status = bytearray()
        try:
            result = self._collect(proc, lim, stdin, marker, start, watch, status_fds, status)
        finally:
            watch.close()
            if status_fds:
                status += _read_all(status_fds[0])
                os.close(status_fds[0])
        if status_fds and b"child-pid" not in status:
            raise SandboxError(
                f"sandbox failed to start (exit {result.returncode}): {result.stderr.strip()[:300]}"
            )
        if status_fds:
            # bwrap reports the child's own exit status; its pid-1 wrapper may exit differently.
            for line in status.decode(errors="replace").splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if "exit-code" in obj and not result.timed_out:
                    result.returncode = int(obj["exit-code"])
        # Death by the CPU rlimit backstop is a timeout too: unless the process was killed here (wall
        # clock, CPU supervisor, output), SIGKILL can only come from the hard CPU limit.
        code = result.returncode
        if not result.timed_out and not result.flooded and code is not None:
            sig = code - 128 if status_fds else -code
            if sig in _CPU_LIMIT_SIGNALS:
                result.timed_out = result.cpu_limited = True
        return result

    def _collect(
        self,
        proc: subprocess.Popen,
        lim: Limits,
        stdin: bytes,
        marker: str | None,
        start: float,
        watch: _CpuWatch,
        status_fds: tuple[int, int] | None,
        status: bytearray,
    ) -> RunResult:
        """Feed stdin, read stdout/stderr (capped), and enforce the wall clock, the CPU limit and the
        output cap until the process closes its output; then reap it and account its CPU time."""
        assert proc.stdin and proc.stdout and proc.stderr
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        deadline = start + lim.wall_s
        bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        status_fd = status_fds[0] if status_fds else None
        marker_b = marker.encode() if marker else None
        markers: list[str] = []
        carry = b""
        open_fds = set(bufs) | ({status_fd} if status_fd is not None else set())
        timed_out = flooded = cpu_limited = False
        hard_cap = 64 * lim.output_bytes  # read past this much and the process is killed
        total = 0
        while open_fds - {status_fd}:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if watch.over_limit(now):
                timed_out = cpu_limited = True
                break
            wait = min(deadline - now, watch.poll_interval_s) if watch.armed else deadline - now
            ready, _, _ = select.select(list(open_fds), [], [], wait)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                    continue
                if fd == status_fd:
                    status += chunk
                    watch.arm_from_status(status)
                    continue
                total += len(chunk)
                buf = bufs[fd]
                if len(buf) < lim.output_bytes:
                    buf += chunk[: lim.output_bytes - len(buf)]
                if fd == out_fd and marker_b:
                    data = carry + chunk
                    *complete, carry = data.split(b"\n")
                    carry = carry[-4096:]
                    markers += [ln.decode(errors="replace") for ln in complete if marker_b in ln]
            if total > hard_cap:
                flooded = True
                break
        killed = bool(open_fds - {status_fd}) or timed_out
        reaped_cpu = 0.0
        if not killed:
            # The output is closed, but the process may not have exited (it can close its output and
            # go on): wait for it under the same CPU limit, and the wall clock (a second at least).
            try:
                reaped_cpu = _reap(proc, max(1.0, deadline - time.monotonic()), watch)
            except _CpuLimitReached:
                killed = timed_out = cpu_limited = True
            except subprocess.TimeoutExpired:
                killed = timed_out = True
        if killed:
            watch.kill_all()
            _kill_group(proc)
            reaped_cpu = _reap(proc, timeout=None)
            watch.wait_gone()
        elif watch.session_mode:
            # rlimit mode has no pid namespace that ends with its first process: whatever the program
            # left running in its session (Sys.command can start a shell there) is stopped now.
            watch.forget(proc.pid)  # reaped: its pid may already belong to someone else
            watch.kill_all()
            watch.wait_gone()
        else:
            # bwrap mode: the namespace ends with its init, which can outlive bwrap by a moment while
            # the kernel stops what was left inside; the verdict waits for it.
            watch.wait_init_gone()
        if marker_b and carry and marker_b in carry:
            markers.append(carry.decode(errors="replace"))
        proc.stdout.close()
        proc.stderr.close()
        return RunResult(
            returncode=None if timed_out else proc.returncode,
            stdout=bufs[out_fd].decode(errors="replace"),
            stderr=bufs[err_fd].decode(errors="replace"),
            timed_out=timed_out,
            duration_s=time.monotonic() - start,
            marker_lines=markers,
            flooded=flooded,
            cpu_limited=cpu_limited,
            # Processes killed with their pid namespace are reaped outside this process tree: then the
            # last poll is the better count.
            cpu_s=round(max(reaped_cpu, watch.last_total_s), 6),
        )


class _CpuWatch:
    """The CPU time of all the processes of one sandbox, read from /proc, against a limit.

    A process's own time is the larger of its thread group's utime+stime (clock ticks, summed over its
    threads) and its main thread's schedstat runtime (nanoseconds); its children's time, once it has
    reaped them, is its cutime+cstime. Summed over the sandbox's live (and zombie) processes, that is
    all the CPU time the sandbox has used, whatever it forks, since a process's time moves to its parent
    only when it stops being listed. Processes forked since the last scan are found on the next one.
    """

    def __init__(self, limit_s: float, session: int | None):
        self.limit_s = limit_s
        self.poll_interval_s = min(CPU_POLL_MAX_S, max(CPU_POLL_MIN_S, CPU_POLL_FRACTION * limit_s))
        self._session = session  # rlimit mode: members are the processes of this session
        self._ns: str | None = None  # bwrap mode: members are the processes of this pid namespace
        self._ns_fd: int | None = None  # held open, so that the namespace's id cannot be reused meanwhile
        self._init: int | None = None
        self._pids: set[int] = {session} if session else set()
        self.armed = session is not None
        self._next_poll = 0.0
        self._next_scan = 0.0
        self.last_total_s = 0.0

    def arm_from_status(self, status: bytearray) -> None:
        """bwrap mode: start watching once bwrap has reported its namespace's init (`child-pid`)."""
        if self.armed:
            return
        for line in bytes(status).decode(errors="replace").splitlines():
            try:
                pid = json.loads(line).get("child-pid")
            except (ValueError, AttributeError):
                continue
            if pid:
                try:
                    self._ns_fd = os.open(f"/proc/{int(pid)}/ns/pid", os.O_RDONLY)
                    self._ns = os.readlink(f"/proc/{int(pid)}/ns/pid")
                except OSError:
                    return  # already gone: nothing left to watch
                self._init = int(pid)
                self._pids = {int(pid)}
                self.armed = True
                return

    @property
    def session_mode(self) -> bool:
        return self._session is not None

    def close(self) -> None:
        if self._ns_fd is not None:
            os.close(self._ns_fd)
            self._ns_fd = None

    def over_limit(self, now: float) -> bool:
        if not self.armed or now < self._next_poll:
            return False
        self._next_poll = now + self.poll_interval_s
        if now >= self._next_scan:
            self._scan()
            self._next_scan = now + CPU_RESCAN_S
        # A child being reaped is briefly in its parent's cutime and still listed itself: a reading
        # over the limit is confirmed by a second one before it counts.
        return self._total() > self.limit_s and self._total() > self.limit_s

    def _total(self) -> float:
        total = 0.0
        for pid in list(self._pids):
            t = _process_cpu_s(pid)
            if t is None:
                self._pids.discard(pid)  # reaped: its time is in its parent's cutime now
            else:
                total += t
        self.last_total_s = max(self.last_total_s, total)
        return total

    def _scan(self) -> None:
        """Add every process of the sandbox that is not known yet."""
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid in self._pids:
                continue
            try:
                if self._ns is not None:
                    member = os.readlink(f"/proc/{pid}/ns/pid") == self._ns
                else:
                    member = _stat_fields(pid)[2] == self._session  # stat field 6: session id
            except (OSError, IndexError, ValueError):
                continue
            if member:
                self._pids.add(pid)

    def kill_all(self) -> None:
        """SIGKILL every known process of the sandbox (the caller kills bwrap's process group too)."""
        if self.armed:
            self._scan()
        for pid in self._pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def forget(self, pid: int) -> None:
        self._pids.discard(pid)

    def wait_init_gone(self, timeout_s: float = 2.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._init is not None and _running(self._init) and time.monotonic() < deadline:
            time.sleep(0.0005)

    def wait_gone(self, timeout_s: float = 2.0) -> None:
        """Return once every killed process has exited (a zombie has), so that none runs on after the
        verdict; give up after `timeout_s` (the kernel finishes what SIGKILL started regardless)."""
        deadline = time.monotonic() + timeout_s
        while self._pids and time.monotonic() < deadline:
            self._pids = {pid for pid in self._pids if _running(pid)}
            if self._pids:
                time.sleep(0.001)


def _stat_fields(pid: int) -> list[int]:
    """/proc/<pid>/stat from field 4 (ppid) on, as integers (the command name is skipped)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    return [int(x) for x in raw[raw.rindex(b")") + 4 :].split()]


def _running(pid: int) -> bool:
    """Whether `pid` still exists and has not exited (a zombie has: it runs nothing more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] not in (b"Z", b"X")


def _process_cpu_s(pid: int) -> float | None:
    """CPU seconds of a process and of the children it has reaped; None if it no longer exists."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return None
    # fields[0] is stat field 4; utime, stime, cutime, cstime are fields 14-17
    own = (fields[10] + fields[11]) / _CLOCK_TICKS
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            own = max(own, int(f.read().split()[0]) / 1e9)
    except (OSError, ValueError, IndexError):
        pass
    return own + (fields[12] + fields[13]) / _CLOCK_TICKS


class _CpuLimitReached(Exception):
    """Raised by `_reap` when the watched sandbox passed its CPU limit before exiting."""


def _reap(proc: subprocess.Popen, timeout: float | None, watch: _CpuWatch | None = None) -> float:
    """Wait for `proc` (as Popen.wait would; TimeoutExpired after `timeout`; _CpuLimitReached when
    `watch` says the limit was passed first) and return the CPU seconds it and every descendant it
    reaped used, from wait4's rusage."""
    fd = None
    if timeout is not None:
        with contextlib.suppress(OSError):
            fd = os.pidfd_open(proc.pid)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, 0 if timeout is None else os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return usage.ru_utime + usage.ru_stime
            now = time.monotonic()
            if watch is not None and watch.over_limit(now):
                raise _CpuLimitReached
            left = deadline - now
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            if watch is not None and watch.armed:
                left = min(left, watch.poll_interval_s)
            if fd is not None:
                select.select([fd], [], [], left)
            else:
                time.sleep(min(0.001, left))
    finally:
        if fd is not None:
            os.close(fd)


_USERNS_PROBE: dict[str, list[str]] = {}


def _no_nested_userns(bwrap: str | None) -> list[str]:
    """bwrap's arguments that stop the sandbox from creating user namespaces of its own, if this
    bwrap and kernel allow it (checked once). Without them a native program could `unshare` a pid
    namespace that the CPU supervisor, which counts the sandbox's own namespace, would not see."""
    if not bwrap:
        return []
    if bwrap not in _USERNS_PROBE:
        flags = ["--unshare-user", "--disable-userns"]
        try:
            ok = (
                subprocess.run(
                    [bwrap, "--unshare-all", *flags, "--ro-bind", "/", "/", "true"],
                    capture_output=True,
                    timeout=20,
                ).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            ok = False
        if not ok:
            warnings.warn(
                "bubblewrap cannot forbid nested user namespaces here (--disable-userns): native test "
                "programs (VERIFIER_NATIVE=1) could hide processes from the CPU supervisor",
                RuntimeWarning,
                stacklevel=3,
            )
        _USERNS_PROBE[bwrap] = flags if ok else []
    return _USERNS_PROBE[bwrap]


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _read_all(fd: int) -> bytes:
    chunks = []
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
