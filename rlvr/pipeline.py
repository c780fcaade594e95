"""The road from a base model to a better one, as one command: `python -m rlvr.pipeline` (make pipeline).

Phases, each the project's own command run as a child process with its usual run directory:

    sft         python -m sft.train on the train split           -> sft_runs/<name>-sft/
    grpo        python -m rlvr.train from the SFT adapter        -> grpo_runs/<name>-grpo/
    eval_base   python -m eval.run on the held-out split, base   -> eval_runs/<name>-base-{sampled,greedy}/
    eval_sft    the same for the SFT adapter                     -> eval_runs/<name>-sft-{...}/
    eval_final  the same for the GRPO result                     -> eval_runs/<name>-final-{...}/
    report      eval.learning_report: report.html + summary.json -> pipeline_runs/<name>/

`pipeline_runs/<name>/pipeline.json` records the settings, each phase's run directories, status and
timing; `pipeline.log` (written by the launcher) holds every phase's output, each line tagged with its
phase. SIGTERM (`make stop`) is passed on to the running phase, which checkpoints and stops; the
pipeline then stops too. `PIPELINE_RESUME=latest` continues: finished phases are kept, a stopped
training phase resumes from its checkpoint, an interrupted evaluation continues after its last whole
batch (eval.resume).

Settings are PIPELINE_* variables (below, and in .envrc); SFT_*, GRPO_*, LORA_*, EVAL_* and VERIFIER_*
pass through to the phases, except the run names and the model each phase starts from, which the
pipeline sets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .envconf import ConfigError, Env
from .liveness import process_identity, process_state, recorded_identity
from .runlog import RUN_NAME, clean, now_iso
from .settings import base_model, default_run_name, run_root

REPO = Path(__file__).resolve().parent.parent
PHASES = ("sft", "grpo", "eval_base", "eval_sft", "eval_final", "report")
EVAL_PHASES = {"eval_base": "base", "eval_sft": "sft", "eval_final": "final"}
STATE = "pipeline.json"


class PipelineError(RuntimeError):
    """The pipeline cannot start or continue as asked."""


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline runs; every phase's own settings come from its own variables."""

    name: str
    output_dir: str  # pipeline_runs
    resume: str | None
    phases: tuple[str, ...]
    model: str  # the base model (BASE_MODEL_ID)
    sft_output_dir: str
    grpo_output_dir: str
    eval_output_dir: str
    eval_n: int  # samples per problem at the sampling temperature
    eval_temperature: float | None  # None: GRPO's training temperature
    eval_greedy: bool  # also one greedy answer per problem
    eval_max_tokens: int | None  # None: GRPO's max completion length
    eval_limit: int  # first N held-out problems (0 = all)
    eval_data: str
    reuse_base_eval: bool  # copy an equivalent evaluation of the base model instead of repeating it
    eval_backend: str = "transformers"  # eval.run --backend: llama-server (cpu default) | transformers

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_env(env: Mapping[str, str], model: str | None = None, profile: str = "cpu") -> PipelineConfig:
        """PIPELINE_* settings; `model` is the base model the trainers resolved (their profile decides
        the default), else BASE_MODEL_ID as given; `profile` is theirs too (cpu | cuda)."""
        e = Env(env)
        phases = e.list("PIPELINE_PHASES", PHASES)
        unknown = [p for p in phases if p not in PHASES]
        if unknown or not phases:
            raise ConfigError(
                f"PIPELINE_PHASES={','.join(phases)!r}: unknown phase(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(PHASES)} (in that order)"
            )
        phases = tuple(p for p in PHASES if p in phases)  # always in road order
        if "eval_sft" in phases and "sft" not in phases:
            raise ConfigError(
                f"PIPELINE_PHASES={','.join(phases)!r}: eval_sft evaluates the sft phase's model; add sft"
            )
        model = model or base_model(e)
        name = e.str("PIPELINE_RUN_NAME", None) or default_run_name(model)
        if not RUN_NAME.match(name):
            raise ConfigError(f"PIPELINE_RUN_NAME={name!r}: use letters, digits, '.', '_' and '-' only")
        temperature = e.str("PIPELINE_EVAL_TEMPERATURE", None)
        max_tokens = e.str("PIPELINE_EVAL_MAX_TOKENS", None)
        # cpu: llama.cpp evaluates ~6x faster than transformers' generate (doc/benchmarks.md), and a
        # pipeline evaluates up to six times; a GPU evaluates fast enough in process
        eval_backend = "transformers" if profile == "cuda" else "llama-server"
        return PipelineConfig(
            name=name,
            output_dir=run_root("pipeline", e),
            resume=e.str("PIPELINE_RESUME", None),
            phases=phases,
            model=model,
            sft_output_dir=run_root("sft", e),
            grpo_output_dir=run_root("grpo", e),
            eval_output_dir=run_root("eval", e),
            eval_n=e.int("PIPELINE_EVAL_N", 4, minimum=1),
            eval_temperature=None
            if temperature is None
            else e.float("PIPELINE_EVAL_TEMPERATURE", 0.0, 0.01, 5.0),
            eval_greedy=e.bool("PIPELINE_EVAL_GREEDY", True),
            eval_max_tokens=None if max_tokens is None else e.int("PIPELINE_EVAL_MAX_TOKENS", 0, minimum=1),
            eval_limit=e.int("PIPELINE_EVAL_LIMIT", 0, minimum=0),
            eval_data=e.str("PIPELINE_EVAL_DATA", "bundled") or "bundled",
            reuse_base_eval=e.bool("PIPELINE_REUSE_BASE_EVAL", True),
            eval_backend=e.choice("PIPELINE_EVAL_BACKEND", eval_backend, ("llama-server", "transformers")),
        )


