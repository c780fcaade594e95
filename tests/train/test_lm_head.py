"""On CPU the fused LM head projects only the labelled positions (rlvr.lm_head): the same loss and
gradients as TRL's every-position path, through TRL's own fused head on a LoRA model."""

from __future__ import annotations

import pytest
import torch
from trl.trainer import utils as trl_utils

from rlvr.lm_head import compact_lm_head_on_cpu


@pytest.fixture()
def restore_trl(monkeypatch):
    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # put back after the test


@pytest.fixture()
def model(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    trl_utils.add_fused_lm_head(base, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    peft = get_peft_model(
        base,
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM"),
    )
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    return peft.train()


def loss_and_grads(model, rows_seen: list[int]):
    """One SFT-like example: 30 prompt tokens (no label) then 10 solution tokens."""
    torch.manual_seed(1)
    ids = torch.randint(3, model.config.vocab_size, (2, 40))
    labels = ids.clone()
    labels[:, :30] = -100
    kernel = trl_utils._ChunkedLogProbFunction

    class Seen(kernel):  # the real kernel, recording how many positions it was given
        @staticmethod
        def forward(ctx, hidden, *args):
            rows_seen.append(hidden.shape[0])
            return kernel.forward(ctx, hidden, *args)

    trl_utils._ChunkedLogProbFunction = Seen
    try:
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
    finally:
        trl_utils._ChunkedLogProbFunction = kernel
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.item(), out.entropy.detach(), grads


def test_only_labelled_positions_reach_the_head_and_the_loss_is_the_same(model, restore_trl):
    every_rows, compact_rows = [], []
    loss, entropy, grads = loss_and_grads(model, every_rows)
    assert compact_lm_head_on_cpu() is True
    compact_loss, compact_entropy, compact_grads = loss_and_grads(model, compact_rows)
    assert every_rows == [2 * 39]  # TRL on CPU: every position but the last
    assert compact_rows == [2 * 10]  # compact: the 10 solution tokens of each row
    assert compact_loss == pytest.approx(loss, abs=1e-6)
    assert (compact_entropy - entropy).abs().max().item() < 1e-6  # 0 where no label, as before
    assert compact_grads.keys() == grads.keys()
    for name, grad in grads.items():
        assert (compact_grads[name] - grad).abs().max().item() < 1e-6, name


def test_installing_twice_wraps_once(restore_trl):
    assert compact_lm_head_on_cpu() and compact_lm_head_on_cpu()
    installed = trl_utils._use_triton
    assert installed(torch.device("cpu")) is True
    assert installed.__wrapped__(torch.device("cpu")) is False  # TRL's own decision underneath
    assert not getattr(installed.__wrapped__, "_compact_on_cpu", False)
