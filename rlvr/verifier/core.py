"""The verifier: one completion in, one graduated, hack-resistant Outcome out.

Pipeline for a completion (doc/reward.md):
  extract code -> empty? -> assemble with the signature -> ONE sandboxed `ocamlc` call compiling the
  nonce unit, the candidate (alone, first) and the tests, and linking them -> on a type error, count
  independent errors phrase by phrase -> run the tests in the sandbox, each assertion on its own,
  re-running after the one that hung or killed the program -> score -> style and degenerate rules.

Infrastructure failures (sandbox start, missing tools) are retried, then reported as stage
`infra_error` with `total_reward=None`, and counted in `Verifier.infra_failures`; never scored 0.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..envconf import Env
from .compile_server import CompileServer, ServerFailure, ServerUnavailable, ocaml_identity, server_binary
from .disk_cache import DiskCache, harness_digest
from .extract import extract_code
from .harness import (
    HarnessNames,
    assemble_candidate,
    nonce_unit_source,
    read_report,
    test_at_line,
    tests_source,
)
from .ocaml_source import SignatureError, first_error, phrases_from_parsetree, strip_comments
from .sandbox import MODES, Limits, RunResult, Sandbox, SandboxError
from .scoring import (
    COMPILE_FAILED_AFTER_TYPECHECK,
    COMPILE_OK,
    COMPILE_PARTIAL_AFTER_TYPE_ERRORS,
    MAX_COUNTED_TYPE_ERRORS,
    TESTS_MAX,
    TYPE_CHECK_MAX,
    Outcome,
    finalize,
    type_check_credit,
)
from .style import DEGENERATE_PENALTY, degenerate_reasons, style_penalty
from .time_limits import REFERENCE_RUNS, TimeLimit, derive, measurement_context

if TYPE_CHECKING:
    from ..problems import Problem

log = logging.getLogger(__name__)

# A compile-server job still running after this long is handed to a per-process ocamlc, whose verdict
# stands (compile bombs): short enough that the per-process limit (compile_timeout_s) still bounds the
# whole, long enough that no ordinary compile (tens of milliseconds) ever reaches it.
SERVER_JOB_DEADLINE_S = 1.5
SERVER_RETRY_AFTER_S = 60.0  # after a server that would not start, compile per process this long
# A test run is limited by CPU time (its problem's TimeLimit); its wall-clock cap is this many times that,
# and at least RUN_WALL_MIN_EXTRA_S more, so that a correct program on a busy machine (training shares the
# cores) is not cut short.
RUN_WALL_FACTOR = 3.0
RUN_WALL_MIN_EXTRA_S = 0.5
TIME_LIMIT_MODES = ("reference", "fixed")


class _NotMeasured(RuntimeError):
    """A reference solution could not be timed for a reason that is not the reference's."""


class OCamlNotFound(RuntimeError):
    """The OCaml toolchain the verifier needs is not installed."""


