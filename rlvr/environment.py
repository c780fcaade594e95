"""The OCaml environment: one episode is one problem, solved the way an OCaml programmer does it.

The model may call `check(code)` on a candidate. It is type-checked and built in the verifier's
sandbox (ENV_FEEDBACK=compile), and, by default (ENV_FEEDBACK=examples), also run on the examples stated
in the problem's doc comment (rlvr.examples). The model reads what a programmer would read: the
compiler's first error with lines counted from its own code, or "compiles" and which visible examples
failed (rlvr.feedback). A check runs a *check problem* built from what the prompt shows (the signature
and its examples) and nothing else, so the hidden tests, and their results, cannot reach the model.

The episode's reward is the verifier's graduated score of the final answer (the last ```ocaml block
the model wrote, rlvr.environment.final_answer) on the hidden tests, minus ENV_CHECK_COST per check:
right sooner is worth more. An infrastructure failure stays None. Limits per episode: GRPO_MAX_TOOL_CALLS
checks, ENV_MAX_CODE_BYTES of code per check, ENV_MAX_OUTPUT_BYTES of feedback per check and
ENV_SANDBOX_BUDGET_S of sandbox time in all; past a limit the tool says so instead of running.

Three faces use the same checker: TRL 1.16's `GRPOTrainer(environment_factory=...)` (`OCamlEnvironment`:
`reset(**row)` and one public method, the tool), the self-repair evaluation (eval.repair) and the
verifiers 0.4 environment (rlvr.verifiers_env, the `verifiers` extra). doc/environment.md is the guide.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .envconf import ConfigError, Env
from .examples import visible_examples
from .feedback import clip, render
from .problems import Problem
from .verifier import Check, Verifier
from .verifier.sandbox import SandboxError

ENVIRONMENTS = ("none", "ocaml")
FEEDBACK_MODES = ("compile", "examples")

# what reset() adds to the prompt's user turn (TRL appends it to the last user message)
TOOL_HINT = (
    "\n\nBefore you answer you may call the `check` tool with your code: it type-checks and builds it{runs}, "
    "and tells you what the compiler says. Each check costs a little reward, so check only when unsure. "
    "End with your final answer in one ```ocaml block."
)


def tool_hint(feedback: str) -> str:
    return TOOL_HINT.format(runs=", runs the examples above" if feedback == "examples" else "")


@dataclass(frozen=True)
class EnvironmentSettings:
    """The environment's settings (.envrc documents each variable; each default is defined here)."""

    name: str = "none"  # GRPO_ENVIRONMENT: none = single-turn, as without an environment
    max_tool_calls: int = 3  # GRPO_MAX_TOOL_CALLS: checks per episode (and TRL's tool-calling iterations)
    feedback: str = "examples"  # ENV_FEEDBACK: compile | examples
    check_cost: float = 0.02  # ENV_CHECK_COST: reward taken off per check
    max_code_bytes: int = 16384  # ENV_MAX_CODE_BYTES: longer code is refused without running
    max_output_bytes: int = 1200  # ENV_MAX_OUTPUT_BYTES: a tool result is cut to this many bytes
    sandbox_budget_s: float = 20.0  # ENV_SANDBOX_BUDGET_S: sandbox wall time per episode, all checks

    @property
    def enabled(self) -> bool:
        return self.name != "none"

    @staticmethod
    def from_env(env: Mapping[str, str]) -> EnvironmentSettings:
        e = Env(env)
        d = EnvironmentSettings()
        return EnvironmentSettings(
            name=e.choice("GRPO_ENVIRONMENT", d.name, ENVIRONMENTS),
            max_tool_calls=e.int("GRPO_MAX_TOOL_CALLS", d.max_tool_calls, minimum=0),
            feedback=e.choice("ENV_FEEDBACK", d.feedback, FEEDBACK_MODES),
            check_cost=e.float("ENV_CHECK_COST", d.check_cost, 0.0, 1.0),
            max_code_bytes=e.int("ENV_MAX_CODE_BYTES", d.max_code_bytes, minimum=64),
            max_output_bytes=e.int("ENV_MAX_OUTPUT_BYTES", d.max_output_bytes, minimum=64),
            sandbox_budget_s=e.float("ENV_SANDBOX_BUDGET_S", d.sandbox_budget_s, 0.1, 3600.0),
        )


# -- the check problem: what the model may be checked against ------------------------------------


def signature_test(problem: Problem) -> str:
    """A test that type-checks the answer's function against the prompt's signature and is true.

    The signature with a stub body is defined in a local module, and both functions are put in one
    list, so their types must unify; run, it does nothing."""
    sig = problem.signature
    return (
        f'(let module S = struct {sig.line} failwith "stub" end in ignore [{sig.name}; S.{sig.name}]; true)'
    )


