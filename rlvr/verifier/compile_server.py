"""A persistent, sandboxed `ocamlc` for one verifier worker (see compile_server.ml for the OCaml side).

Why: a per-process `ocamlc` spends most of its time starting (exec of an 8.8 MB binary, dynamic
linking, the compiler's module initialisation), and the verifier runs it for every completion, and
again for every counted type error. The server starts once, inside the same sandbox and limits as a
per-process compile, and forks a child per job that runs the real ocamlc driver, so its answer is
byte for byte ocamlc's (doc/benchmarks.md has the numbers).

Verdicts never depend on which path ran: a job whose child timed out, died on a signal or hit a
"Fatal error" (the compiler's own stack or memory limit, where the depth at which it dies could differ
from a fresh process), or a server that stops answering, raises `ServerFailure`; the caller then
compiles that job per process, and that verdict stands. A server that misbehaved is killed and
restarted on its next job.

The binary is built once with `ocamlfind ocamlopt -package compiler-libs.bytecomp` and cached under
$OCAMLER_CACHE/compile-server/<key>/ (default ~/.cache/ocamler-grpo), keyed by the source and the OCaml installation.
Without ocamlfind or compiler-libs (Debian: ocaml-findlib, ocaml-compiler-libs) `server_binary`
returns None after one logged line, and the verifier compiles per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..models import cache_root as models_cache_root
from .sandbox import Limits, RunResult, Sandbox, SandboxError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("compile_server.ml")
PROTOCOL = "1"
INSIDE = "/opt/ocamler/compile_server"  # where the binary is bound read-only inside the sandbox
START_TIMEOUT_S = 20.0  # the first start of a 12 MB binary on a busy machine
REPLY_MARGIN_S = 3.0  # beyond a job's deadline, before the server itself is declared hung


class ServerFailure(RuntimeError):
    """The server did not give ocamlc's answer for this job: compile it per process instead."""


class ServerUnavailable(ServerFailure):
    """The server cannot be used at all here (it does not start or is the wrong compiler)."""


_build_lock = threading.Lock()
_built: dict[str, Path | None] = {}


def cache_root() -> Path:
    """$OCAMLER_CACHE/compile-server (the project's one cache directory, .envrc)."""
    return models_cache_root() / "compile-server"


