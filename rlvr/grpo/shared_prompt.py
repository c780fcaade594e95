"""A cheaper GRPO update: the completions of a group share one forward pass over their prompt.

GRPO scores every completion of a group against the same prompt. TRL's loss runs the model over
`prompt + completion` for each of them, so with 8 completions of ~80 tokens after a ~250-token prompt,
three quarters of the tokens of the update's forward and backward are the same prompt, eight times.
Here each distinct prompt of a micro-batch goes through the model once; its keys and values are
repeated for its completions (an index_select, so gradients from every completion flow back into the
one prompt pass); and the completions then run on top of that cache. On the bundled model this cuts
the update's tokens about 3x (doc/benchmarks.md, "Speed on CPU").

It is the same computation: the same positions (TRL passes no position ids: positions count from the
first, padded, column, and the cache continues that count), the same attention mask, the same fused
log-probability head with TRL's temperature. Rounding differs a little because the matmuls have other
shapes, and LoRA dropout draws one mask for the shared prompt instead of one per completion (the same
expectation). The first time it runs in a process it checks itself against TRL's own pass on that
micro-batch; if the two disagree (an architecture whose positions or masks depend on the batch in a way
the cache does not carry) it says so once and leaves every later call to TRL.

It applies where it can be exact and useful: a text-only causal LM, no MoE aux loss, no gradient
checkpointing (which recomputes layers and would write the cache twice), and a micro-batch with
fewer distinct prompts than rows. Everything else goes to TRL unchanged.
"""

from __future__ import annotations

import inspect
import sys

import torch

# |shared - TRL| per token log-probability above which the self-check refuses the shared pass; float32
# rounding differences are ~1e-6, bf16 autocast ones ~1e-2 on a 135M model.
SELF_CHECK_TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 0.1, torch.float16: 0.1}