@dataclass(frozen=True)
class VerifierConfig:
    """Verifier settings; `from_env` reads the VERIFIER_* variables documented in .envrc."""

    sandbox: str = "bwrap"
    jobs: int = 0  # 0 = one worker per core
    native: bool = False  # ocamlopt instead of bytecode ocamlc (slower to compile, faster to run)
    compile_timeout_s: float = 5.0
    run_timeout_s: float = 1.0  # CPU time of one run of the test program; the ceiling of derived limits
    test_budget_s: float = 3.0  # all runs of one completion's tests together (wall clock)
    # "reference": per-problem limits derived from the reference solution (time_limits.py); "fixed":
    # run_timeout_s and test_budget_s for every problem
    time_limits: str = "reference"
    # The test program's stack, in words (OCAMLRUNPARAM=l): small, so that a non-tail-recursive answer
    # overflows on the problem set's tail-recursion tests, whose inputs can then stay small (doc/reward.md)
    stack_words: int = 131072
    memory_mb: int = 512
    retries: int = 2  # extra attempts after an infrastructure failure
    compile_server: bool = True  # persistent sandboxed compiler per worker (compile_server.py)

    def __post_init__(self) -> None:
        if self.sandbox not in MODES:
            raise ValueError(f"VERIFIER_SANDBOX={self.sandbox!r}: expected one of {', '.join(MODES)}")
        for name in ("compile_timeout_s", "run_timeout_s", "test_budget_s"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"verifier {name}={getattr(self, name)!r}: expected a positive number of seconds"
                )
        if self.time_limits not in TIME_LIMIT_MODES:
            raise ValueError(
                f"VERIFIER_TIME_LIMITS={self.time_limits!r}: expected one of {', '.join(TIME_LIMIT_MODES)}"
            )
        if self.stack_words < 4096:
            raise ValueError(f"VERIFIER_STACK_WORDS={self.stack_words}: expected at least 4096 words")
        if self.jobs < 0 or self.memory_mb < 64 or self.retries < 0:
            raise ValueError("verifier jobs must be >= 0, memory_mb >= 64 and retries >= 0")

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> VerifierConfig:
        """The VERIFIER_* variables (.envrc), parsed by the one environment reader (rlvr.envconf);
        each default is this dataclass's own. A bad value raises ConfigError naming the variable."""
        e = Env(os.environ if env is None else env)
        d = VerifierConfig()
        return VerifierConfig(
            sandbox=e.choice("VERIFIER_SANDBOX", d.sandbox, MODES),
            jobs=e.int("VERIFIER_JOBS", d.jobs, minimum=0),
            native=e.bool("VERIFIER_NATIVE", d.native),
            compile_timeout_s=e.float("VERIFIER_COMPILE_TIMEOUT", d.compile_timeout_s, 0.001, 3600.0),
            run_timeout_s=e.float("VERIFIER_RUN_TIMEOUT", d.run_timeout_s, 0.001, 3600.0),
            test_budget_s=e.float("VERIFIER_TEST_BUDGET", d.test_budget_s, 0.001, 3600.0),
            time_limits=e.choice("VERIFIER_TIME_LIMITS", d.time_limits, TIME_LIMIT_MODES),
            stack_words=e.int("VERIFIER_STACK_WORDS", d.stack_words, minimum=4096),
            memory_mb=e.int("VERIFIER_MEMORY_MB", d.memory_mb, minimum=64),
            retries=e.int("VERIFIER_RETRIES", d.retries, minimum=0),
            compile_server=e.bool("VERIFIER_COMPILE_SERVER", d.compile_server),
        )


@dataclass(frozen=True)
class _CodeVerdict:
    """Everything about a (problem, code) pair; style/degenerate rules are applied per completion."""

    stage: str
    type_check: float = 0.0
    compile: float = 0.0
    tests: float = 0.0
    tests_passed: int = 0
    tests_total: int = 0
    error: str | None = None
    type_errors: int = 0
    full_definition: bool = False
    time_limit_s: float | None = None  # the CPU limit per run, when the tests ran
    # What a Check reports (rlvr.feedback): the compiler's first error report as printed, the file it
    # is in, the lines of candidate.ml before the answer's own code, the test a tests.ml error is in,
    # and each test's verdict ("pass", "fail", "exn ...", "timeout", "crash ...", None: not run).
    diagnostic: str | None = None
    diagnostic_file: str | None = None  # "candidate.ml" | "tests.ml"
    code_line_offset: int = 0
    error_test: int | None = None
    test_verdicts: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class Check:
    """An Outcome with what a programmer would read about it: the compiler's first error report as it
    printed it (`diagnostic`, in `diagnostic_file`: "candidate.ml" holds `code_line_offset` lines of the
    problem's own code before the answer's; "tests.ml" is the harness's tests unit, where the error is
    in test `error_test`), and every test's verdict. rlvr.feedback turns it into text for a model."""

    outcome: Outcome
    diagnostic: str | None = None
    diagnostic_file: str | None = None
    code_line_offset: int = 0
    error_test: int | None = None
    test_verdicts: tuple[str | None, ...] = ()


@dataclass
class _Worker:
    """What one worker thread owns: a job directory, reused job after job (it holds the nonce unit,
    compiled once), and its compile server (None: compile per process)."""

    work: Path
    # the compiled nonce unit, kept between jobs: (.cmi, .cmo) in bytecode, (.cmi, .cmx, .o) native;
    # the second is what the link command names
    nonce_files: tuple[str, ...]
    server: CompileServer | None = None
    server_retry_at: float = 0.0
    ready: bool = False  # the nonce unit is compiled


def find_ocaml(native: bool = False) -> dict[str, str]:
    """Locate the OCaml tools, or raise OCamlNotFound with what to install."""
    tools = {"ocamlc": shutil.which("ocamlc"), "ocamlrun": shutil.which("ocamlrun")}
    if native:
        tools["ocamlopt"] = shutil.which("ocamlopt")
    missing = [k for k, v in tools.items() if not v]
    if missing:
        raise OCamlNotFound(
            f"OCaml not found ({', '.join(missing)} missing from PATH): the verifier needs the OCaml compiler. "
            "Install it with `apt-get install ocaml-nox ocaml-findlib` (Debian/Ubuntu; `make setup` does this "
            "as root), or enter the Nix shell (`make shell`)."
        )
    return {k: v for k, v in tools.items() if v}


