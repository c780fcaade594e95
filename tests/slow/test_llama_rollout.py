"""GRPO rollouts from llama-server (rlvr.grpo.llama_rollout), with the real llama.cpp build: the served
model is the trainer's current policy (LoRA merged), and a real GRPO run generates every step with it."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import torch

from rlvr.grpo.llama_rollout import SAMPLERS, LlamaServer, save_policy
from tests.slow.test_llama_cpp_export import built, run  # noqa: F401  (fixture)
from tests.train.conftest import problems_file, run_module, tiny_model, train_env  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # `built` may build llama.cpp (~15-20 min)


@pytest.fixture()
def trained_lora(tiny_model):  # noqa: F811
    """The tiny model with a LoRA adapter whose B matrices are far from zero: a policy that differs
    from its base model, as one does after training."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM"),
    )
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    return model.eval()


def token_logps(model, prompt: list[int], completion: list[int], temperature: float) -> torch.Tensor:
    """log p(token) of each completion token under `model`, with logits divided by `temperature` (as TRL's
    loss computes them)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1] / temperature
    return torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(completion)[:, None])[:, 0]


def test_the_served_gguf_is_the_merged_policy(built, trained_lora, tiny_model, tmp_path):  # noqa: F811
    """llama.cpp's probabilities for the tokens it samples are those of the LoRA-merged policy, not of the
    base model: the weights reach the server merged, with the right names and layout."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.export.gguf import write_gguf

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    policy_dir = tmp_path / "policy"
    tokenizer.save_pretrained(policy_dir)
    save_policy(trained_lora, policy_dir)
    assert not any("lora" in line for line in (policy_dir / "config.json").read_text().splitlines())
    gguf = write_gguf(policy_dir, tmp_path / "policy-f16.gguf", "f16")
    server = LlamaServer(parallel=1, context_per_slot=128, threads=1, log=tmp_path / "server.log")
    server.start(gguf)
    try:
        prompt = tokenizer("let rec length xs =")["input_ids"]
        answer = server.complete(
            {"prompt": prompt, "n_predict": 24, "temperature": 1.0, "samplers": SAMPLERS, "top_k": 0,
             "top_p": 1.0, "min_p": 0.0, "seed": 3, "return_tokens": True, "n_probs": 1,
             "post_sampling_probs": True, "ignore_eos": True}
        )  # fmt: skip
    finally:
        server.stop()
    tokens = answer["tokens"]
    served = torch.tensor([math.log(p["prob"]) for p in answer["completion_probabilities"]])
    assert len(tokens) == 24 and served.shape == (24,)
    policy = token_logps(trained_lora, prompt, tokens, 1.0)
    base = token_logps(AutoModelForCausalLM.from_pretrained(tiny_model), prompt, tokens, 1.0)
    gap_policy = (served - policy).abs().mean().item()
    gap_base = (served - base).abs().mean().item()
    assert gap_policy < 0.02, (gap_policy, gap_base)
    assert gap_base > 10 * gap_policy, (gap_policy, gap_base)
    assert server.process is None


def test_an_in_place_refresh_writes_the_bytes_of_a_new_conversion(built, trained_lora, tiny_model, tmp_path):  # noqa: F811
    """After a step, the weight sync rewrites only the tensors of the GGUF it converted at the first
    step (rlvr.export.gguf.TensorRefresh): the file must be, byte for byte, what a full conversion of
    the new weights writes, metadata included."""
    from transformers import AutoTokenizer

    from rlvr.export.gguf import TensorRefresh, write_gguf
    from rlvr.grpo.llama_rollout import policy_state_dict

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    first, fresh = tmp_path / "a" / "policy", tmp_path / "b" / "policy"  # the same name: general.name
    for directory in (first, fresh):
        tokenizer.save_pretrained(directory)
    save_policy(trained_lora, first)
    served = write_gguf(first, tmp_path / "served.gguf", "f16")
    before = served.read_bytes()
    refresh = TensorRefresh(served, first)
    with torch.no_grad():  # a training step
        for name, param in trained_lora.named_parameters():
            if "lora_B" in name:
                param.add_(0.1)
    refresh(policy_state_dict(trained_lora))
    save_policy(trained_lora, fresh)
    expected = write_gguf(fresh, tmp_path / "expected.gguf", "f16").read_bytes()
    assert served.read_bytes() == expected
    assert before != expected  # the new weights did change the file


def test_a_refresh_that_does_not_fit_the_file_writes_nothing(built, trained_lora, tiny_model, tmp_path):  # noqa: F811
    """Weights of another shape (or a missing tensor) are refused with ExportError before any byte
    of the served file is touched; the rollout then converts in full."""
    from transformers import AutoTokenizer

    from rlvr.export.gguf import ExportError, TensorRefresh, write_gguf
    from rlvr.grpo.llama_rollout import policy_state_dict

    policy_dir = tmp_path / "policy"
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(policy_dir)
    save_policy(trained_lora, policy_dir)
    served = write_gguf(policy_dir, tmp_path / "served.gguf", "f16")
    before = served.read_bytes()
    refresh = TensorRefresh(served, policy_dir)
    state = policy_state_dict(trained_lora)
    name = next(n for n in state if n.endswith("mlp.up_proj.weight"))
    with pytest.raises(ExportError, match=r"tensor blk\.\d+\.ffn_up\.weight is float16"):
        refresh({**state, name: torch.zeros(state[name].shape[0] + 1, state[name].shape[1])})
    with pytest.raises(ExportError, match=f"lack {re.escape(name)}"):
        refresh({n: t for n, t in state.items() if n != name})
    assert served.read_bytes() == before