# -- state ------------------------------------------------------------------------------------------


class PipelineState:
    """pipeline.json: the settings, and for each phase its status, run directories and timing."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @property
    def dir(self) -> Path:
        return self.path.parent

    @classmethod
    def create(cls, cfg: PipelineConfig, settings: dict[str, Any]) -> PipelineState:
        path = Path(cfg.output_dir) / cfg.name / STATE
        if path.exists():
            raise PipelineError(
                f"{path.parent} already holds a pipeline; choose another PIPELINE_RUN_NAME, or continue it "
                f"with PIPELINE_RESUME={cfg.name}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        state = cls(
            path,
            {
                "name": cfg.name,
                "kind": "pipeline",
                "status": "running",
                "current": None,
                "started_at": now_iso(),
                "finished_at": None,
                "pid": os.getpid(),
                "process": process_identity(),
                "config": cfg.to_dict(),
                "settings": settings,
                "resumes": [],
                "phases": [{"name": p, "status": "pending", "runs": {}} for p in cfg.phases],
            },
        )
        state.save()
        return state

    @classmethod
    def load(cls, root: Path, spec: str) -> PipelineState:
        """The pipeline PIPELINE_RESUME names: latest, a name under `root`, or a directory."""
        path = root / "latest" if spec == "latest" else Path(spec)
        if not (path / STATE).exists() and (root / spec / STATE).exists():
            path = root / spec
        if not (path / STATE).exists():
            raise PipelineError(f"PIPELINE_RESUME={spec!r}: no {STATE} there (looked in {root})")
        path = path.resolve()
        return cls(path / STATE, json.loads((path / STATE).read_text()))

    def save(self) -> None:
        tmp = self.path.with_name(f".{STATE}.tmp")
        tmp.write_text(json.dumps(clean(self.data), indent=2) + "\n")
        os.replace(tmp, self.path)

    def phase(self, name: str) -> dict[str, Any]:
        return next(p for p in self.data["phases"] if p["name"] == name)

    def update(self, **changes: Any) -> None:
        self.data.update(changes)
        self.save()

    def point_latest(self) -> None:
        link = self.dir.parent / "latest"
        tmp = self.dir.parent / f".latest.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(self.dir.name, tmp)
        os.replace(tmp, link)


# -- phases -----------------------------------------------------------------------------------------


def resolved_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The SFT and GRPO settings the phases will use (their own parsers, so the defaults are theirs)."""
    from sft.config import SFTTrainConfig

    from .grpo.config import GRPOTrainConfig

    return {"sft": SFTTrainConfig.from_env(env).to_dict(), "grpo": GRPOTrainConfig.from_env(env).to_dict()}


