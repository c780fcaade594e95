"""`python -m rlvr.service` (`make reward-server`): load the problem sets, time their references, serve.

Settings: REWARD_SERVER_* (rlvr.service.config) and VERIFIER_* for the verifier itself (.envrc).
"""

from __future__ import annotations

import os
import sys

from ..data import DataError, load_problems
from ..envconf import ConfigError
from ..problems import Problem
from ..verifier import OCamlNotFound, Verifier, VerifierConfig
from .config import ServerConfig


def load_sets(sources: tuple[str, ...]) -> list[Problem]:
    """Every problem of every set, by id; an id in two sets is refused (a client could not say which)."""
    out: dict[str, tuple[Problem, str]] = {}
    for source in sources:
        problems, _ = load_problems(source)
        for p in problems:
            if p.id in out and out[p.id][0] != p:
                raise DataError(f"problem id {p.id!r} is in both {out[p.id][1]} and {source}, differently")
            out[p.id] = (p, source)
    return [p for p, _ in out.values()]


def main() -> int:
    import uvicorn

    from .app import create_app

    try:
        config = ServerConfig.from_env(os.environ)
        verifier_config = VerifierConfig.from_env()
        problems = load_sets(config.problems)
        verifier = Verifier(verifier_config)
    except (ConfigError, DataError, OCamlNotFound, ValueError) as e:
        print(f"reward server: {e}", file=sys.stderr)
        return 2
    with verifier:
        limits = verifier.calibrate(problems)
        derived = sum(lim.reference_cpu_s is not None for lim in limits.values())
        print(
            f"reward server: {len(problems)} problems from {', '.join(config.problems)} "
            f"({derived} with time limits from their reference), {verifier.jobs} workers, "
            f"sandbox {verifier_config.sandbox}; http://{config.host}:{config.port}"
            + (" (token required)" if config.token else ""),
            flush=True,
        )
        uvicorn.run(
            create_app(config, verifier, problems), host=config.host, port=config.port, log_level="warning"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
