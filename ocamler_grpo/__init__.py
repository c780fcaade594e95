"""verifiers' name for this project's environment: `vf-eval ocamler-grpo` imports this package
(verifiers turns the id `ocamler-grpo` into the module `ocamler_grpo`). Everything lives in
rlvr.verifiers_env; this only re-exports it."""

from rlvr.verifiers_env import *  # noqa: F403
from rlvr.verifiers_env import __all__  # noqa: F401