class Pipeline:
    """Runs the phases of one pipeline in order, recording each in pipeline.json."""

    def __init__(self, cfg: PipelineConfig, state: PipelineState, env: dict[str, str]):
        self.cfg = cfg
        self.state = state
        self.env = env
        self.child: subprocess.Popen | None = None
        self.child_signal = signal.SIGTERM
        self.stop_requested = False

    # run directories are named after the pipeline, so they are known before a phase starts
    def sft_dir(self) -> Path:
        return (Path(self.cfg.sft_output_dir) / f"{self.cfg.name}-sft").resolve()

    def grpo_dir(self) -> Path:
        return (Path(self.cfg.grpo_output_dir) / f"{self.cfg.name}-grpo").resolve()

    def eval_dir(self, which: str, mode: str) -> Path:
        return (Path(self.cfg.eval_output_dir) / f"{self.cfg.name}-{which}-{mode}").resolve()

    def model_of(self, which: str) -> str:
        """The model an eval phase evaluates: the base, the SFT adapter or the GRPO result."""
        if which == "base":
            return self.cfg.model
        run = self.sft_dir() if which == "sft" else self.grpo_dir()
        if which == "final" and "grpo" not in self.cfg.phases:
            run = self.sft_dir()  # no GRPO phase: the SFT result is the final model
        final = run / "final"
        if not final.exists():
            raise PipelineError(
                f"{final} does not exist: the {which} model was not trained (see pipeline.log)"
            )
        return str(final)

    def eval_modes(self) -> list[tuple[str, int, float]]:
        """(name, n, temperature) of each evaluation of one model."""
        grpo = self.state.data["settings"]["grpo"]
        temperature = self.cfg.eval_temperature or grpo["temperature"]
        modes = [("sampled", self.cfg.eval_n, temperature)]
        if self.cfg.eval_greedy:
            modes.append(("greedy", 1, 0.0))
        return modes

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            if self.stop_requested:
                return
            self.stop_requested = True
            print(
                f"[pipeline] signal {signum}: stopping the running phase (it checkpoints first)", flush=True
            )
            # SIGTERM (make stop) reaches only this process: pass it on. Ctrl-C (SIGINT) in a terminal
            # reached the whole process group, the phase included: a second signal would make a
            # trainer stop at once instead of after its checkpoint.
            if signum == signal.SIGTERM and self.child and self.child.poll() is None:
                self.child.send_signal(self.child_signal)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def spawn(self, phase: str, argv: list[str], env: dict[str, str], log: Path, stop_signal) -> int:
        """Run one phase's command; its output goes to pipeline.log (tagged) and to `log`."""
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"[pipeline] {phase}: $ {' '.join(argv)}", flush=True)
        self.child_signal = stop_signal
        with open(log, "ab") as out:
            self.child = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            if self.stop_requested:  # a stop that came while the child was starting
                self.child.send_signal(stop_signal)
            assert self.child.stdout
            for line in self.child.stdout:
                out.write(line)
                out.flush()
                sys.stdout.buffer.write(f"[{phase}] ".encode() + line)
                sys.stdout.flush()
            code = self.child.wait()
        self.child = None
        return code

    def phase_env(self, **overrides: str) -> dict[str, str]:
        env = dict(self.env)
        env.update(PYTHONPATH=str(REPO), GRPO_MONITOR="0", FOREGROUND="1")
        for var in ("SFT_RESUME", "GRPO_RESUME", "EVAL_RUN_NAME", "EVAL_MODEL"):
            env.pop(var, None)
        env.update(overrides)
        return env

    def run_trainer(self, phase: str, record: dict[str, Any]) -> str:
        """sft or grpo: a new run, or the resumed one when the run directory already has a run."""
        run_dir = self.sft_dir() if phase == "sft" else self.grpo_dir()
        prefix = "SFT" if phase == "sft" else "GRPO"
        record["runs"] = {"train": str(run_dir)}
        self.state.save()  # the dashboard links to the running phase's run
        info = _read_json(run_dir / "run.json")
        if info.get("status") == "finished" and (run_dir / "final").exists():
            return "done"  # finished before the pipeline could record it
        overrides = {
            f"{prefix}_OUTPUT_DIR": str(run_dir.parent),
            f"{prefix}_RUN_NAME": run_dir.name,
        }
        if phase == "grpo":
            overrides["BASE_MODEL_ID"] = self.model_of("sft") if "sft" in self.cfg.phases else self.cfg.model
            if not self.ensure_llama_cpp(phase):
                return "stopped"
        if info:
            overrides[f"{prefix}_RESUME"] = str(run_dir)
        module = "sft.train" if phase == "sft" else "rlvr.train"
        log = run_dir / ("sft_training.log" if phase == "sft" else "training.log")
        code = self.spawn(
            phase, [sys.executable, "-u", "-m", module], self.phase_env(**overrides), log, signal.SIGTERM
        )
        status = _read_json(run_dir / "run.json").get("status")
        record["returncode"] = code
        if code == 0 and status == "finished":
            return "done"
        if self.stop_requested or status == "stopped":
            return "stopped"
        return "failed"

    def ensure_llama_cpp(self, phase: str) -> bool:
        """Build llama.cpp (once, cached; ~15 min on 2 cores) for the llama-server eval backend or
        GRPO's llama-server rollouts, as a child the pipeline can stop; False when stopped."""
        from .export import llama_cpp

        if phase == "grpo":
            needed = self.state.data["settings"]["grpo"].get("rollout_engine") == "llama-server"
        else:
            needed = self.cfg.eval_backend == "llama-server"
        if not needed or llama_cpp.is_built():
            return True
        log = self.state.dir / "logs" / "llama-cpp-build.log"
        argv = [sys.executable, "-u", "-m", "rlvr.export.llama_cpp", "build"]
        code = self.spawn(f"{phase}:llama-cpp", argv, self.phase_env(), log, signal.SIGTERM)
        if self.stop_requested:
            return False
        if code != 0:
            raise PipelineError(
                f"building llama.cpp for PIPELINE_EVAL_BACKEND=llama-server or GRPO_ROLLOUT_ENGINE=llama-server "
                f"failed (log {log}); PIPELINE_EVAL_BACKEND=transformers GRPO_ROLLOUT_ENGINE=transformers "
                "run without it"
            )
        return True

    def run_eval(self, phase: str, record: dict[str, Any]) -> str:
        if not self.ensure_llama_cpp(phase):
            return "stopped"
        which = EVAL_PHASES[phase]
        model = self.model_of(which)
        grpo = self.state.data["settings"]["grpo"]
        max_tokens = self.cfg.eval_max_tokens or grpo["max_completion_length"]
        record.setdefault("runs", {})
        for mode, n, temperature in self.eval_modes():
            out = self.eval_dir(which, mode)
            record["runs"][mode] = str(out)
            self.state.save()
            earlier = _read_json(out / "summary.json").get("status")
            if earlier == "complete":
                continue
            resume = earlier in ("running", "interrupted", "failed")  # eval.resume keeps its whole batches
            if out.exists() and not resume:
                shutil.rmtree(out)
            ks = sorted({1, n} | ({5} if n >= 5 else set()) | ({10} if n >= 10 else set()))
            flags = {
                "model": model, "data": self.cfg.eval_data, "split": "eval", "n": n,
                "k": ",".join(map(str, ks)), "temperature": temperature, "max_tokens": max_tokens,
                "limit": self.cfg.eval_limit, "output_dir": str(out.parent), "run_name": out.name,
                "backend": self.cfg.eval_backend,
            }  # fmt: skip
            env = self.phase_env()
            if which == "base" and self.cfg.reuse_base_eval and not resume:
                reused = self.reuse_eval(phase, mode, flags, env, out)
                if reused:
                    record.setdefault("reused", {})[mode] = str(reused)
                    continue
            argv = [sys.executable, "-u", "-m", "eval.run"]
            for key, value in flags.items():
                argv += [f"--{key.replace('_', '-')}", str(value)]
            if resume:
                argv += ["--resume", str(out)]
            log = self.state.dir / "logs" / f"{phase}-{mode}.log"
            # eval.run keeps what it has written on Ctrl-C (SIGINT) and says "interrupted"
            code = self.spawn(f"{phase}:{mode}", argv, env, log, signal.SIGINT)
            record["returncode"] = code
            if self.stop_requested:
                return "stopped"
            if code != 0:
                return "failed"
        return "done"

    def reuse_eval(
        self, phase: str, mode: str, flags: dict[str, Any], env: dict[str, str], out: Path
    ) -> Path | None:
        """Copy a complete evaluation with the same fingerprint (eval.reuse) to `out`: the one copied,
        or None when there is none."""
        from eval.config import EvalConfig
        from eval.outputs import write_json
        from eval.reuse import find_equivalent, fingerprint
        from eval.run import load_eval_problems

        from .verifier import VerifierConfig

        try:
            cfg = EvalConfig.from_sources(env, flags)
            problems, _ = load_eval_problems(cfg)
            wanted = fingerprint(cfg, VerifierConfig.from_env(env), problems)
        except Exception:  # a bad setting: the evaluation itself will say what is wrong
            return None
        match = find_equivalent(out.parent, wanted)
        if match is None or match == out:
            return None
        shutil.copytree(match, out)
        summary = _read_json(out / "summary.json")
        summary.update(run=out.name, reused_from=str(match))
        write_json(out / "summary.json", summary)  # as eval.run writes it (atomically)
        print(
            f"[pipeline] {phase}:{mode}: reusing {match} (the same model, problems, settings, verifier "
            "and commit; PIPELINE_REUSE_BASE_EVAL=0 evaluates again)",
            flush=True,
        )
        return match

    def run_report(self, record: dict[str, Any]) -> str:
        from eval.learning_report import write_learning_report

        print("[pipeline] report: building the learning report", flush=True)
        try:
            paths = write_learning_report(self.state.dir)
        except Exception as e:  # the runs are all there: a report can be rebuilt once this is fixed
            traceback.print_exc()
            record["error"] = f"{type(e).__name__}: {e}"
            return "failed"
        record["runs"] = {k: str(v) for k, v in paths.items()}
        print(f"[pipeline] report: {paths['report']}", flush=True)
        return "done"

    def run(self) -> int:
        """Run every phase not done yet; 0 when all are done or the pipeline was stopped, 1 on failure."""
        for record in self.state.data["phases"]:
            if record["status"] == "done":
                continue
            if self.stop_requested:
                break
            name = record["name"]
            record.update(status="running", started_at=now_iso(), finished_at=None)
            self.state.update(current=name, status="running")
            print(f"[pipeline] phase {name} ({_index(self.state, name)}) started", flush=True)
            t = time.monotonic()
            try:
                if name in ("sft", "grpo"):
                    status = self.run_trainer(name, record)
                elif name in EVAL_PHASES:
                    status = self.run_eval(name, record)
                else:
                    status = self.run_report(record)
            except PipelineError as e:
                print(f"[pipeline] {name}: error: {e}", flush=True)
                status, record["error"] = "failed", str(e)
            record.update(
                status=status,
                finished_at=now_iso(),
                seconds=round(record.get("seconds", 0.0) + time.monotonic() - t, 1),
            )
            self.state.save()
            print(f"[pipeline] phase {name}: {status} after {record['seconds']:.0f} s", flush=True)
            if status != "done":
                how = "stopped" if status == "stopped" else "failed"
                self.state.update(status=how, finished_at=now_iso())
                print(
                    f"[pipeline] {how} in phase {name}; continue with PIPELINE_RESUME={self.cfg.name} make pipeline",
                    flush=True,
                )
                return 0 if how == "stopped" else 1
        if self.stop_requested and any(p["status"] != "done" for p in self.state.data["phases"]):
            self.state.update(status="stopped", finished_at=now_iso())
            return 0
        self.state.update(status="finished", current=None, finished_at=now_iso())
        print(f"[pipeline] finished: {self.state.dir}", flush=True)
        return 0


