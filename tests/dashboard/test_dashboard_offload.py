"""Parse processes: results come from a child, failures are reported, stop ends it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from dashboard.offload import NICE, Offloaded, OffloadError


def pids(n: int) -> Iterator[int]:
    for _ in range(n):
        yield os.getpid()


def niceness() -> Iterator[int]:
    yield os.nice(0)


def fails(msg: str) -> Iterator[int]:
    yield 1
    raise ValueError(msg)


def forever() -> Iterator[int]:
    yield from itertools.count()


def test_items_come_from_a_child_process_in_order() -> None:
    got = list(Offloaded(pids, 3))
    assert len(got) == 3 and len(set(got)) == 1
    assert got[0] != os.getpid()


def test_in_process_runs_in_this_process() -> None:
    assert list(Offloaded(pids, 2, in_process=True)) == [os.getpid(), os.getpid()]


def test_child_runs_at_lower_priority() -> None:
    assert list(Offloaded(niceness)) == [min(19, os.nice(0) + NICE)]


def test_child_that_dies_raises_offload_error() -> None:
    with pytest.raises(OffloadError, match=r"_exit exited \(code 3\)"):
        list(Offloaded(os._exit, 3))


def test_generator_error_is_reported_after_earlier_items() -> None:
    got = []
    with pytest.raises(OffloadError, match="ValueError: bad row 7"):
        for item in Offloaded(fails, "bad row 7"):
            got.append(item)
    assert got == [1]


def test_leaving_the_loop_stops_the_child() -> None:
    job = Offloaded(forever)
    for item in job:
        if item == 2:
            break
    job.stop()
    assert job.proc is not None and not job.proc.is_alive()


def test_parse_modules_do_not_import_the_web_app() -> None:
    # A parse process imports these; pulling in FastAPI made each one cost ~0.8 s of CPU to start.
    import subprocess
    import sys

    code = (
        "import sys, dashboard.series, dashboard.completions_index; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'dashboard.app') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
