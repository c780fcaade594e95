"""Run inside .venv-verl (verl 0.9.1) by tests/slow/test_verl.py: everything verl does with our reward and
data, through verl's own code, printed as one JSON object for the test to check.

    .venv-verl/bin/python tests/slow/verl_probe.py <train.parquet> <tokenizer dir>
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[2]
REWARD_FILE = REPO / "rlvr" / "integrations" / "verl_reward.py"


def verl_config(name: str, overrides: list[str]):
    """A config composed the way `python -m verl.trainer.main_ppo --config-path ... --config-name` does."""
    with initialize_config_dir(config_dir=str(REPO / "configs" / "verl"), version_base=None):
        return compose(config_name=name, overrides=overrides)


def batch_of(tokenizer, rows: list[dict], responses: list[str]):
    """A DataProto like the one verl's rollout hands its reward manager: left-padded prompts,
    right-padded responses, the rows' non-tensor fields."""
    from verl import DataProto

    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True) for r in rows]
    prompts = [p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p for p in prompts]
    answers = [
        tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in responses
    ]
    pl, rl, pad = max(map(len, prompts)), max(map(len, answers)), tokenizer.pad_token_id or 0
    prompt_ids = torch.tensor([[pad] * (pl - len(p)) + list(p) for p in prompts])
    response_ids = torch.tensor([a + [pad] * (rl - len(a)) for a in answers])
    mask = torch.tensor(
        [
            [0] * (pl - len(p)) + [1] * len(p) + [1] * len(a) + [0] * (rl - len(a))
            for p, a in zip(prompts, answers)
        ]
    )
    return DataProto.from_dict(
        tensors={"prompts": prompt_ids, "responses": response_ids, "attention_mask": mask,
                 "input_ids": torch.cat([prompt_ids, response_ids], dim=1)},
        non_tensors={
            "data_source": np.array([r["data_source"] for r in rows], dtype=object),
            "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
            "extra_info": np.array([dict(r["extra_info"]) for r in rows], dtype=object),
        },
    )  # fmt: skip


def main() -> int:
    parquet, tokenizer_dir = sys.argv[1], sys.argv[2]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    out: dict = {}

    # verl's dataset class reads the converted parquet
    from verl.utils.dataset.rl_dataset import RLHFDataset

    data_config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 2048, "filter_overlong_prompts": False, "cache_dir": str(Path(parquet).parent / "cache")})  # fmt: skip
    dataset = RLHFDataset(data_files=[parquet], tokenizer=tokenizer, config=data_config)
    rows = [dataset[i] for i in range(3)]
    out["dataset_len"] = len(dataset)
    out["dataset_row0"] = {
        "raw_prompt_roles": [m["role"] for m in rows[0]["raw_prompt"]],
        "problem_id": rows[0]["extra_info"]["problem_id"],
        "ground_truth_id": json.loads(rows[0]["reward_model"]["ground_truth"])["id"],
        "data_source": rows[0]["data_source"],
    }

    # three answers to row 0's problem: its reference, a syntax error, the reference of another problem
    truth = [json.loads(r["reward_model"]["ground_truth"]) for r in rows]
    answers = [
        f"```ocaml\n{truth[0]['solution']}\n```",
        "```ocaml\nlet x = (\n```",
        f"```ocaml\n{truth[1]['solution']}\n```",
    ]
    same = [rows[0]] * 3

    # the reward loop (verl's default): its loader finds our function from the config ...
    from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager

    cfg = verl_config("ocaml_grpo_lora", [f"reward.custom_reward_function.path={REWARD_FILE}"])
    fn = get_custom_reward_fn(cfg)
    out["loaded_fn"] = fn.args[0].__module__ + "." + fn.args[0].__name__
    # ... and its per-sample manager scores real completions through it
    manager = load_reward_manager(cfg, tokenizer)
    out["manager"] = type(manager).__name__
    data = batch_of(tokenizer, same, answers)
    # concurrently, on the manager's own loop, as verl's reward loop runs them (our verifier's pool serves
    # the calls side by side)
    calls = asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(len(data))))
    results = manager.loop.run_until_complete(calls)
    out["answers"] = answers
    out["naive_scores"] = [r["reward_score"] for r in results]
    out["naive_extra"] = [r["reward_extra_info"]["pass"] for r in results]

    # the batch reward manager, with the batch function: one call, the verifier's pool
    from verl.workers.reward_manager import get_reward_manager_cls

    cfg_b = verl_config("ocaml_grpo_lora", [f"reward.custom_reward_function.path={REWARD_FILE}", "reward.custom_reward_function.name=compute_score_batch"])  # fmt: skip
    batch_manager = get_reward_manager_cls("batch")(tokenizer, 0, get_custom_reward_fn(cfg_b))
    got = batch_manager(batch_of(tokenizer, same, answers), return_dict=True)
    out["batch_scores"] = got["reward_tensor"].sum(dim=1).tolist()
    out["batch_extra"] = {k: list(v) for k, v in got["reward_extra_info"].items()}

    # the example configs compose against verl's own config tree, and their sections build verl's
    # dataclasses (a misspelt or mistyped key fails here)
    from verl.utils.config import omega_conf_to_dataclass

    local = [f"actor_rollout_ref.model.path={tokenizer_dir}", f"critic.model.path={tokenizer_dir}"]
    for name in ("ocaml_ppo", "ocaml_grpo_lora"):
        c = verl_config(name, local)  # verl's model configs load the model: the bundled one, offline
        omega_conf_to_dataclass(c.actor_rollout_ref.actor)
        if c.algorithm.adv_estimator == "gae":  # only PPO has a critic
            omega_conf_to_dataclass(c.critic)
        omega_conf_to_dataclass(c.algorithm)
        out[name] = {
            "adv_estimator": c.algorithm.adv_estimator,
            "clip_ratio": c.actor_rollout_ref.actor.clip_ratio,
            "entropy_coeff": c.actor_rollout_ref.actor.entropy_coeff,
            "grad_clip": c.actor_rollout_ref.actor.grad_clip,
            "critic_grad_clip": c.critic.grad_clip,
            "cliprange_value": c.critic.cliprange_value,
            "lora_rank": c.actor_rollout_ref.model.lora_rank,
            "rollout_n": c.actor_rollout_ref.rollout.n,
            "reward_fn": [c.reward.custom_reward_function.path, c.reward.custom_reward_function.name],
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