def _index(state: PipelineState, name: str) -> str:
    names = [p["name"] for p in state.data["phases"]]
    return f"{names.index(name) + 1}/{len(names)}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def with_rollout_engine(env: Mapping[str, str], eval_backend: str) -> dict[str, str]:
    """The pipeline's one default of its own for a trainer setting: when llama.cpp serves its
    evaluations (PIPELINE_EVAL_BACKEND=llama-server, the cpu default, so the pipeline builds llama.cpp
    anyway) it serves GRPO's rollouts too (GRPO_ROLLOUT_ENGINE=llama-server: the same learning at
    about 1.7x the completions a second, doc/benchmarks.md). A GRPO_ROLLOUT_ENGINE that is set wins."""
    env = dict(env)
    if "GRPO_ROLLOUT_ENGINE" not in env and eval_backend == "llama-server":
        env["GRPO_ROLLOUT_ENGINE"] = "llama-server"
    return env


def open_pipeline(cfg: PipelineConfig, env: Mapping[str, str]) -> tuple[PipelineConfig, PipelineState]:
    """A new pipeline's state, or the resumed one's (whose recorded settings then win)."""
    if not cfg.resume:
        settings = resolved_settings(env)  # validates every phase's settings before anything runs
        cfg = PipelineConfig.from_env(
            env, model=settings["sft"]["model"], profile=settings["grpo"]["profile"]
        )
        settings = resolved_settings(with_rollout_engine(env, cfg.eval_backend))
        return cfg, PipelineState.create(cfg, settings)
    state = PipelineState.load(Path(cfg.output_dir), cfg.resume)
    if state.data.get("status") == "running" and _alive(state.data):
        raise PipelineError(f"{state.dir} is running (pid {state.data['pid']}); `make stop` first")
    # a setting added since the pipeline was made takes its value from this environment
    # (a pipeline made before PIPELINE_EVAL_BACKEND evaluated in process: its evaluations stay comparable)
    fields = {**asdict(cfg), "eval_backend": "transformers", **state.data["config"]}
    recorded = PipelineConfig(**{**fields, "phases": tuple(fields["phases"])})
    for record in state.data["phases"]:
        if record["status"] in ("running", "stopped", "failed"):
            record["status"] = "pending"  # to do again (training phases resume from their checkpoint)
    state.data["resumes"].append({"at": now_iso(), "pid": os.getpid()})
    state.update(status="running", pid=os.getpid(), process=process_identity(), finished_at=None)
    print(f"[pipeline] resuming {state.dir}", flush=True)
    return PipelineConfig(**{**asdict(recorded), "resume": cfg.resume}), state


def _alive(record: dict[str, Any]) -> bool:
    """The process that recorded itself in pipeline.json is another live process (not a reused pid)."""
    identity = recorded_identity(record)
    return identity is not None and identity["pid"] != os.getpid() and process_state(identity) == "alive"


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    try:
        cfg, state = open_pipeline(PipelineConfig.from_env(env), env)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state.point_latest()
    print(f"[pipeline] {state.dir}: phases {', '.join(cfg.phases)}", flush=True)
    # the GRPO phase generates with the engine its recorded settings name (also when resumed)
    engine = state.data.get("settings", {}).get("grpo", {}).get("rollout_engine", "transformers")
    env.setdefault("GRPO_ROLLOUT_ENGINE", engine)
    pipeline = Pipeline(cfg, state, env)
    pipeline.install_signal_handlers()
    try:
        return pipeline.run()
    except BaseException as e:
        state.update(status="failed", finished_at=now_iso(), error=f"{type(e).__name__}: {e}")
        raise


if __name__ == "__main__":
    sys.exit(main())