def test_a_grpo_run_generates_every_step_from_llama_server(built, tiny_model, problems_file, tmp_path):  # noqa: F811
    """Two real GRPO steps with GRPO_ROLLOUT_ENGINE=llama-server: the server is restarted on the new
    weights each step, the completions are scored and logged, the sampling gap is small, and neither the
    server nor its weight files outlive the run."""
    env = train_env(
        tiny_model, problems_file, tmp_path, GRPO_ROLLOUT_ENGINE="llama-server", GRPO_NUM_GENERATIONS="4",
        GRPO_MAX_COMPLETION_LENGTH="24", GRPO_LEARNING_RATE="0.05", TRL_EXPERIMENTAL_SILENCE="1",
    )  # fmt: skip
    proc = run_module("rlvr.train", env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "refresh failed" not in proc.stdout + proc.stderr  # step 2's sync rewrote the tensors in place
    run_dir = tmp_path / "run"
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    steps = [s for s in steps if "loss" in s]
    assert [s["step"] for s in steps] == [1, 2]
    for s in steps:
        assert s["timing/rollout_sync_s"] > 0
        assert s["completions/mean_length"] > 0
        assert 0 <= s["rollout/foreign_stop_frac"] <= 1
    # the sampling probabilities are asked for on the first step and every PROBS_EVERY-th after
    assert 0 <= steps[0]["rollout/logprob_gap"] < 0.01 and "rollout/logprob_gap" not in steps[1]
    starts = [
        line for line in (run_dir / "llama-server.log").read_text().splitlines() if line.startswith("$ ")
    ]
    assert len(starts) == 2 and "-np 4" in starts[0]  # one server a step, one slot a completion
    completions = [json.loads(line) for line in (run_dir / "completions.jsonl").open()]
    assert len(completions) == 8 and all(isinstance(c["completion"], str) for c in completions)
    served = starts[0].split(" -m ")[1].split(" ")[0]  # the GGUF the first server loaded
    assert subprocess.run(["pgrep", "-f", served], capture_output=True).returncode == 1  # no server left
    assert not Path(served).parent.exists()  # nor its weight files


def test_a_crashed_server_is_restarted_once_and_the_batch_generated(built, tiny_model, tmp_path):  # noqa: F811
    """llama-server killed between two rollouts of a real GRPOTrainer: the next rollout says so, starts
    a fresh server on the same weights and returns the whole batch, the same tokens for the same seeds."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from rlvr.grpo.llama_rollout import LlamaServerRollout
    from rlvr.grpo.trainer import make_trainer_class

    rollout = LlamaServerRollout(
        work_dir=tmp_path / "work", log=tmp_path / "server.log", parallel=2, max_prompt_length=32,
        max_completion_length=8, seed=1, threads=1,
    )  # fmt: skip
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=8, report_to=[], use_cpu=True, save_strategy="no",
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    trainer = make_trainer_class("grpo")(
        model=AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
        reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": "let x ="}]),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
        rollout_func=rollout,
    )
    rollout.prepare(tokenizer)
    try:
        first = rollout(["let x =", "let x ="], trainer)
        rollout.server.process.kill()
        rollout.server.process.wait()
        again = rollout(["let x =", "let x ="], trainer)
    finally:
        rollout.close()
    assert [len(c) for c in first["completion_ids"]] == [8, 8]
    assert again["completion_ids"] == first["completion_ids"]
    assert first["prompt_ids"][0] == tokenizer("let x =")["input_ids"]
    assert sum(line.startswith("$ ") for line in (tmp_path / "server.log").read_text().splitlines()) == 2
    assert not (tmp_path / "work").exists() and rollout.server.process is None


def test_a_killed_run_leaves_no_server_and_its_weights_are_swept(built, tiny_model, problems_file, tmp_path):  # noqa: F811
    """SIGKILL runs no cleanup: the llama-server child still dies with its trainer (PR_SET_PDEATHSIG), and
    the next run's start removes the dead run's weight directory from /dev/shm."""
    import os
    import signal
    import sys
    import time

    from rlvr.grpo.llama_rollout import work_dir_for
    from tests.train.conftest import REPO

    env = train_env(
        tiny_model, problems_file, tmp_path, GRPO_ROLLOUT_ENGINE="llama-server", GRPO_MAX_STEPS="50",
        GRPO_MAX_COMPLETION_LENGTH="24", TRL_EXPERIMENTAL_SILENCE="1",
    )  # fmt: skip
    trainer = subprocess.Popen([sys.executable, "-m", "rlvr.train"], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    log = tmp_path / "run" / "llama-server.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (log.exists() and "$ " in log.read_text()):
        time.sleep(0.5)
    served = log.read_text().split(" -m ")[1].split(" ")[0]
    time.sleep(1)
    assert subprocess.run(["pgrep", "-f", served], capture_output=True).returncode == 0  # serving
    os.kill(trainer.pid, signal.SIGKILL)
    trainer.wait()
    gone = time.monotonic() + 20
    while (
        time.monotonic() < gone
        and subprocess.run(["pgrep", "-f", served], capture_output=True).returncode == 0
    ):
        time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", served], capture_output=True).returncode == 1
    stale = Path(served).parent
    assert stale.exists() and stale.name.endswith(f"-{trainer.pid}")
    mine = work_dir_for("next")
    assert not stale.exists() and mine.name == f"ocamler-rollout-next-{os.getpid()}"
