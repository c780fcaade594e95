"""The one prompt builder used by SFT, GRPO and evaluation, so that training and evaluation agree.

A prompt is a chat: a system message, optional few-shot turns (train split only), then the problem's
doc comment and signature with the request for one fenced ```ocaml answer. The model's own chat
template turns it into text (TRL does this for conversational datasets; eval calls `render`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .problems import Problem
from .verifier.ocaml_source import defines_name

SYSTEM_PROMPT = (
    "You are an expert OCaml programmer. You write correct, idiomatic OCaml that compiles with the "
    "standard library only. Answer with one ```ocaml code block containing the complete definition "
    "of the requested function (and any helpers it needs), and nothing else."
)

USER_TEMPLATE = "Implement this OCaml function:\n\n```ocaml\n{prompt}\n```"


def user_message(problem: Problem) -> str:
    return USER_TEMPLATE.format(prompt=problem.prompt.rstrip())


def reference_answer(problem: Problem, solution: str | None = None) -> str:
    """The ideal completion for a problem: its reference solution as a full definition in one fence."""
    code = (solution if solution is not None else problem.solution or "").strip()
    if not code:
        raise ValueError(f"problem {problem.id} has no reference solution")
    if not defines_name(code, problem.signature.name):
        code = problem.signature.line + "\n  " + code
    return f"```ocaml\n{code}\n```"


def build_messages(
    problem: Problem, few_shot: Sequence[Problem] = (), system_prompt: str = SYSTEM_PROMPT
) -> list[dict[str, str]]:
    """The chat for `problem`; `few_shot` problems (with solutions) become earlier turns."""
    if any(p.split != "train" for p in few_shot):
        raise ValueError("few-shot examples must come from the train split")
    messages = [{"role": "system", "content": system_prompt}]
    for ex in few_shot:
        messages.append({"role": "user", "content": user_message(ex)})
        messages.append({"role": "assistant", "content": reference_answer(ex)})
    messages.append({"role": "user", "content": user_message(problem)})
    return messages


def render(
    tokenizer, messages: list[dict[str, str]], tools: list | None = None, chat_template: str | None = None
) -> str:
    """The text the model sees for `messages` (its chat template, or `chat_template`, with the
    generation prompt; with `tools`, their schema as the template renders it)."""
    if chat_template or getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True, chat_template=chat_template
        )
    # A tokenizer without a chat template (tiny test models): a plain, explicit layout.
    parts = [f"{m['role'].upper()}:\n{m['content']}\n" for m in messages]
    return "\n".join(parts) + "\nASSISTANT:\n"


def prompt_token_count(tokenizer, messages: list[dict[str, str]], tools: list | None = None) -> int:
    return len(tokenizer(render(tokenizer, messages, tools), add_special_tokens=False)["input_ids"])


def pick_few_shot(train: Sequence[Problem], n: int, exclude_id: str | None = None) -> list[Problem]:
    """The first `n` train problems with solutions (deterministic), never the problem itself."""
    return [p for p in train if p.solution and p.id != exclude_id][:n]