def distinct_prompts(
    prompt_ids: torch.Tensor, prompt_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the first row of each distinct prompt, for every row the position of its prompt in
    that index). Two rows share a prompt when their ids and their mask are equal column by column."""
    key = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], dim=1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    # torch.unique sorts; keep the rows' own order (first occurrence) so the pass is deterministic
    first: dict[int, int] = {}
    for row, group in enumerate(inverse.tolist()):
        first.setdefault(group, row)
    order = sorted(first, key=first.__getitem__)
    rank = {group: i for i, group in enumerate(order)}
    representatives = torch.tensor([first[g] for g in order], device=prompt_ids.device)
    owner = torch.tensor([rank[g] for g in inverse.tolist()], device=prompt_ids.device)
    return representatives, owner


def unwrapped(model):
    """The transformers model under DDP/accelerate and PEFT wrappers."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def cache_argument(model) -> str:
    """The name under which this model's forward takes a KV cache: transformers 5.x renamed
    `past_key_values` to `cache` (the old name warns until 5.40)."""
    parameters = inspect.signature(type(unwrapped(model)).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


# What one more forward call costs, in positions of the model: measured on the bundled model on a
# 2-core CPU (doc/benchmarks.md, "The update's completions at their own lengths"). Work on a CPU grows
# with the positions run, so short completions are worth a call of their own; on an accelerator one
# wide batch is cheaper than several short ones, so there everything goes in one call.
CALL_COST_POSITIONS = {"cpu": 64}


def length_buckets(lengths: list[int], call_cost: float) -> list[list[int]]:
    """Rows grouped into forward calls, each padded to its longest row: the grouping that minimises
    `call_cost` per call plus the positions run (rows x (longest + 1)). Contiguous runs of the rows
    sorted by length are optimal for this cost, so it is a small dynamic programme over them. Rows
    keep their order inside a bucket; buckets come longest first."""
    order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
    best = [0.0] + [float("inf")] * len(order)  # best[j]: the cheapest split of the j longest rows
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(j):  # rows i..j-1 of the sorted order in one call, padded to row i's length
            cost = best[i] + call_cost + (j - i) * (lengths[order[i]] + 1)
            if cost < best[j]:
                best[j], cut[j] = cost, i
    buckets, j = [], len(order)
    while j:
        buckets.append(sorted(order[cut[j] : j]))
        j = cut[j]
    return buckets[::-1]


def shared_prompt_logps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    compute_entropy: bool,
    call_cost: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Per-token log-probabilities (and entropies) of the last `logits_to_keep` tokens of each row, as
    TRL's `_get_per_token_logps_and_entropies` computes them for one chunk, with each distinct prompt
    run once. `model` must carry TRL's fused LM head (`trl.trainer.utils.add_fused_lm_head`, which the
    GRPO trainer adds). None when sharing saves nothing or cannot apply to this chunk.

    The completions then run on the prompt's cache in `length_buckets`: TRL right-pads every completion
    to the longest, so one answer at the token cap makes the whole micro-batch as wide as the cap.
    `call_cost` (positions, see CALL_COST_POSITIONS; None: by device) prices a forward call against
    padding: 0 runs each completion at its own length, infinity runs them all in one call."""
    from transformers import DynamicCache

    width = input_ids.size(1) - logits_to_keep  # the prompt columns (left-padded)
    if width < 2:
        return None
    representatives, owner = distinct_prompts(input_ids[:, :width], attention_mask[:, :width])
    if len(representatives) == input_ids.size(0):
        return None  # every row has its own prompt: nothing to share
    # The prompt minus its last token goes once per distinct prompt; its last token goes with each
    # completion, whose first token it predicts.
    prefix_ids = input_ids[representatives, : width - 1]
    prefix_mask = attention_mask[representatives, : width - 1]
    if bool((prefix_mask.sum(dim=1) == 0).any()):
        return None  # a one-token prompt: nothing before it to share
    config, cache_name = unwrapped(model).config, cache_argument(model)
    prefix = DynamicCache(config=config)
    model(
        input_ids=prefix_ids,
        attention_mask=prefix_mask,
        use_cache=True,
        logits_to_keep=1,
        **{cache_name: prefix},
    )
    labels = input_ids[:, width - 1 :].masked_fill(attention_mask[:, width - 1 :] == 0, -100)
    labels[:, 0] = -100  # the prompt's last token is not scored (the fused head drops it anyway)
    # A completion's length: up to its last unmasked token (its EOS), at least one token.
    columns = torch.arange(1, logits_to_keep + 1, device=input_ids.device)
    lengths = (attention_mask[:, width:].bool() * columns).amax(dim=1).clamp(min=1).tolist()
    if call_cost is None:
        call_cost = CALL_COST_POSITIONS.get(input_ids.device.type, float("inf"))
    rows, logps, entropies = [], [], []
    for bucket in length_buckets(lengths, call_cost):
        index = torch.tensor(bucket, device=input_ids.device)
        end = width + max(lengths[row] for row in bucket)
        cache = DynamicCache(config=config)
        for layer_index, layer in enumerate(prefix.layers):  # the rows' copies: gradients flow back
            keys, values = (t.index_select(0, owner[index]) for t in (layer.keys, layer.values))
            cache.update(keys, values, layer_index)
        out = model(
            input_ids=input_ids[index, width - 1 : end],
            attention_mask=attention_mask[index, :end],
            labels=labels[index, : end - width + 1],
            fused_lm_head=True,
            **{cache_name: cache},
        )
        pad = (0, width + logits_to_keep - end)  # the columns after the bucket's answers: zero as in TRL
        rows += bucket
        logps.append(torch.nn.functional.pad(out.log_probs, pad))
        if compute_entropy:
            entropies.append(torch.nn.functional.pad(out.entropy, pad))
    back = torch.argsort(torch.tensor(rows, device=input_ids.device))  # the buckets' rows, in batch order
    return torch.cat(logps)[back], (torch.cat(entropies)[back] if compute_entropy else None)


class SharedPromptForwardMixin:
    """For TRL's GRPOTrainer: `_get_per_token_logps_and_entropies` (the loss's forward, and the
    old/reference log-probabilities when TRL needs them) with one prompt pass per distinct prompt,
    when `shared_prompt_forward` is set (GRPO_SHARED_PROMPT_FORWARD)."""

    shared_prompt_forward: bool = False
    shared_prompt_call_cost: float | None = None  # None: by device (CALL_COST_POSITIONS)
    _shared_prompt_verified: bool = False

    def _shared_prompt_applies(self, model, compute_aux_loss: bool, extra: dict) -> bool:
        if not self.shared_prompt_forward or compute_aux_loss:
            return False
        if any(value is not None for value in extra.values()):  # images, token types: not a plain causal LM
            return False
        inner = unwrapped(model)
        for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):  # transformers 5 renamed it
            if hasattr(type(inner), name):
                return not getattr(inner, name)
        return True

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **extra,
    ):
        def trl(ids, mask, size=None):
            return super(SharedPromptForwardMixin, self)._get_per_token_logps_and_entropies(
                model, ids, mask, logits_to_keep, size, compute_entropy, compute_aux_loss, **extra
            )

        if not self._shared_prompt_applies(model, compute_aux_loss, extra):
            return trl(input_ids, attention_mask, batch_size)
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):  # TRL's chunks, to keep its memory bound
            ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            if not self._shared_prompt_verified:
                self._self_check(model, ids, mask, logits_to_keep, trl)
            shared = None
            if self.shared_prompt_forward:
                with self.accelerator.autocast():
                    shared = self._shared_or_none(model, ids, mask, logits_to_keep, compute_entropy)
            if shared is None:
                shared = trl(ids, mask)[:2]
            logps.append(shared[0])
            entropies.append(shared[1])
        return torch.cat(logps, dim=0), (torch.cat(entropies, dim=0) if compute_entropy else None), None

    def _shared_or_none(self, model, ids, mask, logits_to_keep, compute_entropy):
        """shared_prompt_logps, or None, with sharing off for the run, where this model cannot run it
        (a cache layer without batch selection, as in hybrid linear-attention models; a forward without
        `logits_to_keep` or a cache argument): TRL's forward then, never a failed step."""
        try:
            return shared_prompt_logps(
                model, ids, mask, logits_to_keep, compute_entropy, self.shared_prompt_call_cost
            )
        except (AttributeError, TypeError, ValueError, NotImplementedError, RuntimeError) as error:
            self.shared_prompt_forward = False
            self._shared_prompt_verified = True
            print(
                f"WARNING: the shared prompt forward cannot run on this model ({type(error).__name__}: "
                f"{str(error)[:200]}): TRL's forward is used for the rest of the run",
                file=sys.stderr,
                flush=True,
            )
            return None

    def _self_check(self, model, ids, mask, logits_to_keep, trl) -> None:
        """Once a run, on the first micro-batch that can share: both passes without gradients and
        without dropout, compared token by token. A disagreement turns sharing off for the run."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                with self.accelerator.autocast():
                    shared = self._shared_or_none(model, ids, mask, logits_to_keep, False)
                    device = ids.device.type
                    autocast = torch.is_autocast_enabled(device)
                    dtype = torch.get_autocast_dtype(device) if autocast else None
                if shared is None:
                    return  # nothing to share in this chunk (or it cannot run: then it is off)
                reference = trl(ids, mask)[0]
        finally:
            model.train(was_training)
        self._shared_prompt_verified = True
        scored = mask[:, -logits_to_keep:].bool()
        gap = (shared[0].float() - reference.float()).abs()[scored]
        worst = gap.max().item() if gap.numel() else 0.0
        tolerance = SELF_CHECK_TOLERANCE.get(dtype or shared[0].dtype, 0.1)
        if worst <= tolerance:
            print(f"shared prompt forward: agrees with TRL's (max |delta log p| {worst:.1e})", flush=True)
            return
        self.shared_prompt_forward = False
        print(
            f"WARNING: the shared prompt forward disagrees with TRL's on this model (max |delta log p| "
            f"{worst:.3g} > {tolerance:g}): TRL's forward is used for the rest of the run",
            file=sys.stderr,
            flush=True,
        )
