"""Start, watch and stop background training runs: the engine behind `make rlvr-train` / `make stop`.

`python -m rlvr.launch start grpo|sft|pipeline`: refuses a second run in the same output directory (a pid file),
picks the run name up front so the log's path is known, starts `python -m rlvr.train` (or sft.train) in
its own session with output to <run>/training.log (a pipeline: rlvr.pipeline, <run>/pipeline.log), starts the dashboard and TensorBoard unless
GRPO_MONITOR=0, and prints where to look. FOREGROUND=1 runs it attached (for scripts and CI).
`python -m rlvr.launch stop`: SIGTERM (the trainer saves a checkpoint and stops), SIGKILL after
STOP_TIMEOUT seconds; also stops the monitors this launcher started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .envconf import ConfigError, Env
from .liveness import pid_alive
from .runlog import RunDir, RunDirError
from .settings import RUN_ROOTS, base_model, dashboard_address, default_run_name, run_root, tensorboard_port


@dataclass(frozen=True)
class Kind:
    """What one kind of background job runs and what its variables are called (where its runs live:
    rlvr.settings.run_root)."""

    module: str
    name_var: str
    resume_var: str
    profile_var: str | None  # the variable that picks cpu or cuda (and so the default base model)
    log_name: str
    page: str  # the dashboard page that follows it


KINDS = {
    "grpo": Kind("rlvr.train", "GRPO_RUN_NAME", "GRPO_RESUME", "GRPO_PROFILE", "training.log", ""),
    "sft": Kind("sft.train", "SFT_RUN_NAME", "SFT_RESUME", "SFT_PROFILE", "sft_training.log", "sft"),
    # every dashboard page shows the running pipeline's phase, with a link to it
    "pipeline": Kind(
        "rlvr.pipeline", "PIPELINE_RUN_NAME", "PIPELINE_RESUME", "SFT_PROFILE", "pipeline.log", ""
    ),
}


def _default_model(kind: Kind, e: Env) -> str:
    """The base model the job will resolve, so the launcher names the run as the job itself would."""
    if e.raw("BASE_MODEL_ID"):
        return base_model(e)
    profile = e.raw(kind.profile_var) if kind.profile_var else None
    if profile is None:
        import torch

        profile = "cuda" if torch.cuda.is_available() else "cpu"
    return base_model(e, gpu=profile == "cuda")


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def start(kind: str, env: dict[str, str]) -> int:
    k = KINDS[kind]
    e = Env(env)
    root = Path(run_root(kind, e))
    root.mkdir(parents=True, exist_ok=True)
    pid_file = root / ".train.pid"
    running = _read_pid(pid_file)
    if running:
        print(
            f"error: a {kind} run is already running in {root} (pid {running}); `make stop` first, "
            f"or use another {RUN_ROOTS[kind][0]}",
            file=sys.stderr,
        )
        return 2
    resume = e.str(k.resume_var, None)
    if resume:
        try:  # the same resolution the job itself does (latest, a run name, or a directory)
            run_dir = RunDir.resolve_resume(root, resume, kind=kind)
        except RunDirError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        env[k.name_var] = e.str(k.name_var, None) or default_run_name(_default_model(k, e))
        run_dir = root / env[k.name_var]
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / k.log_name
    argv = [sys.executable, "-u", "-m", k.module]
    try:
        foreground = e.bool("FOREGROUND", False)
        monitor = e.bool("GRPO_MONITOR", True) and not foreground
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    if monitor:
        start_monitors(env, root, tensorboard_logdir(kind, env))
    if foreground:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            # Ctrl-C reaches the job too, which stops itself after a checkpoint: keep relaying its output
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            pid_file.write_text(f"{proc.pid} {run_dir.name}\n")
            assert proc.stdout
            for line in proc.stdout:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
                out.write(line)
            code = proc.wait()
        pid_file.unlink(missing_ok=True)
        return code
    proc = _spawn(argv, log, env)
    pid_file.write_text(f"{proc.pid} {run_dir.name}\n")
    time.sleep(1.0)
    if proc.poll() is not None and proc.returncode != 0:
        pid_file.unlink(missing_ok=True)
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        print(f"error: training exited at once (status {proc.returncode}); log: {log}", file=sys.stderr)
        return proc.returncode or 1
    print(f"{kind} started in the background (pid {proc.pid})")
    print(f"  run directory: {run_dir}")
    print(f"  log:           tail -f {log}")
    if monitor:
        host, port = dashboard_address(e)
        print(f"  dashboard:     http://{host}:{port}/{k.page}")
        print(f"  tensorboard:   http://127.0.0.1:{tensorboard_port(e)}/")
    print("  stop it with:  make stop")
    return 0


def tensorboard_logdir(kind: str, env: dict[str, str]) -> list[str]:
    """TensorBoard's log directory arguments: the kind's runs, or for a pipeline both trainers' runs."""
    if kind != "pipeline":
        return ["--logdir", run_root(kind, env)]
    return ["--logdir_spec", ",".join(f"{name}:{run_root(name, env)}" for name in ("sft", "grpo"))]


def start_monitors(env: dict[str, str], root: Path, tb_logdir: list[str] | None = None) -> None:
    """Dashboard and TensorBoard in the background, unless something already listens on their ports."""
    host, port = dashboard_address(env)
    repo = Path(__file__).resolve().parent.parent
    if (repo / "dashboard" / "__main__.py").exists() and not _port_open(host, port):
        p = _spawn(
            [sys.executable, "-m", "dashboard", "--host", host, "--port", str(port)],
            root / "dashboard.log",
            env,
        )
        (root / ".dashboard.pid").write_text(f"{p.pid}\n")
    tb_port = tensorboard_port(env)
    tb = Path(sys.executable).with_name("tensorboard")
    if tb.exists() and not _port_open("127.0.0.1", tb_port):
        p = _spawn(
            [str(tb), *(tb_logdir or ["--logdir", str(root)]), "--host", "127.0.0.1", "--port", str(tb_port)],
            root / "tensorboard.log",
            env,
        )
        (root / ".tensorboard.pid").write_text(f"{p.pid}\n")


def stop(env: dict[str, str]) -> int:
    e = Env(env)
    timeout = e.float("STOP_TIMEOUT", 120.0, 0.0)
    stopped = False
    # the pipeline first: stopping it stops the phase it runs, and the trainer's own pid file is not used
    for kind in ("pipeline", "grpo", "sft"):
        root = Path(run_root(kind, e))
        pid_file = root / ".train.pid"
        pid = _read_pid(pid_file)
        if pid:
            print(f"stopping {kind} pid {pid} ({pid_file.read_text().split()[-1]}): checkpoint, then exit")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            if pid_alive(pid):
                print(f"still running after {timeout:.0f} s: SIGKILL")
                os.killpg(pid, signal.SIGKILL)
            stopped = True
        pid_file.unlink(missing_ok=True)
        for name in (".dashboard.pid", ".tensorboard.pid"):
            mpid = _read_pid(root / name)
            if mpid:
                os.killpg(mpid, signal.SIGTERM)
                stopped = True
            (root / name).unlink(missing_ok=True)
    if not stopped:
        print("nothing to stop")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ)
    if argv[:1] == ["start"] and len(argv) == 2 and argv[1] in KINDS:
        return start(argv[1], env)
    if argv[:1] == ["stop"]:
        return stop(env)
    print("usage: python -m rlvr.launch start grpo|sft|pipeline | stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