class Verifier:
    """Scores OCaml completions against problems. Thread-safe; `score_batch` runs a worker pool."""

    def __init__(self, config: VerifierConfig | None = None):
        self.config = config or VerifierConfig()
        self.tools = find_ocaml(self.config.native)
        self.sandbox = Sandbox(self.config.sandbox, ocamlrun=self.tools["ocamlrun"])
        self.names = HarnessNames.fresh()
        self.jobs = self.config.jobs or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="verifier")
        self._problem_cache: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.infra_failures = 0
        # verified: (problem, code) pairs compiled and run; compile_fallbacks: compile-server jobs
        # redone per process; reference_measurements: reference solutions timed for a TimeLimit
        self.stats: Counter[str] = Counter()
        self._scratch = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        # One directory for all the workers' job directories: created once, removed by close().
        self._root = Path(tempfile.mkdtemp(prefix="ocaml-verify-", dir=self._scratch))
        self._local = threading.local()
        self._workers: list[_Worker] = []
        self._server_binary: Path | None = None
        self._server_identity: tuple[str, str] = ("", "")
        self._server_checked = False
        self._reference_times: DiskCache | None = None
        self._checks: DiskCache | None = None
        self._limits: dict[str, TimeLimit] = {}
        self._measuring: dict[str, threading.Lock] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            if w.server is not None:
                w.server.shutdown()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------------------

    def score(self, problem: Problem, completion: str, id: str | None = None) -> Outcome:
        """Score one completion for one problem."""
        return self.score_batch([(problem, completion)], ids=[id] if id else None)[0]

    def score_batch(
        self, items: Sequence[tuple[Problem, str]], ids: Sequence[str] | None = None
    ) -> list[Outcome]:
        """Score many completions in parallel; identical (problem, code) pairs are compiled and run once."""
        return [o for o, _v in self._score(items, ids)]

    def check_batch(
        self, items: Sequence[tuple[Problem, str]], ids: Sequence[str] | None = None
    ) -> list[Check]:
        """`score_batch`, with the compiler's report and each test's verdict (for feedback to a model:
        rlvr.environment). Only the problems' own tests run: pass a problem whose tests a model may see."""
        return [
            Check(
                outcome=o,
                diagnostic=v.diagnostic,
                diagnostic_file=v.diagnostic_file,
                code_line_offset=v.code_line_offset,
                error_test=v.error_test,
                test_verdicts=v.test_verdicts,
            )
            for o, v in self._score(items, ids)
        ]

    def _score(
        self, items: Sequence[tuple[Problem, str]], ids: Sequence[str] | None
    ) -> list[tuple[Outcome, _CodeVerdict]]:
        start = time.monotonic()
        extractions = [extract_code(text) for _p, text in items]
        keys: dict[tuple[str, str], int] = {}
        unique: list[tuple[Problem, str]] = []
        slots = []
        for (problem, _text), ex in zip(items, extractions):
            key = (_problem_key(problem), ex.code)
            if key not in keys:
                keys[key] = len(unique)
                unique.append((problem, ex.code))
            slots.append(keys[key])
        verdicts = list(self._pool.map(lambda pc: self._verify_with_retries(*pc), unique))
        verdicts = [
            v if v.stage == "infra_error" or v.tests_total else replace(v, tests_total=len(p.tests))
            for v, (p, _code) in zip(verdicts, unique)
        ]
        outcomes = []
        for n, ((problem, text), ex) in enumerate(zip(items, extractions)):
            v = verdicts[slots[n]]
            o = Outcome(
                id=(ids[n] if ids else problem.id),
                total_reward=None,
                type_check=v.type_check,
                compile=v.compile,
                tests=v.tests,
                tests_passed=v.tests_passed,
                tests_total=v.tests_total,
                stage=v.stage,
                error=v.error,
                type_errors=v.type_errors,
                time_limit_s=v.time_limit_s,
            )
            if v.stage not in ("infra_error", "empty"):
                o.degenerate_reasons = degenerate_reasons(text, ex, _safe_name(problem), v.full_definition)
                o.is_degenerate = bool(o.degenerate_reasons)
                o.degenerate_penalty = DEGENERATE_PENALTY if o.is_degenerate else 0.0
                if v.stage == "pass":
                    o.style_penalty, o.style_reasons = style_penalty(ex)
            outcomes.append((finalize(o), v))
        per_item_ms = (time.monotonic() - start) * 1000 / max(1, len(items))
        for o, _v in outcomes:
            o.duration_ms = round(per_item_ms, 2)
        return outcomes

    def time_limit(self, problem: Problem) -> TimeLimit:
        """The limits for `problem`'s test runs: derived from its reference solution's CPU time when it
        has one (measured on first use, then cached on disk), else the fixed ones."""
        fixed = derive(None, self.config.run_timeout_s, self.config.test_budget_s)
        if self.config.time_limits == "fixed" or not problem.solution:
            return fixed
        key = _problem_key(problem, with_solution=True)
        with self._lock:
            if key in self._limits:
                return self._limits[key]
            lock = self._measuring.setdefault(key, threading.Lock())
        with lock:  # one measurement per problem, however many threads ask at once
            with self._lock:
                if key in self._limits:
                    return self._limits[key]
            times = self._times_cache()
            try:
                ref = times.get(key)
            except KeyError:
                try:
                    ref = self._reference_cpu_s(problem)
                except (SandboxError, _NotMeasured) as e:
                    # Not the reference's fault (the sandbox, a compile or run cut short on a busy
                    # machine): the fixed limits for now, and nothing kept on disk.
                    log.warning(
                        "time limit for %s: could not time its reference (%s); fixed limits", problem.id, e
                    )
                    with self._lock:
                        self._limits[key] = fixed
                    return fixed
                times.put({key: ref})
                with self._lock:
                    self.stats["reference_measurements"] += 1
            limit = derive(ref, self.config.run_timeout_s, self.config.test_budget_s)
            with self._lock:
                self._limits[key] = limit
            return limit

    def calibrate(self, problems: Sequence[Problem]) -> dict[str, TimeLimit]:
        """Every problem's limits (problem id -> TimeLimit), measuring the references not measured yet
        on this machine in parallel: worth calling once before scoring a whole problem set."""

        def one(problem: Problem) -> TimeLimit:
            try:
                return self.time_limit(problem)
            except SandboxError as e:  # its problem check could not run: scoring will retry it
                log.warning("time limit for %s: %s; fixed limits", problem.id, e)
                return derive(None, self.config.run_timeout_s, self.config.test_budget_s)

        limits = list(self._pool.map(one, problems))
        return {p.id: lim for p, lim in zip(problems, limits)}

    def check_problem(self, problem: Problem) -> str | None:
        """None if the problem's tests compile against its own signature; else why not (cached in
        memory, and on disk for this compiler and harness)."""
        key = _problem_key(problem)
        with self._lock:
            if key in self._problem_cache:
                return self._problem_cache[key]
        checks = self._checks_cache()
        try:
            reason = checks.get(key)
        except KeyError:
            reason = self._check_problem_uncached(problem)
            checks.put({key: reason})
            with self._lock:
                self.stats["problem_checks"] += 1
        with self._lock:
            self._problem_cache[key] = reason
        return reason

    # -- internals --------------------------------------------------------------------------------

    def _verify_with_retries(self, problem: Problem, code: str) -> _CodeVerdict:
        last = ""
        for attempt in range(self.config.retries + 1):
            try:
                return self._verify(problem, code)
            except SandboxError as e:
                last = str(e)
                time.sleep(0.05 * (attempt + 1))
        with self._lock:
            self.infra_failures += 1
        return _CodeVerdict(stage="infra_error", error=f"infrastructure failure (sandbox): {last}")

    def _verify(self, problem: Problem, code: str) -> _CodeVerdict:
        with self._lock:
            self.stats["verified"] += 1
        if not code.strip():
            return _CodeVerdict(stage="empty", error="no code in the completion")
        invalid = self.check_problem(problem)
        if invalid:
            return _CodeVerdict(stage="infra_error", error=f"problem {problem.id!r} is invalid: {invalid}")
        # Before this worker's directory holds the candidate: timing the reference builds and runs it
        # in the same directory.
        limit = self.time_limit(problem)
        sig = problem.signature
        candidate, full, offset = assemble_candidate(sig, code)
        w = self._worker()
        self._write_units(w, candidate, problem)
        build = self._compile(w, ["-o", "prog", w.nonce_files[1], "candidate.ml", "tests.ml"])
        if build.timed_out:
            return _CodeVerdict(stage="timeout", error="compilation timed out", full_definition=full)
        if build.returncode == 0:
            if _CHANGES_RUNTIME.search(strip_comments(code)):
                return _CodeVerdict(
                    stage="test_failure",
                    type_check=TYPE_CHECK_MAX,
                    compile=COMPILE_OK,
                    tests_total=len(problem.tests),
                    error=RUNTIME_TAMPERING,
                    full_definition=full,
                    time_limit_s=limit.run_cpu_s,
                )
            return self._run_tests(w.work / "prog", problem, full, limit)
        output = build.stdout + build.stderr
        err = first_error(output)
        if err is not None:
            where = dict(diagnostic=err.block, diagnostic_file=err.file, code_line_offset=offset)
            if err.file == "tests.ml" and err.line is not None:
                where["error_test"] = test_at_line(self.names, [sig.name], list(problem.tests), err.line)
        if err is None:
            # The compiler died without a diagnostic (its own stack or memory limit): we cannot
            # tell whether the code type-checks, so it earns nothing.
            return _CodeVerdict(
                stage="compile_error",
                error=_clip(output.strip() or f"compiler exited with {build.returncode}"),
                full_definition=full,
            )
        if err.file == "candidate.ml":
            if err.kind == "syntax":
                return _CodeVerdict(stage="syntax_error", error=err.message, full_definition=full, **where)
            n = self._count_type_errors(w, candidate, err.line)
            return _CodeVerdict(
                stage="type_error",
                type_check=type_check_credit(n),
                compile=COMPILE_PARTIAL_AFTER_TYPE_ERRORS,
                error=err.message,
                type_errors=n,
                full_definition=full,
                **where,
            )
        if err.file == "tests.ml" and not _LINK_ERROR.search(err.message):
            # The candidate type-checks alone, but its definition does not fit the problem.
            return _CodeVerdict(
                stage="type_error",
                type_check=type_check_credit(1),
                compile=COMPILE_PARTIAL_AFTER_TYPE_ERRORS,
                error=f"the answer does not match the problem's signature: {err.message}",
                type_errors=1,
                full_definition=full,
                **where,
            )
        # Type-checked, but the build failed (linking: e.g. a library that is not available).
        return _CodeVerdict(
            stage="compile_error",
            type_check=TYPE_CHECK_MAX,
            compile=COMPILE_FAILED_AFTER_TYPECHECK,
            error=err.message,
            full_definition=full,
            **where,
        )

    # -- workers, job directories and the compiler ------------------------------------------------

    def _worker(self) -> _Worker:
        """This thread's worker, its job directory emptied of the previous job's files.

        The directory is reused (no per-job directory churn) and starts every job holding only the
        nonce unit, compiled once per worker: `ocamlc -o prog <nonce>.cmo candidate.ml tests.ml`
        then does what compiling the nonce source every time did, minus one compilation unit."""
        w: _Worker | None = getattr(self._local, "worker", None)
        if w is None:
            work = Path(tempfile.mkdtemp(prefix="worker-", dir=self._root))
            stem = self.names.nonce_unit.lower()
            compiled = (".cmx", ".o") if self.config.native else (".cmo",)
            w = _Worker(work=work, nonce_files=(stem + ".cmi", *(stem + ext for ext in compiled)))
            with self._lock:
                self._workers.append(w)
            self._local.worker = w
        keep = w.nonce_files if w.ready else ()
        with os.scandir(w.work) as entries:
            for entry in entries:
                if entry.name not in keep:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
        if not w.ready:
            source = self.names.nonce_unit.lower() + ".ml"
            (w.work / source).write_text(nonce_unit_source())
            r = self._compile(w, ["-c", source])
            if r.returncode != 0 or not all((w.work / f).is_file() for f in w.nonce_files):
                raise SandboxError(f"the harness's nonce unit did not compile: {_clip(r.stdout + r.stderr)}")
            (w.work / source).unlink()
            w.ready = True
        return w

    def _write_units(self, w: _Worker, candidate: str, problem: Problem) -> None:
        (w.work / "candidate.ml").write_text(candidate)
        (w.work / "tests.ml").write_text(
            tests_source(self.names, [problem.signature.name], list(problem.tests))
        )

    def _compile_limits(self) -> Limits:
        return Limits(
            wall_s=self.config.compile_timeout_s,
            cpu_s=max(1, int(self.config.compile_timeout_s)),
            memory_mb=max(1024, self.config.memory_mb),
            file_mb=64,
            open_files=256,
            tmpfs_mb=64,
        )

    def _compile(self, w: _Worker, args: list[str]) -> RunResult:
        """`ocamlc -w -a <args>` in the worker's directory: through its compile server when there is
        one, else (or when the server cannot vouch for its answer) in a fresh sandboxed process."""
        compiler = self.tools["ocamlopt"] if self.config.native else self.tools["ocamlc"]
        argv = [compiler, "-w", "-a", *args]
        server = self._server(w)
        if server is not None:
            try:
                return server.compile(argv, min(SERVER_JOB_DEADLINE_S, self.config.compile_timeout_s))
            except ServerUnavailable as e:
                log.warning("verifier compile server: %s; compiling per process for a while", e)
                w.server_retry_at = time.monotonic() + SERVER_RETRY_AFTER_S
            except ServerFailure:
                pass
            with self._lock:
                self.stats["compile_fallbacks"] += 1
        return self.sandbox.compile(argv, w.work, self._compile_limits())

    def _server(self, w: _Worker) -> CompileServer | None:
        if not self.config.compile_server or self.config.native or time.monotonic() < w.server_retry_at:
            return None
        if w.server is None:
            with self._lock:
                if not self._server_checked:
                    self._server_checked = True
                    binary = server_binary(self.tools["ocamlc"])
                    ident = ocaml_identity(self.tools["ocamlc"]) if binary else None
                    self._server_binary = binary if ident else None
                    self._server_identity = ident or ("", "")
            if self._server_binary is None:
                return None
            w.server = CompileServer(
                self.sandbox, self._server_binary, w.work, self._compile_limits(), self._server_identity
            )
        return w.server

    def _count_type_errors(self, w: _Worker, candidate: str, first_line: int | None) -> int:
        """Count independent type errors: replace the phrase holding each error by stubs of the names
        it binds (`let f = Obj.magic ()`, same line count) and type-check again, up to the table's cap.
        OCaml stops at the first error of a unit, so without this every wrong unit would count 1."""
        dump = self._compile(w, ["-stop-after", "parsing", "-dparsetree", "candidate.ml"])
        phrases = phrases_from_parsetree(dump.stdout + dump.stderr)
        errors, line, src = 1, first_line, candidate
        stubbed: set[int] = set()
        while errors < MAX_COUNTED_TYPE_ERRORS and line is not None:
            idx = next((k for k, p in enumerate(phrases) if p.start_line <= line <= p.end_line), None)
            if idx is None or idx in stubbed:
                break
            stubbed.add(idx)
            p = phrases[idx]
            stub = " ".join(f"let {n} = Obj.magic ()" for n in p.names)
            lines_in_phrase = src[p.start : p.end].count("\n")
            src = src[: p.start] + stub + "\n" * lines_in_phrase + src[p.end :]
            phrases = _shift(phrases, idx, len(stub) + lines_in_phrase - (p.end - p.start))
            (w.work / "candidate.ml").write_text(src)
            check = self._compile(w, ["-stop-after", "typing", "-c", "candidate.ml"])
            if check.returncode == 0 or check.timed_out:
                break
            err = first_error(check.stdout + check.stderr)
            if err is None or err.kind == "syntax" or err.file != "candidate.ml":
                break
            errors += 1
            line = err.line
        return errors

    def _run_limits(self, limit: TimeLimit, remaining_s: float) -> Limits:
        """Limits of one test run. CPU time is what limits it (the sandbox enforces it to a few ms), so a
        busy machine does not cut a correct program short; the wall clock is only a backstop,
        RUN_WALL_FACTOR x that (at least RUN_WALL_MIN_EXTRA_S more), within what is left of the budget."""
        wall = max(RUN_WALL_FACTOR * limit.run_cpu_s, limit.run_cpu_s + RUN_WALL_MIN_EXTRA_S)
        return Limits(wall_s=min(wall, remaining_s), cpu_s=limit.run_cpu_s, memory_mb=self.config.memory_mb)

    def _run_program(self, program: Path, lim: Limits, nonce: str, start: int) -> RunResult:
        """One run of the test program from test `start`, with the configured stack: OCAMLRUNPARAM's
        stack limit in bytecode, the process's stack rlimit for native code."""
        stdin = f"{nonce} {start}\n".encode()
        if self.config.native:
            lim = replace(lim, stack_mb=self.config.stack_words * 8 / 2**20)
            return self.sandbox.run_native(program, lim, stdin=stdin, marker=nonce)
        env = {"OCAMLRUNPARAM": f"l={self.config.stack_words}"}
        return self.sandbox.run_bytecode(program, lim, stdin=stdin, marker=nonce, env=env)

    def _run_tests(self, program: Path, problem: Problem, full: bool, limit: TimeLimit) -> _CodeVerdict:
        total = len(problem.tests)
        nonce = secrets.token_hex(16)
        verdicts: dict[int, str] = {}
        # Two budgets for all the runs together: CPU time (the problem's), and the fixed wall clock as
        # a backstop, so that a busy machine does not cut a correct answer short.
        start, deadline = 0, time.monotonic() + self.config.test_budget_s
        cpu_spent = 0.0
        startup_error = None
        while start < total:
            remaining = deadline - time.monotonic()
            if remaining < 0.05 or cpu_spent >= limit.budget_s - 0.005:
                break
            lim = self._run_limits(limit, remaining)
            run = self._run_program(program, lim, nonce, start)
            cpu_spent += run.cpu_s
            report = read_report(run.marker_lines, nonce, total, start)
            if not report.ready:
                raise SandboxError(f"the test program never started: {_tail(run)}")
            if report.tampered:
                return _CodeVerdict(
                    stage="test_failure",
                    type_check=TYPE_CHECK_MAX,
                    compile=COMPILE_OK,
                    tests_total=total,
                    error="test results were forged or duplicated: no test credit",
                    full_definition=full,
                    time_limit_s=limit.run_cpu_s,
                )
            verdicts.update(report.verdicts)
            if report.done:
                break
            if report.started is not None:
                verdicts[report.started] = "timeout" if run.timed_out else "crash " + _tail(run)
                start = report.started + 1
                continue
            # Nothing pending: the program died before reaching test `start` (module initialisation).
            reached = [i for i in verdicts if i >= start]
            if reached:
                start = max(reached) + 1
                continue
            startup_error = "timeout" if run.timed_out else _tail(run)
            for i in range(start, total):
                verdicts[i] = "startup"
            break
        passed = sum(1 for v in verdicts.values() if v == "pass")
        timed_out = any(v == "timeout" for v in verdicts.values()) or startup_error == "timeout"
        stage = "pass" if passed == total else ("timeout" if timed_out else "test_failure")
        return _CodeVerdict(
            stage=stage,
            type_check=TYPE_CHECK_MAX,
            compile=COMPILE_OK,
            tests=round(TESTS_MAX * passed / total, 6) if total else 0.0,
            tests_passed=passed,
            tests_total=total,
            error=None if stage == "pass" else _first_failure(problem, verdicts, total, startup_error, limit),
            full_definition=full,
            time_limit_s=limit.run_cpu_s,
            test_verdicts=tuple(verdicts.get(i) for i in range(total)),
        )

    def _times_cache(self) -> DiskCache:
        with self._lock:
            if self._reference_times is None:
                version = (ocaml_identity(self.tools["ocamlc"]) or ("unknown", ""))[0]
                context = measurement_context(
                    version, self.config.sandbox, self.config.native, self.config.stack_words
                )
                self._reference_times = DiskCache("time-limits", context)
            return self._reference_times

    def _checks_cache(self) -> DiskCache:
        """Problem checks depend on the compiler and the harness only (not on the machine's speed)."""
        with self._lock:
            if self._checks is None:
                version, stdlib = ocaml_identity(self.tools["ocamlc"]) or ("unknown", "")
                compiler = "ocamlopt" if self.config.native else "ocamlc"
                context = f"{compiler} {version} {stdlib}; harness {harness_digest()}; {_source_digest()}"
                self._checks = DiskCache("problem-checks", context)
            return self._checks

    def _reference_cpu_s(self, problem: Problem) -> float | None:
        """CPU seconds of the reference solution's test program: the most of REFERENCE_RUNS full runs
        under the fixed limits. None when the reference fails (it does not compile, or does not pass
        every test in one run: no basis for a limit, and `make validate-data` reports it). Raises
        _NotMeasured, or SandboxError, when the measurement itself failed (a timeout, the sandbox)."""
        invalid = self.check_problem(problem)
        if invalid or not problem.solution:
            return None
        candidate, _full, _ = assemble_candidate(problem.signature, problem.solution)
        fixed = derive(None, self.config.run_timeout_s, self.config.test_budget_s)
        worst = 0.0
        for _attempt in range(self.config.retries + 1):
            try:
                w = self._worker()
                self._write_units(w, candidate, problem)
                build = self._compile(w, ["-o", "prog", w.nonce_files[1], "candidate.ml", "tests.ml"])
                if build.timed_out:
                    raise _NotMeasured("its compile timed out")
                if build.returncode != 0:
                    return None
                for _ in range(REFERENCE_RUNS):
                    nonce = secrets.token_hex(16)
                    run = self._run_program(
                        w.work / "prog", self._run_limits(fixed, fixed.budget_s), nonce, 0
                    )
                    report = read_report(run.marker_lines, nonce, len(problem.tests), 0)
                    if run.timed_out and not report.done:
                        raise _NotMeasured("its run timed out")
                    if not report.ready:
                        raise SandboxError("the reference's test program never started")
                    passed = sum(v == "pass" for v in report.verdicts.values())
                    if not report.done or report.tampered or passed != len(problem.tests):
                        return None
                    # The program's own count: exact, where the sandbox's polling (bwrap does not
                    # hand the namespace's rusage back) can miss the last few milliseconds.
                    worst = max(worst, report.cpu_s if report.cpu_s is not None else run.cpu_s)
                return worst
            except SandboxError:
                if _attempt == self.config.retries:
                    raise
                time.sleep(0.05)
        raise _NotMeasured("no attempt left")

    def _check_problem_uncached(self, problem: Problem) -> str | None:
        try:
            sig = problem.signature
        except SignatureError as e:
            return str(e)
        if not problem.tests:
            return "it has no tests"
        stub, _full, _ = assemble_candidate(sig, 'failwith "stub"')
        for attempt in range(self.config.retries + 1):
            try:
                w = self._worker()
                self._write_units(w, stub, problem)
                r = self._compile(w, ["-c", "candidate.ml", "tests.ml"])
                break
            except SandboxError:
                if attempt == self.config.retries:
                    raise
        if r.returncode == 0:
            return None
        err = first_error(r.stdout + r.stderr)
        if r.timed_out or err is None:
            # The compiler was cut short or died without a diagnostic: no verdict on the problem.
            raise SandboxError(
                f"checking problem {problem.id!r}: {_clip(r.stderr) or 'the compile timed out'}"
            )
        where = "its prompt's code" if err and err.file == "candidate.ml" else "its test code"
        return f"{where} does not compile against its signature: {err.message if err else _clip(r.stderr)}"


