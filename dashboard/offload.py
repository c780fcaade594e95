"""Run a long parse in a child process, so that request handlers keep the GIL.

The dashboard answers requests and parses big run files in one Python process.
A thread parsing a 70 MB metrics file holds the GIL about half the time, so with
three such threads (metrics, batch metrics, completions index) a request that
needs 0.3 s of CPU took 3-4 s.  :class:`Offloaded` runs a generator function in a
spawned child instead, at a lower CPU priority (``nice`` 10, so a training job on
the same machine also keeps its cores), and hands its results back one at a time
over a pipe; the request process only unpickles compact results (numpy arrays,
small dicts).

The generator must be a module-level function of picklable arguments and must not
rely on module state set by the parent (tests that patch a module constant must
pass the value as an argument).  Where a child cannot be started the generator
runs in the calling thread instead, with a warning, so the dashboard still works;
a child that dies mid-way raises :class:`OffloadError` and the caller decides.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import multiprocessing.util  # registers its exit handler now, so that ours runs before it
import os
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

NICE = 10
_CTX = multiprocessing.get_context("spawn")


class OffloadError(RuntimeError):
    """The child process died or its generator raised; the message says which."""


class OffloadStopped(OffloadError):
    """The child was ended because this process is exiting: nothing to fall back to."""


_exiting = False


@atexit.register
def _mark_exiting() -> None:
    # Runs before multiprocessing's own exit handler (registered earlier, run later),
    # which terminates daemonic children: their end is then not a failure.
    global _exiting
    _exiting = True


def _child_main(conn: Any, fn: Callable[..., Iterator[Any]], args: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError):
        os.nice(NICE)
    try:
        for item in fn(*args):
            conn.send(("item", item))
        conn.send(("done", None))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class Offloaded:
    """``fn(*args)``, a generator, run in a child process; iterate to get its items.

    ``in_process=True`` (or a child that cannot start) runs it in this thread.
    :meth:`stop` ends the child early; it is also stopped when iteration ends.
    """

    def __init__(self, fn: Callable[..., Iterator[Any]], *args: Any, in_process: bool = False) -> None:
        self.fn = fn
        self.args = args
        self.proc: Any = None
        self._conn: Any = None
        if in_process:
            return
        parent, child = _CTX.Pipe(duplex=False)
        try:
            proc = _CTX.Process(
                target=_child_main, args=(child, fn, args), daemon=True, name="dashboard-parse"
            )
            proc.start()
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("dashboard: cannot start a parse process (%s); parsing in a thread", exc)
            parent.close()
            return
        finally:
            child.close()
        self.proc, self._conn = proc, parent

    def __iter__(self) -> Iterator[Any]:
        if self.proc is None:
            yield from self.fn(*self.args)
            return
        try:
            while True:
                try:
                    kind, value = self._conn.recv()
                except (EOFError, OSError):
                    self.proc.join(5)
                    if _exiting:
                        raise OffloadStopped(f"parse process for {self.fn.__name__} ended at exit") from None
                    raise OffloadError(
                        f"parse process for {self.fn.__name__} exited (code {self.proc.exitcode})"
                    ) from None
                if kind == "item":
                    yield value
                elif kind == "done":
                    return
                else:
                    raise OffloadError(f"{self.fn.__name__} failed in the parse process: {value}")
        finally:
            self.stop()

    def stop(self) -> None:
        """End the child (if still running) and release the pipe."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            self._conn.close()
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)
