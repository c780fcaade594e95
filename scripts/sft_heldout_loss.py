"""Held-out SFT loss of several models on the same examples, with paired intervals between them:
`python scripts/sft_heldout_loss.py MODEL [MODEL ...] [--data bundled]`.

The loss SFT's own evaluation reports (SFT_EVAL_DATASET) is one number a run. Comparing two settings
needs a difference with an interval: here each example's loss (mean over its solution's tokens, the
prompt not scored, as SFT trains) is computed under each model, and the differences to the first model
are bootstrapped over examples (eval.stats.paired_bootstrap). MODEL is anything eval accepts (an HF id,
a directory, an SFT adapter directory, `bundled`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def example_losses(model, tokenizer, rows: list[dict]) -> list[float]:
    """Mean negative log-likelihood of each row's completion tokens given its prompt."""
    import torch

    losses = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        ids = tokenizer(full, add_special_tokens=False, return_tensors="pt")["input_ids"]
        start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        labels = ids.clone()
        labels[:, :start] = -100
        with torch.no_grad():
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return losses


def main(argv: list[str] | None = None) -> int:
    from eval.local_model import load_model
    from eval.stats import paired_bootstrap
    from sft.data import build_split

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default="bundled", help="problem source whose eval split is scored")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument(
        "--limit", type=int, default=None, help="score only the first N examples (a quick check)"
    )
    args = parser.parse_args(argv)
    scored: list[tuple[str, list[float]]] = []
    for spec in args.models:
        loaded = load_model(spec, dtype="float32")
        rows, _ = build_split(args.data, "eval", loaded.tokenizer, args.max_length)
        losses = example_losses(loaded.model.eval(), loaded.tokenizer, rows.rows[: args.limit])
        scored.append((spec, losses))
        print(
            f"{spec}: mean held-out loss {sum(losses) / len(losses):.4f} over {len(losses)} examples",
            flush=True,
        )
    (first, base), *others = scored
    for spec, losses in others:
        diff = paired_bootstrap(base, losses)
        print(
            f"{spec} - {first}: {diff.estimate:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}] (95 %, n {diff.n})"
        )
    print(json.dumps({"data": args.data, "mean": [[spec, sum(v) / len(v)] for spec, v in scored]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
