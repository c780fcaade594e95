"""Run untrusted programs (and the compiler on untrusted source) with hard limits.

Two modes (doc/security.md):
- "bwrap" (default): bubblewrap with every namespace unshared (no network, own pid namespace), a cleared
  environment, a size-capped tmpfs as the only writable place, no /proc, no shell, all capabilities
  dropped, an unprivileged uid; plus rlimits (via `prlimit`) and a wall-clock SIGKILL of the process group.
- "rlimit": rlimits, a new session and a cleared environment only. Weaker: for machines without
  bubblewrap; it warns loudly.

A sandbox that fails to start is an infrastructure failure (`SandboxError`), never a verdict on the code.
bwrap's `--json-status-fd` tells the two apart: a child pid is reported only once the sandbox is up.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("bwrap", "rlimit")


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, fork failure, missing tool): retry, don't score."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed process."""

    wall_s: float = 2.0
    cpu_s: int = 2
    memory_mb: int = 512  # address space
    stack_mb: int = 8
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
    cpu_limited: bool = False  # killed by its CPU rlimit (SIGXCPU at the soft limit, SIGKILL at the hard)


# How a process killed by its CPU rlimit reports: bubblewrap passes on 128 + signal, Popen -signal.
_CPU_LIMIT_SIGNALS = (signal.SIGXCPU, signal.SIGKILL)


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

    # -- command construction -------------------------------------------------------------------

    def _rlimit_prefix(self, lim: Limits) -> list[str]:
        if not self.prlimit:
            raise SandboxError("`prlimit` (util-linux) is missing: cannot apply resource limits")
        mb = 1024 * 1024
        return [
            self.prlimit,
            f"--cpu={lim.cpu_s}:{lim.cpu_s + 1}",
            f"--as={lim.memory_mb * mb}",
            f"--stack={lim.stack_mb * mb}",
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

    def _popen(self, cmd: list[str], cwd: Path | None, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        """Start `cmd` with piped stdio, a cleared environment (bwrap: none at all) and its own
        session, so the whole process group can be killed."""
        return subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={"PATH": "/usr/bin:/bin"} if self.mode == "rlimit" else {},
            start_new_session=True,
            pass_fds=pass_fds,
        )

    def run_bytecode(
        self, program: Path, lim: Limits, stdin: bytes = b"", marker: str | None = None
    ) -> RunResult:
        """Run a bytecode executable with `ocamlrun`. In bwrap mode the program is copied into the
        sandbox's tmpfs as /tmp/prog and only ocamlrun and its shared libraries are visible: no shell,
        no compiler, no sources."""
        if not self.ocamlrun:
            raise SandboxError("ocamlrun not found: install OCaml (Debian: apt-get install ocaml-nox)")
        if self.mode == "rlimit":
            with tempfile.TemporaryDirectory(prefix="ocaml-run-") as d:
                dest = Path(d) / "prog"
                shutil.copy(program, dest)
                return self._launch(
                    [*self._rlimit_prefix(lim), self.ocamlrun, str(dest)],
                    lim,
                    cwd=Path(d),
                    stdin=stdin,
                    marker=marker,
                )
        status_r, status_w = os.pipe()
        prog_fd = os.open(program, os.O_RDONLY)
        try:
            cmd = (
                self._rlimit_prefix(lim)
                + self._bwrap_common(lim, status_w)
                + self._run_binds
                + ["--perms", "0755", "--file", str(prog_fd), "/tmp/prog", "--chdir", "/tmp", "--"]
                + [os.path.realpath(self.ocamlrun), "/tmp/prog"]
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
    ) -> RunResult:
        pass_fds = tuple(extra_fds) + ((status_fds[1],) if status_fds else ())
        start = time.monotonic()
        try:
            proc = self._popen(cmd, cwd, pass_fds)
        except OSError as e:
            if status_fds:
                os.close(status_fds[0])
                os.close(status_fds[1])
            raise SandboxError(f"could not start {cmd[0]}: {e}") from e
        if status_fds:
            os.close(status_fds[1])
        try:
            result = self._collect(proc, lim, stdin, marker, start)
        finally:
            status = b""
            if status_fds:
                status = _read_all(status_fds[0])
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
        # Death by the CPU rlimit is a timeout (the wall-clock cap is only a backstop): unless the
        # process was killed here, for its output, SIGKILL can only come from the hard CPU limit.
        code = result.returncode
        if not result.timed_out and not result.flooded and code is not None:
            sig = code - 128 if status_fds else -code
            if sig in _CPU_LIMIT_SIGNALS:
                result.timed_out = result.cpu_limited = True
        return result

    def _collect(
        self, proc: subprocess.Popen, lim: Limits, stdin: bytes, marker: str | None, start: float
    ) -> RunResult:
        assert proc.stdin and proc.stdout and proc.stderr
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        deadline = start + lim.wall_s
        bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        marker_b = marker.encode() if marker else None
        markers: list[str] = []
        carry = b""
        open_fds = set(bufs)
        timed_out = flooded = False
        hard_cap = 64 * lim.output_bytes  # read past this much and the process is killed
        total = 0
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select(list(open_fds), [], [], remaining)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
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
        if open_fds or timed_out:
            _kill_group(proc)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
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
        )


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
