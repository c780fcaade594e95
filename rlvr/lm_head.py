"""On CPU, TRL's fused LM head scores only the tokens that are trained on.

TRL 1.16's trainers (SFT, GRPO, RLOO) compute per-token log-probabilities with a fused LM head
(`trl.trainer.utils.add_fused_lm_head`). On CUDA/XPU with Triton it projects only the positions that
have a label; everywhere else it projects every position, prompt included, and masks the result after,
because on Neuron a varying number of positions would recompile the graph at every batch. A CPU has no
such compiler, and the LM head of a small model is a large share of its compute (SmolLM2-135M: 28M of
its 135M weights, the tied embeddings): an SFT example whose prompt is two thirds of its tokens spends
most of the head's forward and backward on positions the loss ignores.

`compact_lm_head_on_cpu()` makes TRL take its own compact path on CPU as well. The values are the same
(the same rows go through the same chunked kernel; the loss of an SFT batch is identical), only less
is computed. It changes one decision in TRL's module, `trl.trainer.utils._use_triton` (used there only
for that choice), and leaves the kernels' own choice of Triton alone.
"""

from __future__ import annotations

import functools


def compact_lm_head_on_cpu() -> bool:
    """Install the CPU compact path once per process; True when it is in effect (False when this TRL
    no longer has the decision this relies on: then TRL's own behaviour stays, slower but correct)."""
    from trl.trainer import utils

    decide = getattr(utils, "_use_triton", None)
    if decide is None:
        return False
    if getattr(decide, "_compact_on_cpu", False):
        return True

    @functools.wraps(decide)
    def compact(device) -> bool:
        return device.type == "cpu" or decide(device)

    compact._compact_on_cpu = True
    utils._use_triton = compact
    return True