def _output(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def ocaml_identity(ocamlc: str) -> tuple[str, str] | None:
    """(version, standard library directory) of the `ocamlc` the verifier runs, or None."""
    version, where = _output([ocamlc, "-version"]), _output([ocamlc, "-where"])
    return (version, where) if version and where else None


def server_binary(ocamlc: str) -> Path | None:
    """The compile server for this `ocamlc`, built on first use and cached on disk; None (after one
    logged line) when it cannot be built here, in which case the verifier compiles per process."""
    with _build_lock:
        if ocamlc in _built:
            return _built[ocamlc]
        _built[ocamlc] = path = _build(ocamlc)
        return path


def _unavailable(why: str) -> None:
    log.warning("verifier compile server unavailable (%s): compiling with one ocamlc process per job", why)


def _build(ocamlc: str) -> Path | None:
    ocamlfind = shutil.which("ocamlfind")
    if not ocamlfind:
        _unavailable("ocamlfind not found; Debian: apt-get install ocaml-findlib ocaml-compiler-libs")
        return None
    ident = ocaml_identity(ocamlc)
    libdir = _output([ocamlfind, "query", "compiler-libs.bytecomp"])
    opt_ident = (_output([ocamlfind, "ocamlopt", "-version"]), _output([ocamlfind, "ocamlopt", "-where"]))
    if not ident or not libdir:
        _unavailable("compiler-libs not found; Debian: apt-get install ocaml-compiler-libs")
        return None
    if opt_ident != ident:
        # The server must be the very compiler `ocamlc` is, or its verdicts could differ.
        _unavailable(f"ocamlfind's compiler {opt_ident} is not the ocamlc in PATH {ident}")
        return None
    real = os.path.realpath(ocamlc)
    key = hashlib.sha256(
        "\0".join(
            [SOURCE.read_text(), *ident, libdir, real, str(os.stat(real).st_mtime_ns), PROTOCOL]
        ).encode()
    ).hexdigest()[:20]
    try:
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        root = Path(tempfile.gettempdir()) / f"ocamler-grpo-{os.getuid()}" / "compile-server"
        root.mkdir(parents=True, exist_ok=True)
    target = root / key / "compile_server"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        shutil.copy(SOURCE, tmp / SOURCE.name)
        cmd = [ocamlfind, "ocamlopt", "-package", "compiler-libs.bytecomp,unix", "-linkpkg"]
        cmd += [SOURCE.name, "-o", "compile_server"]
        try:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            _unavailable(f"build failed: {e}")
            return None
        if r.returncode != 0:
            _unavailable(f"build failed: {(r.stderr or r.stdout).strip()[-300:]}")
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / "compile_server", target)  # atomic: concurrent builders agree on the result
        log.info("built the verifier compile server: %s", target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class CompileServer:
    """One sandboxed compile server serving one worker's job directory. Not thread-safe: each verifier
    worker thread owns one. Started lazily, restarted after a failure and every `max_jobs` jobs (its
    own CPU time counts against the compile CPU limit it runs under)."""

    def __init__(
        self,
        sandbox: Sandbox,
        binary: Path,
        workdir: Path,
        limits: Limits,
        identity: tuple[str, str],
        max_jobs: int = 1000,
    ):
        self.sandbox = sandbox
        self.binary = binary
        self.workdir = workdir
        self.limits = limits
        self.identity = identity
        self.max_jobs = max_jobs
        self.starts = 0  # how many server processes were started (tests look at it)
        self._proc: subprocess.Popen | None = None
        self._buf = bytearray()
        self._jobs = 0
        self._scratch: str | None = None  # rlimit mode: private directory for the captured output

    # -- lifecycle --------------------------------------------------------------------------------

    def _start(self) -> None:
        if self.sandbox.mode == "bwrap":
            scratch = "/tmp"  # the sandbox's own size-capped tmpfs
        else:
            if self._scratch is None:
                self._scratch = tempfile.mkdtemp(prefix="ocaml-server-")
            scratch = self._scratch
        try:
            self._proc = self.sandbox.start_server(self.binary, INSIDE, [scratch], self.workdir, self.limits)
        except SandboxError as e:
            raise ServerUnavailable(f"could not start: {e}") from e
        self.starts += 1
        self._jobs = 0
        self._buf.clear()
        try:
            ready = self._read_line(time.monotonic() + START_TIMEOUT_S).split()
        except ServerFailure as e:
            err = self._stderr_tail()
            self.close()
            raise ServerUnavailable(f"did not start: {e} {err}".strip()) from e
        if ready[:2] != ["ready", PROTOCOL] or tuple(ready[2:4]) != self.identity:
            self.close()
            raise ServerUnavailable(f"unexpected greeting {' '.join(ready)!r}, wanted {self.identity}")

    def close(self) -> None:
        """Kill the server (its whole sandbox) and forget it; the next job starts a new one."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()

    def shutdown(self) -> None:
        """Stop for good: end of input lets the server exit on its own (so its CPU time is accounted to
        this process's children like any compiler's), then the sandbox is killed regardless, and the
        rlimit-mode scratch directory removed."""
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        self.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # -- jobs -------------------------------------------------------------------------------------

    def compile(self, argv: list[str], deadline_s: float) -> RunResult:
        """Run `argv` (an ocamlc command line, argv[0] the compiler) in the job directory.

        Returns what a per-process ocamlc would have; raises ServerFailure when the answer could differ
        from one (the caller then compiles per process)."""
        if any("\n" in a for a in argv):
            raise ServerFailure("an argument contains a newline")
        if self._proc is None or self._jobs >= self.max_jobs:
            self.close()
            self._start()
        assert self._proc and self._proc.stdin
        start = time.monotonic()
        cap = self.limits.output_bytes
        request = f"job {int(deadline_s * 1000)} {cap} {len(argv)}\n" + "".join(a + "\n" for a in argv)
        self._jobs += 1
        try:
            self._proc.stdin.write(request.encode())
            self._proc.stdin.flush()
            until = start + deadline_s + REPLY_MARGIN_S
            head = self._read_line(until).split()
            if len(head) != 7 or head[0] != "done":
                raise ServerFailure(f"bad reply {' '.join(head)!r}")
            status, code = head[1], int(head[2])
            out_size, err_size, n_out, n_err = (int(x) for x in head[3:7])
            payload = self._read_exact(n_out + n_err, until)
        except (OSError, ValueError, ServerFailure) as e:
            self.close()
            raise ServerFailure(f"the compile server stopped answering: {e}") from e
        stdout = payload[:n_out].decode(errors="replace")
        stderr = payload[n_out:].decode(errors="replace")
        if status != "exit":
            raise ServerFailure(f"the compiler {status} ({code})")
        if "Fatal error: exception" in stderr:
            raise ServerFailure("the compiler died of an uncaught exception")
        if out_size + err_size > 64 * cap:
            raise ServerFailure("output flood")  # a per-process compile would have been killed
        return RunResult(
            returncode=code,
            stdout=stdout,
            stderr=stderr,
            timed_out=False,
            duration_s=time.monotonic() - start,
        )

    # -- pipe reading with a deadline -------------------------------------------------------------

    def _fill(self, until: float) -> None:
        assert self._proc and self._proc.stdout
        fd = self._proc.stdout.fileno()
        left = until - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ServerFailure("timed out")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise ServerFailure("exited")
        self._buf += chunk

    def _read_line(self, until: float) -> str:
        while b"\n" not in self._buf:
            self._fill(until)
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf[:] = rest
        return line.decode(errors="replace")

    def _read_exact(self, n: int, until: float) -> bytes:
        while len(self._buf) < n:
            self._fill(until)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _stderr_tail(self) -> str:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return ""
        fd = proc.stderr.fileno()
        if not select.select([fd], [], [], 0.5)[0]:
            return ""
        with contextlib.suppress(OSError):
            return os.read(fd, 4096).decode(errors="replace").strip()[-300:]
        return ""
