"""The shared prompt pass of the GRPO update (rlvr.grpo.shared_prompt): the same log-probabilities,
entropies, gradients and training step as TRL's own forward, on a real GRPOTrainer with a LoRA adapter
on the tiny model; TRL's forward wherever sharing cannot apply."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from rlvr.grpo import shared_prompt
from rlvr.grpo.shared_prompt import distinct_prompts, length_buckets, shared_prompt_logps
from rlvr.grpo.trainer import make_trainer_class

PROMPT, COMPLETION = 40, 24


def length_reward(completions, **_kwargs) -> list[float]:
    return [float(len(str(c))) for c in completions]  # differs within a group: a non-zero loss


def grpo_trainer(model_dir, tmp_path, max_steps=1, dropout=0.0, bf16=False, optim="adamw_torch"):
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from rlvr.training import checkpointing_arg

    args = GRPOConfig(
        **{checkpointing_arg(): False},  # TRL turns it on by default; the cpu profile does not
        output_dir=str(tmp_path),
        max_steps=max_steps,
        per_device_train_batch_size=8,
        num_generations=4,  # two groups in the micro-batch
        max_completion_length=12,
        learning_rate=1e-2,
        optim=optim,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=bf16,  # float32 by default: the comparisons below are exact up to float32 rounding
        save_strategy="no",
        seed=3,
    )
    prompts = [{"prompt": "let rec length xs ="}, {"prompt": "(* sum *) let sum (a : int) (b : int) : int ="}]
    trainer = make_trainer_class("grpo")(
        model=str(model_dir),
        reward_funcs=[length_reward],
        args=args,
        train_dataset=Dataset.from_list(prompts * 8),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=LoraConfig(
            r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=dropout, task_type="CAUSAL_LM"
        ),
    )
    return trainer


@pytest.fixture(scope="module")
def trainer(tiny_model, tmp_path_factory):
    trainer = grpo_trainer(tiny_model, tmp_path_factory.mktemp("shared"))
    torch.manual_seed(0)
    for name, param in trainer.model.named_parameters():  # a trained-looking adapter: B is zero when fresh
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    return trainer


def micro_batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight rows: five share prompt A, three share prompt B (left-padded by 7); ragged completions."""
    torch.manual_seed(1)
    prompts = torch.randint(3, vocab, (2, PROMPT))
    prompt_mask = torch.ones(2, PROMPT, dtype=torch.long)
    prompt_mask[1, :7] = 0
    rows = [0, 0, 1, 0, 1, 0, 1, 0]
    ids = torch.cat([prompts[rows], torch.randint(3, vocab, (8, COMPLETION))], dim=1)
    mask = torch.cat([prompt_mask[rows], torch.ones(8, COMPLETION, dtype=torch.long)], dim=1)
    for row, length in enumerate(LENGTHS):
        mask[row, PROMPT + length :] = 0
    return ids, mask


LENGTHS = [24, 10, 3, 24, 1, 17, 24, 5]  # micro_batch's completions


def forward_backward(trainer, ids, mask, shared: bool, call_cost: float | None = None):
    model = trainer.model
    trainer.shared_prompt_forward, trainer._shared_prompt_verified = shared, True
    trainer.shared_prompt_call_cost = call_cost
    model.train()
    model.zero_grad()
    logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
        model, ids, mask, COMPLETION, compute_entropy=True
    )
    scored = mask[:, PROMPT:]
    (-(logps * scored).sum() + 0.1 * (entropies * scored).sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), entropies.detach(), grads