def check_problem(problem: Problem, examples: Sequence[str]) -> Problem:
    """The problem a check runs: the signature's type test, then the visible `examples`; no reference
    (fixed time limits) and none of the hidden tests."""
    return dataclasses.replace(
        problem,
        id=problem.id + ".check",
        tests=(signature_test(problem), *examples),
        solution=None,
    )


# -- the final answer -----------------------------------------------------------------------------

_BLOCK = re.compile(r"```[ \t]*(?:ocaml|ml|caml)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def final_answer(completion) -> str:
    """The answer of an episode: the last ```ocaml block of the model's turns, as a fenced block; when
    no turn has one, the last turn's text (the verifier then reads it as bare code). Tool results are
    never part of it. `completion` is TRL's list of messages or a plain string."""
    if isinstance(completion, str):
        turns = [completion]
    else:
        turns = [
            m.get("content") or ""
            for m in completion
            if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str)
        ]
    for text in reversed(turns):
        blocks = _BLOCK.findall(text)
        if blocks:
            return "```ocaml\n" + blocks[-1].strip("\n") + "\n```"
    return next((t for t in reversed(turns) if t.strip()), "")


def tool_calls_in(completion) -> int:
    """How many tool calls an episode's messages hold (0 for a single-turn completion)."""
    if isinstance(completion, str):
        return 0
    return sum(len(m.get("tool_calls") or []) for m in completion if isinstance(m, dict))


def conversation(completion) -> list[dict]:
    """An episode's turns as the run files keep them: assistant turns (text and tool calls as
    {name, arguments}) and tool results, in order."""
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    turns = []
    for m in completion:
        if not isinstance(m, dict):
            continue
        turn: dict = {"role": m.get("role"), "content": m.get("content") or ""}
        if not isinstance(turn["content"], str):
            turn["content"] = str(turn["content"])
        if m.get("role") == "tool":
            turn["name"] = m.get("name")
        calls = m.get("tool_calls")
        if calls:
            turn["tool_calls"] = [
                {
                    "name": (c.get("function") or c).get("name"),
                    "arguments": (c.get("function") or c).get("arguments"),
                }
                for c in calls
                if isinstance(c, dict)
            ]
        turns.append(turn)
    return turns


def episode_record(completion, environment, check_cost: float) -> dict:
    """What completions.jsonl adds for an episode: its conversation, its tool calls and their cost
    (ENV_CHECK_COST per check that ran; calls refused by a limit cost nothing)."""
    checks = int(getattr(environment, "checks", 0) or 0)
    return {
        "conversation": conversation(completion),
        "tool_calls": tool_calls_in(completion),
        "checks": checks,
        "check_cost": round(check_cost * checks, 6),
    }


def episode_metrics(episodes: Sequence[dict], rewards: Sequence[float | None]) -> dict[str, float]:
    """metrics.jsonl's environment keys for a batch: tool calls per episode, and the mean reward of
    the episodes with each number of calls (`env/reward_by_calls/<n>`)."""
    out = {"env/tool_calls_mean": sum(ep["tool_calls"] for ep in episodes) / max(1, len(episodes))}
    out["env/checks_mean"] = sum(ep["checks"] for ep in episodes) / max(1, len(episodes))
    by_calls: dict[int, list[float]] = {}
    for ep, r in zip(episodes, rewards):
        if r is not None:
            by_calls.setdefault(ep["tool_calls"], []).append(r)
    for n, values in sorted(by_calls.items()):
        out[f"env/reward_by_calls/{n}"] = sum(values) / len(values)
    return out


# -- the checker shared by every episode ----------------------------------------------------------


@dataclass
class CheckResult:
    """One check: the text the model reads, and the verifier's Check behind it (None when a limit
    refused it before the sandbox ran)."""

    text: str
    check: Check | None
    sandbox_s: float = 0.0


