"""The OCaml environment for verifiers 0.4 (`pip install -e '.[verifiers]'`; doc/environment.md).

verifiers' loader imports a package and takes the one Taskset (and Harness) subclass its `__all__`
exports (and its Env): `vf-eval ocamler-grpo` finds this one through the `ocamler_grpo` package, and
`vf-eval rlvr.verifiers_env` works too.
"""

from .env import OCamlEnv, OCamlEnvConfig
from .harness import OCamlHarness
from .taskset import (
    OCamlData,
    OCamlState,
    OCamlTask,
    OCamlTaskConfig,
    OCamlTaskset,
    OCamlTasksetConfig,
    OCamlToolsConfig,
)

__all__ = [
    "OCamlData",
    "OCamlEnv",
    "OCamlEnvConfig",
    "OCamlHarness",
    "OCamlState",
    "OCamlTask",
    "OCamlTaskConfig",
    "OCamlTaskset",
    "OCamlTasksetConfig",
    "OCamlToolsConfig",
]