# each completion at its own length, the CPU's buckets, and all in one call (an accelerator's layout)
@pytest.mark.parametrize("call_cost", [0.0, 64.0, float("inf")], ids=["rows", "buckets", "one-call"])
def test_log_probs_entropies_and_gradients_equal_trls(trainer, call_cost):
    ids, mask = micro_batch(trainer.model.config.vocab_size)
    with torch.no_grad():  # this batch does take the shared path (else the test compares TRL with TRL)
        assert shared_prompt_logps(trainer.model, ids, mask, COMPLETION, False, call_cost) is not None
    trl_logps, trl_entropies, trl_grads = forward_backward(trainer, ids, mask, shared=False)
    logps, entropies, grads = forward_backward(trainer, ids, mask, shared=True, call_cost=call_cost)
    scored = mask[:, PROMPT:].bool()
    assert (logps - trl_logps).abs()[scored].max().item() < 1e-5
    assert (entropies - trl_entropies).abs()[scored].max().item() < 1e-5
    assert logps[~scored].abs().max().item() == 0.0  # padding is not scored, as in TRL
    assert grads.keys() == trl_grads.keys() and any("lora_A" in n for n in grads)
    for name, grad in trl_grads.items():
        assert (grads[name] - grad).abs().max().item() <= 1e-5 * max(grad.abs().max().item(), 1e-3), name


def test_under_bf16_autocast_the_log_probs_agree_within_bf16_rounding(tiny_model, tmp_path):
    trainer = grpo_trainer(tiny_model, tmp_path, bf16=True)
    ids, mask = micro_batch(trainer.model.config.vocab_size)
    trl_logps, _, _ = forward_backward(trainer, ids, mask, shared=False)
    logps, _, _ = forward_backward(trainer, ids, mask, shared=True)
    gap = (logps - trl_logps).abs()[mask[:, PROMPT:].bool()].max().item()
    assert gap < shared_prompt.SELF_CHECK_TOLERANCE[torch.bfloat16] / 2


def test_length_buckets_price_a_call_against_the_padding_it_saves():
    lengths = [256, 81, 64, 120, 45, 90, 70, 100]
    assert length_buckets(lengths, 0) == [[0], [3], [7], [5], [1], [6], [2], [4]]  # longest first
    # 64 + 257, 64 + 3 x 121, 64 + 4 x 91 = 1 176 positions, against 1 232 for two calls, 2 120 for one
    assert length_buckets(lengths, 64) == [[0], [3, 5, 7], [1, 2, 4, 6]]
    assert length_buckets(lengths, 200) == [[0], [1, 2, 3, 4, 5, 6, 7]]
    assert length_buckets(lengths, float("inf")) == [list(range(8))]
    assert length_buckets([5, 5, 5], 0) == [[0, 1, 2]]  # nothing to save: one call
    assert length_buckets([], 64) == []


def test_each_completion_runs_at_its_own_length_on_the_shared_prompt(trainer):
    """The positions the model runs: TRL's pass 8 x (prompt + longest completion); the shared pass with
    one call per completion, each distinct prompt once and each completion at its own length."""
    ids, mask = micro_batch(trainer.model.config.vocab_size)
    seen = []
    embed = trainer.model.get_input_embeddings()
    hook = embed.register_forward_hook(lambda _m, args, _out: seen.append(args[0].numel()))
    try:
        with torch.no_grad():
            shared_prompt_logps(trainer.model, ids, mask, COMPLETION, False, call_cost=0.0)
            rows = sum(seen)
            seen.clear()
            shared_prompt_logps(trainer.model, ids, mask, COMPLETION, False, call_cost=float("inf"))
            one_call = sum(seen)
    finally:
        hook.remove()
    # two distinct prompts of PROMPT - 1 tokens, then each completion with the prompt's last token
    assert rows == 2 * (PROMPT - 1) + sum(length + 1 for length in LENGTHS)
    assert one_call == 2 * (PROMPT - 1) + 8 * (max(LENGTHS) + 1)
    assert rows < one_call < 8 * (PROMPT + COMPLETION)


def test_rows_share_a_prompt_only_when_ids_and_mask_both_match():
    ids = torch.tensor([[5, 6, 7], [5, 6, 7], [9, 6, 7], [5, 6, 7]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 1, 1]])
    representatives, owner = distinct_prompts(ids, mask)
    assert representatives.tolist() == [0, 2, 3]  # first occurrence, in the rows' order
    assert owner.tolist() == [0, 0, 1, 2]


