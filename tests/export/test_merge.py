"""LoRA merge: the merged model is standalone and behaves exactly like base + adapter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlvr.export.merge import MergeError, adapter_chain, base_of, merge
from rlvr.models import BUNDLED_NAME, load_tokenizer
from rlvr.problems import Problem
from rlvr.prompts import build_messages, render

from .conftest import random_adapter

REPO = Path(__file__).resolve().parents[2]
PROBLEM = Problem(
    id="double",
    prompt="(** [double x] is twice [x]. *)\nlet double (x : int) : int =",
    tests=("double 1 = 2",),
)


def greedy(model, tokenizer, n: int = 12) -> list[int]:
    text = render(tokenizer, build_messages(PROBLEM))
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def logits(model, tokenizer) -> torch.Tensor:
    inputs = tokenizer(
        render(tokenizer, build_messages(PROBLEM)), return_tensors="pt", add_special_tokens=False
    )
    with torch.no_grad():
        return model(**inputs).logits[0]


def test_merged_model_matches_base_plus_adapter(tiny_model, tiny_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr.export.merge", "--adapter", str(tiny_adapter), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"-> {out}" in proc.stdout
    assert not (out / "adapter_config.json").exists()  # a plain model, no PEFT layers
    assert (out / "chat_template.jinja").exists() or "chat_template" in (
        out / "tokenizer_config.json"
    ).read_text()

    tokenizer = load_tokenizer(str(out))  # the merged dir alone: its own tokenizer and chat template
    assert tokenizer.chat_template
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), str(tiny_adapter)
    ).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()

    assert torch.allclose(logits(merged, tokenizer), logits(reference, tokenizer), atol=1e-4)
    assert not torch.allclose(
        logits(base, tokenizer), logits(reference, tokenizer), atol=1e-2
    )  # adapter matters
    assert greedy(merged, tokenizer) == greedy(reference, tokenizer)
    info = json.loads((out / "merge_info.json").read_text())
    assert info["chain"] == [str(tiny_adapter), str(tiny_model)]


def test_stacked_adapters_merge_innermost_first(tiny_model, tiny_adapter, tmp_path):
    """An adapter trained on top of another (GRPO after SFT) names that adapter as its base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    step1 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(tiny_adapter))
    step1 = step1.merge_and_unload()
    step1.save_pretrained(tmp_path / "step1")
    load_tokenizer(str(tiny_model)).save_pretrained(tmp_path / "step1")
    second = random_adapter(tmp_path / "step1", tmp_path / "second", seed=2)
    cfg = json.loads((second / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_adapter)  # what note_parent_adapter records
    (second / "adapter_config.json").write_text(json.dumps(cfg))
    assert adapter_chain(second) == [str(second), str(tiny_adapter), str(tiny_model)]

    merged = merge(second, tmp_path / "merged")
    tokenizer = load_tokenizer(str(merged))
    expected = PeftModel.from_pretrained(step1, str(second)).eval()
    got = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert torch.allclose(logits(got, tokenizer), logits(expected, tokenizer), atol=1e-4)


def test_errors_name_the_path(tiny_model, tiny_adapter, tmp_path):
    with pytest.raises(MergeError, match=f"{tiny_model} is not a LoRA adapter directory"):
        merge(tiny_model, tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("")
    with pytest.raises(MergeError, match="exists and is not empty"):
        merge(tiny_adapter, tmp_path / "full")
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr.export.merge", "--adapter", str(tmp_path / "missing")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "is not a LoRA adapter directory" in proc.stderr


def test_a_bundled_base_recorded_on_another_machine_resolves_to_the_local_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    local = cache / "models" / BUNDLED_NAME
    local.mkdir(parents=True)
    (local / "model.safetensors").write_bytes(b"")  # what bundled_model_dir looks for: no conversion
    (local / "tokenizer.json").write_text("{}")
    monkeypatch.setenv("OCAMLER_CACHE", str(cache))
    for recorded in ("bundled", f"/home/someone/.cache/ocamler-grpo/models/{BUNDLED_NAME}"):
        adapter = tmp_path / recorded.replace("/", "_")
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": recorded}))
        assert base_of(adapter) == str(local)
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/no/such/model"}))
    with pytest.raises(MergeError, match="/no/such/model, which does not exist on this machine"):
        base_of(gone)
