"""The SFT datasets: conversational prompt/completion rows built with the one prompt builder.

prompt = rlvr.prompts.build_messages(problem) (the exact chat GRPO and evaluation use),
completion = one assistant turn holding rlvr.prompts.reference_answer(problem). TRL's SFTTrainer then
computes the loss on the completion tokens only.

Train rows come from the train split only (rlvr.data.load_sft_pairs refuses MultiPL-E); eval rows
from the bundled eval split. A train row whose prompt also appears in the eval set is dropped
(decontamination), and so is a row longer than SFT_MAX_LENGTH tokens: TRL would otherwise truncate
it and train on a completion that never ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlvr.data import DataError, load_sft_pairs
from rlvr.problems import Problem
from rlvr.prompts import build_messages, reference_answer
from rlvr.verifier.extract import extract_code
from rlvr.verifier.ocaml_source import SignatureError


@dataclass
class SFTData:
    """What was loaded for one split, and what was left out and why."""

    source: str
    split: str
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # rows that are not usable problems
    contaminated: int = 0  # train rows whose prompt is also an eval prompt
    too_long: int = 0

    def summary(self) -> str:
        text = f"{self.source} ({self.split}): {len(self.rows)} SFT examples"
        dropped = [
            f"{len(self.skipped)} unusable" if self.skipped else "",
            f"{self.contaminated} also in the eval set" if self.contaminated else "",
            f"{self.too_long} longer than SFT_MAX_LENGTH" if self.too_long else "",
        ]
        dropped = [d for d in dropped if d]
        return text + (f"; dropped {', '.join(dropped)}" if dropped else "")


def sft_problems(source: str, split: str, on_error: str = "raise") -> tuple[list[Problem], list[str]]:
    """Problems with a reference solution from `source`'s `split`, and the reasons rows were skipped.

    A solution that is already a fenced answer (kiranpg/ocaml-sft-problems stores them so) is reduced
    to its code with the verifier's own extraction, so the target is never a fence inside a fence.
    A row whose prompt has no usable `let ... =` signature cannot be turned into the prompt GRPO and
    evaluation use; it raises DataError (on_error="raise") or is skipped and reported ("skip").
    """
    problems, skipped = [], []
    for pid, prompt, solution in load_sft_pairs(source, split=split):
        code = extract_code(solution).code  # unfenced text comes back unchanged
        problem = Problem(id=pid, prompt=prompt, tests=(), solution=code or None, split=split)
        try:
            reference_answer(problem)  # parses the signature; a bad row fails here, not mid-training
        except (SignatureError, ValueError) as e:
            reason = f"{source}: row {pid}: no usable signature or solution ({e})"
            if on_error == "raise":
                raise DataError(reason + "; set SFT_DATA_ON_ERROR=skip to skip such rows") from None
            skipped.append(reason)
            continue
        problems.append(problem)
    return problems, skipped


def example(problem: Problem) -> dict:
    """One conversational prompt/completion row (plus the problem id, for tracing)."""
    return {
        "prompt": build_messages(problem),
        "completion": [{"role": "assistant", "content": reference_answer(problem)}],
        "problem_id": problem.id,
    }


def token_count(tokenizer, row: dict) -> int:
    """Tokens of prompt + completion as the chat template renders them for training."""
    text = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _key(prompt: str) -> str:
    return " ".join(prompt.split())


def build_split(
    source: str,
    split: str,
    tokenizer,
    max_length: int,
    on_error: str = "raise",
    exclude_prompts: set[str] | None = None,
) -> tuple[SFTData, set[str]]:
    """Rows for `split` of `source`, and the normalised prompts they came from.

    Rows whose prompt is in `exclude_prompts` (the eval set's) or that exceed `max_length` tokens are
    dropped and counted.
    """
    problems, skipped = sft_problems(source, split, on_error)
    data = SFTData(source=source, split=split, skipped=skipped)
    prompts: set[str] = set()
    for p in problems:
        key = _key(p.prompt)
        if exclude_prompts and key in exclude_prompts:
            data.contaminated += 1
            continue
        row = example(p)
        if token_count(tokenizer, row) > max_length:
            data.too_long += 1
            continue
        prompts.add(key)
        data.rows.append(row)
    if not data.rows:
        raise DataError(f"{data.summary()}: nothing left to train or evaluate on")
    return data, prompts


def eval_prompts(source: str) -> set[str]:
    """Normalised prompts of the eval split of `source` (what training must not see)."""
    return {_key(prompt) for _pid, prompt, _sol in load_sft_pairs(source, split="eval")}
