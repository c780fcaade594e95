"""OpenRLHF's local reward function, loaded the way OpenRLHF loads `--remote_rm_url <file.py>` (by path,
as a fresh module) and called with its call shape: reward_func(queries, prompts, labels)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from rlvr.data import REPO_ROOT
from rlvr.service.openrlhf import ProtocolError

FILE = REPO_ROOT / "rlvr" / "integrations" / "openrlhf_reward_func.py"
PROMPT = "<|im_start|>user\nWrite double.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture()
def reward_func(tmp_path, monkeypatch):
    problems = tmp_path / "problems.jsonl"
    row = {
        "id": "double",
        "prompt": "(** [double x] is twice [x]. *)\nlet double (x : int) : int =",
        "tests": ["double 0 = 0", "double 2 = 4", "double (-3) = -6", "double 50 = 100"],
        "solution": "let double (x : int) : int = 2 * x",
    }
    problems.write_text(json.dumps(row) + "\n")
    monkeypatch.setenv("REWARD_SERVER_PROBLEMS", str(problems))
    spec = importlib.util.spec_from_file_location("reward_func_module", FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.reward_func
    module._state["verifier"].close()


def test_scores_with_openrlhfs_call_shape(reward_func):
    queries = [
        PROMPT + "```ocaml\nlet double x = x + x\n```<|im_end|>",
        PROMPT + "```ocaml\nlet double x = x * x\n```<|im_end|><|endoftext|>",  # passes 0 and 2: 2 of 4
        PROMPT + "```ocaml\nlet double x = (\n```",
    ]
    out = reward_func(queries, [PROMPT] * 3, ["double"] * 3)
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].dtype == torch.float32
    assert out["rewards"].tolist() == pytest.approx([1.0, 0.675, 0.0])
    assert out["scores"].tolist() == out["rewards"].tolist()
    assert out["extra_logs"]["pass"].tolist() == [1.0, 0.0, 0.0]
    assert out["extra_logs"]["type_checked"].tolist() == [1.0, 1.0, 0.0]
    assert out["extra_logs"]["tests_fraction"].tolist() == [1.0, 0.5, 0.0]


def test_an_unknown_label_names_its_index(reward_func):
    with pytest.raises(ProtocolError, match=r"labels\[1\]: unknown problem id 'nope'"):
        reward_func([PROMPT + "x", PROMPT + "y"], [PROMPT] * 2, ["double", "nope"])