# The Gc module (and any `external` primitive) can raise the stack limit that the tail-recursion tests
# rely on, and put it back before the harness looks (doc/security.md): an answer that names either gets
# no test credit. Answers to these problems have no use for them.
_CHANGES_RUNTIME = re.compile(r"\bGc\b|Stdlib__Gc\b|\bexternal\b")
RUNTIME_TAMPERING = (
    "the answer uses the Gc module or an external primitive, which can change the stack limit the "
    "tests rely on: no test credit"
)

_LINK_ERROR = re.compile(
    r"is unavailable \(required by|Reference to undefined global|Error while linking|No implementations? provided"
)


def _source_digest() -> str:
    """A hash of the code behind a problem check's verdict besides the harness (signature parsing)."""
    return hashlib.sha256(Path(__file__).with_name("ocaml_source.py").read_bytes()).hexdigest()[:12]


def _problem_key(problem: Problem, with_solution: bool = False) -> str:
    h = hashlib.sha1()
    parts = (problem.id, problem.prompt, *problem.tests)
    for part in parts + ((problem.solution or "",) if with_solution else ()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _safe_name(problem: Problem) -> str:
    try:
        return problem.signature.name
    except SignatureError:
        return ""


def _shift(phrases: list, idx: int, delta: int) -> list:
    out = []
    for k, p in enumerate(phrases):
        if k < idx:
            out.append(p)
        elif k == idx:
            out.append(replace(p, end=p.end + delta))
        else:
            out.append(replace(p, start=p.start + delta, end=p.end + delta))
    return out


def _tail(run) -> str:
    """The end of what the program printed, without the harness's marker lines, for error messages."""
    markers = {m.strip() for m in run.marker_lines}
    lines = [
        ln for ln in (run.stderr + "\n" + run.stdout).split("\n") if ln.strip() and ln.strip() not in markers
    ]
    text = "\n".join(lines)[-300:]
    return text or (f"exited with status {run.returncode}" if run.returncode is not None else "killed")


def _clip(text: str, n: int = 600) -> str:
    return text if len(text) <= n else text[:n] + " ..."


def _first_failure(
    problem: Problem, verdicts: dict[int, str], total: int, startup_error: str | None, limit: TimeLimit
) -> str:
    if startup_error is not None:
        if startup_error == "timeout":
            return f"the program timed out before the tests started (limit: {limit.describe()})"
        return f"the program failed before the tests started: {startup_error}"
    for i in range(total):
        v = verdicts.get(i)
        expr = " ".join(problem.tests[i].split())[:200]
        if v == "pass":
            continue
        if v is None:
            return f"test {i} not run (time budget of {limit.budget_s:g} s exhausted): {expr}"
        if v == "fail":
            return f"test {i} returned false: {expr}"
        if v == "timeout":
            return f"test {i} timed out (limit: {limit.describe()}): {expr}"
        if v.startswith("exn"):
            return f"test {i} raised {v[4:]}: {expr}"
        return f"test {i} stopped the program ({v}): {expr}"
    return "tests failed"
