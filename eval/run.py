"""Evaluate a model on OCaml problems: `python -m eval.run [--model M] [--data D] [--n N] [--k 1,5,10] ...`
(`make eval model=...`). Settings: flags, else EVAL_* variables (eval/config.py, doc/eval.md).

Steps: load the problems (the bundled eval split by default) -> ask the verifier which problems no
answer can pass (reported as invalid, never generated for, never counted as model failures) -> start
the backend -> for each batch of problems: build the chat prompts with rlvr.prompts (what training
sees), sample n answers each, apply MultiPL-E stop tokens, score with the verifier, append the rows to
results.jsonl and rewrite summary.json -> report.html. Generation of batch i+1 overlaps the scoring of
batch i. A crash or Ctrl-C keeps every finished batch; summary.json's `status` says what happened.
With --repair N (eval/repair.py) each batch's failing answers then get up to N self-repair turns
(feedback from a check of the answer, never the hidden tests) written to repairs.jsonl.

Exit status: 0 done; 1 failed during the run (files kept); 2 bad settings, data or model (nothing
written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlvr.completions import apply_stop_tokens
from rlvr.data import DataError, LoadReport, load_problems, multipl_e_file
from rlvr.envconf import ConfigError
from rlvr.liveness import process_identity
from rlvr.models import ModelLoadError
from rlvr.problems import Problem
from rlvr.prompts import SYSTEM_PROMPT, build_messages
from rlvr.runlog import clean, git_commit, now_iso
from rlvr.verifier import OCamlNotFound, Verifier, VerifierConfig, error_class

from . import resume
from .backends import Backend, Generation, make_backend
from .backends.server import ServerError
from .config import FLAGS, EvalConfig
from .metrics import summarize
from .outputs import EvalRunDir, LoadedRun, model_tag
from .repair import ENVIRONMENT_FIELDS, REPAIR_REQUEST, check_all, curve, environment_record, repair_batch
from .report import render_report
from .resume import Resumed
from .reuse import problems_digest

if TYPE_CHECKING:  # rlvr.environment is imported only by runs that repair
    from rlvr.environment import Checker, EnvironmentSettings

REPO = Path(__file__).resolve().parent.parent
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


# -- problems ---------------------------------------------------------------------------------------


def load_eval_problems(cfg: EvalConfig) -> tuple[list[Problem], LoadReport]:
    """The problems to evaluate: `cfg.data` (a MultiPL-E file name alone is looked up in
    shared/data/multipl-e), rows of `cfg.split`, the first `cfg.limit` of them."""
    source = cfg.data
    if not Path(source).expanduser().exists() and source.endswith(".jsonl") and "/" not in source:
        with contextlib.suppress(DataError):
            source = str(multipl_e_file(source))
    if source.lower().endswith(FILE_SUFFIXES) and not Path(source).expanduser().exists():
        raise DataError(f"EVAL_DATA / --data={cfg.data!r}: no such file (nor a MultiPL-E file of that name)")
    problems, report = load_problems(source, split=None if cfg.split == "all" else cfg.split)
    if not problems:
        _all, _ = load_problems(source)
        splits = sorted({p.split for p in _all})
        raise DataError(
            f"{report.source}: no problems in split {cfg.split!r} (EVAL_SPLIT); it has {len(_all)} in "
            f"split(s) {', '.join(splits)}: pass split=<one of those> or split=all"
        )
    if cfg.limit:
        problems = problems[: cfg.limit]
    return problems, report


def check_problems(verifier: Verifier, problems: list[Problem]) -> dict[str, str]:
    """id -> why, for the problems whose own tests do not compile against their signature."""
    with ThreadPoolExecutor(max_workers=verifier.jobs) as pool:
        reasons = list(pool.map(verifier.check_problem, problems))
    return {p.id: r for p, r in zip(problems, reasons) if r}


def problem_records(problems: list[Problem], invalid: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "difficulty": p.difficulty,
            "tags": list(p.tags),
            "source": p.source,
            "valid": p.id not in invalid,
            "prompt": p.prompt,
        }
        for p in problems
    ]


def sample_rows(problem: Problem, generations: list[Generation], outcomes: list) -> list[dict[str, Any]]:
    """results.jsonl rows of one problem: the Outcome fields plus where the text came from."""
    rows = []
    for j, (g, o) in enumerate(zip(generations, outcomes)):
        scored = apply_stop_tokens(problem, g.text)
        rows.append(
            {
                "problem_id": problem.id,
                "sample": j,
                **o.to_dict(),
                "error_class": error_class(o.error) if o.stage != "pass" else None,
                "completion": g.text,
                "scored_text": scored if scored != g.text else None,
                "finish_reason": g.finish_reason,
                "completion_tokens": g.completion_tokens,
                "gen_seconds": g.seconds,
            }
        )
    return rows


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "transformers", "peft", "httpx"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


# -- the evaluation ---------------------------------------------------------------------------------


class Evaluation:
    """One evaluation run: generates, scores and writes batch by batch."""

    def __init__(
        self,
        cfg: EvalConfig,
        problems: list[Problem],
        invalid: dict[str, str],
        load: LoadReport,
        verifier: Verifier,
        backend: Backend,
        run: EvalRunDir,
        timing: dict[str, float],
        resumed: Resumed | None = None,
        environment: EnvironmentSettings | None = None,
    ):
        self.cfg = cfg
        self.problems = problems
        self.valid = [p for p in problems if p.id not in invalid]
        self.invalid = invalid
        self.load = load
        self.verifier = verifier
        self.backend = backend
        self.run = run
        self.rows: list[dict[str, Any]] = list(resumed.rows) if resumed else []
        self.done = resumed.done if resumed else frozenset()
        self.problems_done = len(self.done)
        self.timing = {**timing, "generate_s": 0.0, "score_s": 0.0}  # this attempt's
        self.started = (resumed.summary.get("started") if resumed else None) or now_iso()
        self.resumes = list(resumed.summary.get("resumes") or []) if resumed else []
        if resumed:
            self.resumes.append({"at": now_iso(), "problems_kept": len(self.done)})
        self.t0 = time.monotonic()
        self.meta = problem_records(problems, invalid)
        self.static = {"versions": versions(), "git_commit": git_commit(REPO)}
        # self-repair (eval/repair.py): the environment's checker gives the feedback
        self.repair_rows: list[dict[str, Any]] = list(resumed.repairs) if resumed else []
        self.repair_timing = {"check_s": 0.0, "generate_s": 0.0, "score_s": 0.0}  # this attempt's
        self.checker: Checker | None = None
        if cfg.repair:
            from rlvr.environment import Checker

            if environment is None:
                raise ValueError("a self-repair evaluation needs the environment's settings")
            self.checker = Checker(verifier, self.valid, environment)

    def execute(self) -> None:
        """Generate and score every valid problem, batch by batch; raises what stopped it."""
        self.write_summary("running")
        size = self.cfg.batch_size
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-score") as scorer:
            pending: Future | None = None
            try:
                for start in range(0, len(self.valid), size):
                    chunk = self.valid[start : start + size]
                    if all(p.id in self.done for p in chunk):
                        continue  # written whole before the run was interrupted (--resume)
                    t = time.monotonic()
                    generations = self.backend.generate(
                        [build_messages(p) for p in chunk],
                        self.cfg.n,
                        seed=self.cfg.seed + start * self.cfg.n,
                    )
                    self.timing["generate_s"] += time.monotonic() - t
                    if pending is not None:
                        pending.result()
                    if self.cfg.repair:  # repairs generate too: no overlap with the next batch
                        self._repair_batch(chunk, generations, start)
                        continue
                    pending = scorer.submit(self._score_batch, chunk, generations)
                if pending is not None:
                    pending.result()
            finally:
                if pending is not None and not pending.done():
                    with contextlib.suppress(Exception):
                        pending.result()

    def _score_batch(self, chunk: list[Problem], generations: list[list[Generation]]) -> None:
        rows = self._score_first(chunk, generations)
        self._commit(chunk, rows, [])

    def _score_first(self, chunk: list[Problem], generations: list[list[Generation]]) -> list[dict[str, Any]]:
        """The results rows (turn 0) of a batch."""
        t = time.monotonic()
        items = [(p, apply_stop_tokens(p, g.text)) for p, gs in zip(chunk, generations) for g in gs]
        outcomes = self.verifier.score_batch(items, ids=[p.id for p, _ in items])
        rows: list[dict[str, Any]] = []
        for i, (p, gs) in enumerate(zip(chunk, generations)):
            rows += sample_rows(p, gs, outcomes[i * self.cfg.n : (i + 1) * self.cfg.n])
        self.timing["score_s"] += time.monotonic() - t
        return rows

    def _commit(
        self, chunk: list[Problem], rows: list[dict[str, Any]], repairs: list[dict[str, Any]]
    ) -> None:
        """Write a finished batch: its repair rows first, then its results rows, so that a batch whose
        results.jsonl rows are whole has all its repairs on disk too (eval/resume.py relies on it)."""
        if repairs:
            self.run.append_repairs(repairs)
        self.run.append(rows)
        self.repair_rows.extend(repairs)
        self.rows.extend(rows)
        self.problems_done += len(chunk)
        summary = self.write_summary("running")
        m = summary["metrics"]
        print(
            f"[{self.problems_done}/{len(self.valid)}] "
            + " ".join(f"pass@{k} {_fmt(m.get(f'pass@{k}'))}" for k in self.cfg.ks)
            + f" | mean reward {_fmt(m.get('mean_reward'))}"
            + f" | generate {self.timing['generate_s']:.1f} s, score {self.timing['score_s']:.1f} s",
            flush=True,
        )
        if self.cfg.repair:
            points = summary["repair"]["curve"]
            print(
                "  pass@1 after 0.."
                + str(self.cfg.repair)
                + " repairs: "
                + " -> ".join(_fmt(p["pass@1"]) for p in points)
                + f" | repair turns {len(self.repair_rows)}"
                + f" (generate {self.repair_timing['generate_s']:.1f} s, check {self.repair_timing['check_s']:.1f} s,"
                + f" score {self.repair_timing['score_s']:.1f} s)",
                flush=True,
            )

    def _repair_batch(self, chunk: list[Problem], generations: list[list[Generation]], start: int) -> None:
        """Score a batch's first answers, give its failing ones up to cfg.repair repair turns
        (eval/repair.py), then write the batch."""
        rows = self._score_first(chunk, generations)
        checker = self.checker
        assert checker is not None

        def check(items):
            t = time.monotonic()
            out = check_all(checker, items, self.verifier.jobs)
            self.repair_timing["check_s"] += time.monotonic() - t
            return out

        def generate(conversations, seed):
            t = time.monotonic()
            out = self.backend.generate(conversations, 1, seed=seed)
            self.repair_timing["generate_s"] += time.monotonic() - t
            return out

        def score(items):
            t = time.monotonic()
            texts = [(p, apply_stop_tokens(p, g.text)) for p, g in items]
            outcomes = self.verifier.score_batch(texts, ids=[p.id for p, _ in texts])
            out = [sample_rows(p, [g], [o])[0] for (p, g), o in zip(items, outcomes)]
            self.repair_timing["score_s"] += time.monotonic() - t
            return out

        repairs = repair_batch(
            chunk,
            rows,
            {p.id: build_messages(p) for p in chunk},
            self.cfg.repair,
            generate,
            check,
            score,
            seed=self.cfg.seed + start * self.cfg.n,
        )
        self._commit(chunk, rows, repairs)

    def summary(self, status: str, error: str | None = None) -> dict[str, Any]:
        metrics = summarize(
            self.rows,
            {m["id"]: m for m in self.meta},
            self.cfg.ks,
            problem_order=[p.id for p in self.valid],
        )
        wall = time.monotonic() - self.t0
        tokens = sum(r.get("completion_tokens") or 0 for r in self.rows)
        gen = self.timing["generate_s"]
        return {
            "status": status,
            "error": error,
            "run": self.run.path.name,
            "started": self.started,
            "finished": now_iso() if status != "running" else None,
            "resumes": self.resumes,
            "process": process_identity(),  # rlvr.liveness: a killed evaluation shows as died
            "settings": self.cfg.to_dict(),
            "system_prompt": SYSTEM_PROMPT,
            "model": self.backend.describe(),
            "data": {
                "source": self.load.source,
                "schema": self.load.schema,
                "split": self.cfg.split,
                "limit": self.cfg.limit,
                "rows": self.load.rows,
                "skipped_rows": self.load.skipped,
                "problems_sha256": problems_digest(self.problems),  # eval.reuse matches on it
            },
            "verifier": asdict(self.verifier.config),
            **self.static,
            "counts": {
                "problems": len(self.problems),
                "valid_problems": len(self.valid),
                "invalid_problems": len(self.invalid),
                "problems_done": self.problems_done,
                "samples": len(self.rows),
                "scored_samples": metrics["samples"],
                "infra_errors": metrics["infra_errors"],
            },
            "pass_at_k": {f"pass@{k}": metrics.get(f"pass@{k}") for k in self.cfg.ks},
            "mean_reward": metrics["mean_reward"],
            "metrics": metrics,
            **({"repair": self.repair_summary()} if self.cfg.repair else {}),
            "invalid_problems": [{"id": pid, "reason": why} for pid, why in self.invalid.items()],
            "problems": self.meta,
            "timing": {
                **{k: round(v, 3) for k, v in self.timing.items()},
                "wall_s": round(wall, 3),
                "completion_tokens": tokens,
                "tokens_per_generate_s": round(tokens / gen, 2) if gen else None,
                "samples_per_s": round(len(self.rows) / wall, 3) if wall else None,
            },
        }

    def repair_summary(self) -> dict[str, Any]:
        assert self.checker is not None
        tokens = sum(r.get("completion_tokens") or 0 for r in self.repair_rows)
        return {
            "max_repairs": self.cfg.repair,
            "feedback": self.checker.settings.feedback,
            "environment": environment_record(self.checker.settings),
            "request": REPAIR_REQUEST,
            "repair_rows": len(self.repair_rows),
            "curve": curve(self.rows, self.repair_rows, self.cfg.repair, [p.id for p in self.valid]),
            "timing": {
                **{k: round(v, 3) for k, v in self.repair_timing.items()},
                "completion_tokens": tokens,
            },
        }

    def write_summary(self, status: str, error: str | None = None) -> dict[str, Any]:
        summary = self.summary(status, error)
        self.run.write_summary(summary)
        return summary

    def finish(self, status: str, error: str | None = None) -> dict[str, Any]:
        """Final summary.json and report.html (also after a failure: they cover what was done)."""
        summary = clean(self.write_summary(status, error))
        self.run.write_report(render_report(LoadedRun(self.run.path, summary, self.rows, self.repair_rows)))
        self.run.close()
        return summary


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def print_summary(summary: dict[str, Any], path: Path) -> None:
    m = summary["metrics"]
    c = summary["counts"]
    print(f"\n{summary['status']}: {path}")
    print(
        f"problems {c['problems']} ({c['invalid_problems']} invalid, excluded), samples {c['samples']}, "
        f"infra errors {c['infra_errors']}"
    )
    for key, value in summary["pass_at_k"].items():
        print(f"  {key:<12} {_fmt(value)}")
    print(f"  {'mean reward':<12} {_fmt(m['mean_reward'])}")
    print("  funnel: " + " -> ".join(f"{f['level']} {f['reached']}" for f in m["funnel"]))
    print(f"report: {path / 'report.html'}")


# -- command line -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n\n")[0])
    helps = {
        "model": "bundled | model dir | adapter dir | HF id; with --backend server the served model name",
        "backend": "transformers (default) | server (OPENAI_BASE_URL) | llama-server (serve the model with llama.cpp)",
        "data": "bundled (default) | .jsonl/.json/.csv/.parquet | HF id | a MultiPL-E file name",
        "split": "eval (default) | train | all",
        "limit": "first N problems (0 = all)",
        "n": "samples per problem (default 1)",
        "k": "pass@k list, each <= n (default 1,5,10)",
        "temperature": "0 = greedy (default when n = 1; else 0.8)",
        "top_p": "nucleus sampling (default 1.0)",
        "max_tokens": "new tokens per sample (default 512)",
        "seed": "base seed (default 0)",
        "batch_size": "problems per generation call (default 8)",
        "dtype": "transformers backend: auto | float32 | bfloat16 | float16",
        "threads": "transformers backend: torch CPU threads (0 = default; 1 is faster on a busy CPU)",
        "base_url": "server backend: OpenAI-compatible base URL (…/v1)",
        "concurrency": "server backend: requests in flight (default 8)",
        "retries": "server backend: retries per request (default 5)",
        "request_timeout": "server backend: seconds per request (default 600)",
        "server_batch_n": "server backend: 1 = one request with n per problem (vLLM, serve_transformers)",
        "extra_body": 'server backend: JSON merged into every request, e.g. \'{"top_k": 0, "min_p": 0}\'',
        "output_dir": "where run directories go (default eval_runs)",
        "run_name": "run directory name (default <model-tag>_<time>)",
        "resume": "continue an interrupted run (its directory or name); its recorded settings win",
        "repair": "self-repair rounds: after a failing answer, show the model the check's verdict (compiler "
        "error or visible examples, ENV_FEEDBACK; never the hidden tests) and let it retry (default 0)",
    }
    for key in FLAGS:
        ap.add_argument(
            f"--{key.replace('_', '-')}", dest=key, default=None, help=f"{helps[key]} [{FLAGS[key]}]"
        )
    return ap.parse_args(argv)


def repair_environment(cfg: EvalConfig, resumed: dict[str, Any] | None) -> EnvironmentSettings | None:
    """The environment settings the repair feedback is made with (ENV_FEEDBACK, ENV_MAX_OUTPUT_BYTES,
    ...; a resumed run's recorded ones win); None without repairs. Raises ConfigError."""
    if not cfg.repair:
        return None
    from rlvr.environment import EnvironmentSettings

    settings = EnvironmentSettings.from_env(os.environ)
    recorded = ((resumed or {}).get("repair") or {}).get("environment") or {}
    return dataclasses.replace(settings, **{k: v for k, v in recorded.items() if k in ENVIRONMENT_FIELDS})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = EvalConfig.from_sources(os.environ, vars(args))
        resume_path, resume_summary = None, None
        if cfg.resume:
            cfg, resume_path, resume_summary = resume.open_run(cfg)
        environment = repair_environment(cfg, resume_summary)
        problems, load = load_eval_problems(cfg)
        if resume_path is not None:
            resume.check_same_problems(resume_path, resume_summary, problems_digest(problems))
        verifier = Verifier(VerifierConfig.from_env())
    except (ConfigError, DataError, OCamlNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with verifier:
        t = time.monotonic()
        invalid = check_problems(verifier, problems)
        check_s = time.monotonic() - t
        print(
            f"{load.source}: {len(problems)} problems ({cfg.split} split), {len(invalid)} invalid "
            f"(no answer can pass them: excluded)",
            flush=True,
        )
        t = time.monotonic()
        try:
            backend = make_backend(cfg)
        except (ModelLoadError, ServerError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        timing = {"load_s": time.monotonic() - t, "check_s": check_s}
        resumed = None
        if resume_path is not None:
            valid = [p for p in problems if p.id not in invalid]
            resumed = resume.whole_batches(resume_path, valid, cfg.n, cfg.batch_size)
            run = EvalRunDir(resume_path)
            print(
                f"resuming {run.path}: {len(resumed.done)} of {len(valid)} problems kept"
                + (f" (with their {len(resumed.repairs)} repair turns)" if cfg.repair else ""),
                flush=True,
            )
        else:
            run = EvalRunDir.create(cfg.output_dir, model_tag(backend.describe().get("spec")), cfg.run_name)
            print(f"writing {run.path}", flush=True)
        evaluation = Evaluation(
            cfg, problems, invalid, load, verifier, backend, run, timing, resumed, environment
        )
        try:
            evaluation.execute()
        except KeyboardInterrupt:
            summary = evaluation.finish("interrupted", "interrupted by the user")
            print_summary(summary, run.path)
            return 130
        except Exception as e:
            summary = evaluation.finish("failed", f"{type(e).__name__}: {e}")
            print_summary(summary, run.path)
            print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        finally:
            backend.close()
        summary = evaluation.finish("complete")
        print_summary(summary, run.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
