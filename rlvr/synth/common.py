"""What both modes share: the tally behind summary.json, the verifier version rows record, and the
concurrent loop that asks the teacher for what the ledger does not have yet."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ledger import Ledger
from .teacher import Teacher, TeacherError

VERIFIER_DIR = Path(__file__).resolve().parent.parent / "verifier"


def verifier_version() -> str:
    """A digest of the verifier's code and the OCaml compiler: rows scored by another verifier differ."""
    h = hashlib.sha256()
    for path in sorted(VERIFIER_DIR.glob("*.py")) + sorted(VERIFIER_DIR.glob("*.ml")):
        h.update(path.read_bytes())
    with contextlib.suppress(OSError):
        h.update(subprocess.run(["ocamlc", "-version"], capture_output=True, text=True).stdout.encode())
    return h.hexdigest()[:12]


@dataclass
class Tally:
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    requests: int = 0  # asked of the teacher in this run
    reused: int = 0  # answers read back from the ledger instead of asked again
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "rejected": dict(sorted(self.rejected.items())),
            "requests": {
                "made": self.requests,
                "failed": self.failed_requests,
                "reused_from_ledger": self.reused,
            },
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "seconds": round(time.monotonic() - self.started, 1),
        }


def ask_all(
    teacher: Teacher,
    ledger: Ledger,
    requests: Iterable[tuple[str, list[dict[str, str]], int | None]],
    tally: Tally,
    on_answer: Callable[[str], None],
    progress: bool = True,
) -> None:
    """Ask the teacher every (key, messages, seed) the ledger has no answer for, `concurrency` at a time;
    each answer is in the ledger before `on_answer(key)` runs (in this thread). A failed request is
    counted and left unanswered, for the next run to ask again."""
    todo = []
    for key, messages, seed in requests:
        if key in ledger.answers:
            tally.reused += 1
            on_answer(key)
        else:
            todo.append((key, messages, seed))
    if not todo:
        return
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="teacher", unit="req")

    def record(key: str, reply) -> None:
        ledger.answer(
            key, text=reply.text, finish_reason=reply.finish_reason,
            prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
        )  # fmt: skip

    pool = ThreadPoolExecutor(max_workers=teacher.settings.concurrency)
    futures = {pool.submit(teacher.ask, messages, seed): key for key, messages, seed in todo}
    try:
        for future in as_completed(futures):
            key = futures[future]
            tally.requests += 1
            try:
                reply = future.result()
            except TeacherError as e:
                tally.failed_requests += 1
                if bar is not None:
                    bar.write(f"teacher: {key}: {e}")
            else:
                tally.prompt_tokens += reply.prompt_tokens
                tally.completion_tokens += reply.completion_tokens
                record(key, reply)
                on_answer(key)
            if bar is not None:
                bar.update(1)
    finally:
        # on Ctrl-C or an error, answers already in hand go to the ledger; queued requests are dropped
        for future, key in futures.items():
            if (
                future.done()
                and not future.cancelled()
                and key not in ledger.answers
                and future.exception() is None
            ):
                record(key, future.result())
        pool.shutdown(wait=False, cancel_futures=True)
        if bar is not None:
            bar.close()