class Checker:
    """Checks candidates for one problem set with one verifier: what every episode (and the repair
    evaluation) shares. Thread-safe: the verifier is, and the examples are cached under a lock."""

    def __init__(self, verifier: Verifier, problems: Sequence[Problem], settings: EnvironmentSettings):
        self.verifier = verifier
        self.problems = {p.id: p for p in problems}
        self.settings = settings
        self._examples: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def problem(self, problem_id: str) -> Problem:
        try:
            return self.problems[problem_id]
        except KeyError:
            raise KeyError(f"environment: unknown problem id {problem_id!r}") from None

    def examples(self, problem: Problem) -> tuple[str, ...]:
        """The problem's visible examples (validated once; rlvr.examples), () with ENV_FEEDBACK=compile."""
        if self.settings.feedback == "compile":
            return ()
        with self._lock:
            if problem.id in self._examples:
                return self._examples[problem.id]
        found = visible_examples(problem, self.verifier)
        with self._lock:
            self._examples[problem.id] = found
        return found

    def refusal(self, checks: int, sandbox_s: float) -> str | None:
        """What the tool answers instead of running once an episode has used `checks` checks and
        `sandbox_s` sandbox seconds, past a limit; None while it may run."""
        s = self.settings
        if checks >= s.max_tool_calls:
            return f"No checks left ({s.max_tool_calls} per problem): give your final answer in an ```ocaml block."
        if sandbox_s >= s.sandbox_budget_s:
            return "No sandbox time left for this problem: give your final answer in an ```ocaml block."
        return None

    def check(self, problem: Problem, code: str) -> CheckResult:
        """Check `code` (the answer, fenced or bare) against what `problem`'s prompt shows."""
        if len(code.encode()) > self.settings.max_code_bytes:
            return CheckResult(
                f"Not checked: the code is longer than {self.settings.max_code_bytes} bytes.", None
            )
        try:
            examples = self.examples(problem)
        except SandboxError:
            examples = ()  # the examples could not be validated now: check the signature alone
        checked = self.verifier.check_batch([(check_problem(problem, examples), code)])[0]
        text = render(checked, examples, self.settings.feedback == "examples", problem.signature.name)
        return CheckResult(
            clip(text, self.settings.max_output_bytes), checked, checked.outcome.duration_ms / 1000
        )


# -- TRL's face -----------------------------------------------------------------------------------


class OCamlEnvironment:
    """One rollout's environment for TRL's GRPOTrainer (`environment_factory=Checker-bound factory`).

    TRL calls `reset(**row)` with the dataset row (it needs `problem_id`) before each rollout, exposes
    every public method as a tool (here only `check`), and hands the instances to the reward functions
    (`environments=`), which read `checks` for the cost. Everything else is private on purpose: TRL
    would turn any other public method into a tool.
    """

    def __init__(self, checker: Checker):
        self._checker = checker
        self._problem: Problem | None = None
        self.checks = 0  # checks that ran in the sandbox (each costs ENV_CHECK_COST)
        self.refused = 0  # calls refused by a limit
        self.sandbox_s = 0.0
        self.transcript: list[dict] = []  # each call: code bytes, stage, feedback

    def reset(self, problem_id: str, **_row) -> str:
        self._problem = self._checker.problem(problem_id)
        self.checks, self.refused, self.sandbox_s, self.transcript = 0, 0, 0.0, []
        return tool_hint(self._checker.settings.feedback)

    def check(self, code: str) -> str:
        """Type-check and build an OCaml answer in a sandbox, and run the problem's examples on it.

        Args:
            code: The whole answer: the OCaml definition of the function, helpers included.

        Returns:
            The compiler's first error (lines counted from your code), or that it compiles and which
            of the problem's examples fail.
        """
        if self._problem is None:
            raise RuntimeError("environment: check() before reset()")
        if not isinstance(code, str):
            code = str(code)
        refusal = self._checker.refusal(self.checks, self.sandbox_s)
        if refusal is not None:
            self.refused += 1
            return refusal
        result = self._checker.check(self._problem, code)
        if result.check is not None:
            self.checks += 1
            self.sandbox_s += result.sandbox_s
        self.transcript.append(
            {
                "code_bytes": len(code.encode()),
                "stage": result.check.outcome.stage if result.check else None,
                "feedback": result.text,
            }
        )
        return result.text


def environment_factory(checker: Checker):
    """The `environment_factory` TRL calls once per concurrent rollout."""

    def factory() -> OCamlEnvironment:
        return OCamlEnvironment(checker)

    return factory


# -- chat templates that can call tools -------------------------------------------------------------


def tool_template(tokenizer) -> str:
    """A chat template for `tokenizer` that renders tools and tool calls: its own when it can, else,
    for a ChatML template without tools (SmolLM2's), Qwen2.5's ChatML with Hermes-style `<tool_call>`
    JSON (the same tokens plus a tool schema in the system turn, for which TRL has a response parser).
    Raises ConfigError for a template it cannot extend."""
    from trl.chat_template_utils import qwen2_5_chat_template, supports_tool_calling

    if supports_tool_calling(tokenizer):
        return tokenizer.chat_template
    vocab = tokenizer.get_vocab()
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        return qwen2_5_chat_template
    raise ConfigError(
        "the model's chat template cannot render tool calls and is not ChatML; use a model whose "
        "template supports tools (e.g. Qwen2.5-Coder), or no tools (GRPO_ENVIRONMENT=none)"
    )


def tool_chat_template(tokenizer) -> str | None:
    """Give `tokenizer` a chat template that renders tool calls (tool_template), if it has none: TRL's
    tool loop needs one. Returns what was changed (None: nothing)."""
    template = tool_template(tokenizer)
    if template == tokenizer.chat_template:
        return None
    tokenizer.chat_template = template
    return "the model's ChatML template cannot call tools: using Qwen2.5's ChatML tool-calling template"