def test_a_micro_batch_of_distinct_prompts_is_left_to_trl(trainer):
    ids, mask = micro_batch(trainer.model.config.vocab_size)
    ids[:, 0] = torch.arange(8) + 3  # every row its own prompt
    mask[:, 0] = 1
    with torch.no_grad():
        assert shared_prompt_logps(trainer.model, ids, mask, COMPLETION, False) is None


def test_gradient_checkpointing_keeps_trls_forward(trainer):
    trainer.shared_prompt_forward = True
    inner = trainer.model.get_base_model()
    inner.gradient_checkpointing_enable()
    try:
        assert not trainer._shared_prompt_applies(trainer.model, False, {})
    finally:
        inner.gradient_checkpointing_disable()
    assert trainer._shared_prompt_applies(trainer.model, False, {})
    assert not trainer._shared_prompt_applies(trainer.model, False, {"pixel_values": torch.zeros(1)})


def test_a_failed_self_check_turns_sharing_off_and_returns_trls_result(trainer, monkeypatch, capsys):
    ids, mask = micro_batch(trainer.model.config.vocab_size)
    trl_logps, _, _ = forward_backward(trainer, ids, mask, shared=False)
    monkeypatch.setitem(shared_prompt.SELF_CHECK_TOLERANCE, torch.float32, -1.0)  # any gap fails
    trainer.shared_prompt_forward, trainer._shared_prompt_verified = True, False
    logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, COMPLETION)
    assert trainer.shared_prompt_forward is False
    assert "disagrees with TRL's" in capsys.readouterr().err
    assert torch.equal(logps.detach(), trl_logps)


def test_a_model_whose_cache_cannot_be_shared_falls_back_to_trl(trainer, capsys):
    # LFM2 mixes convolution layers into its cache; their state has no batch selection
    from transformers import AutoModelForCausalLM, Lfm2Config
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    config = Lfm2Config(
        vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, layer_types=["conv", "full_attention"], max_position_embeddings=256,
    )  # fmt: skip
    hybrid = AutoModelForCausalLM.from_config(config).eval()
    add_fused_lm_head(hybrid)
    ids, mask = micro_batch(500)
    trainer.shared_prompt_forward, trainer._shared_prompt_verified = True, False
    try:
        with torch.no_grad():
            logps, _, _ = trainer._get_per_token_logps_and_entropies(hybrid, ids, mask, COMPLETION)
            assert trainer.shared_prompt_forward is False  # off for the rest of the run
            expected, _, _ = trainer._get_per_token_logps_and_entropies(hybrid, ids, mask, COMPLETION)
    finally:
        trainer.shared_prompt_forward, trainer._shared_prompt_verified = True, True
    assert "cannot run on this model" in capsys.readouterr().err
    assert torch.equal(logps, expected)


def trained_adapter(model_dir, tmp_path, shared: bool) -> dict[str, torch.Tensor]:
    # SGD: a weight moves by lr x its gradient, so equal gradients give equal weights. Adam divides by
    # sqrt(v): for a near-zero gradient, float32 rounding alone moves the weight by up to ~lr.
    trainer = grpo_trainer(model_dir, tmp_path, max_steps=2, optim="sgd")
    trainer.shared_prompt_forward = shared
    trainer.train()
    assert trainer._shared_prompt_verified is shared  # the check ran only when sharing...
    assert trainer.shared_prompt_forward is shared  # ...and passed: sharing stayed on
    loss = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}, loss


def test_two_training_steps_end_at_the_same_adapter(tiny_model, tmp_path):
    trl_weights, trl_loss = trained_adapter(tiny_model, tmp_path / "trl", shared=False)
    weights, loss = trained_adapter(tiny_model, tmp_path / "shared", shared=True)
    assert loss == pytest.approx(trl_loss, abs=1e-6)  # GRPO's loss is ~0 at ratio 1; its gradient is not
    moved = max((w - torch.zeros_like(w)).abs().max().item() for n, w in weights.items() if "lora_B" in n)
    assert moved > 1e-4  # lora_B starts at zero: the steps changed it
    for name, w in trl_weights.items():
        assert (weights[name] - w).abs().max().item() < 1e-7, name  # measured: ~1e-10
