"""LoRA adapter -> standalone model: `python -m rlvr.export.merge --adapter PATH [--out merged_model/]`.

Why: serving stacks (llama.cpp's converter, Ollama, vLLM without LoRA support) want one model
directory, and a GRPO run can start from a merged SFT model like from any base. The base is the one
named in the adapter's adapter_config.json; an adapter trained on the bundled SmolLM2 names the
converted cache directory, which is re-created (or found) on this machine when the recorded path is
missing. The output holds the merged weights (safetensors), config, generation config and the
tokenizer with its chat template, so it loads with `from_pretrained(out)` alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models import BUNDLED, BUNDLED_NAME, ModelLoadError, bundled_model_dir, is_adapter_dir

DTYPES = ("auto", "float32", "bfloat16", "float16")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class MergeError(RuntimeError):
    """The adapter cannot be merged (not an adapter, base missing, ...); the message names the path."""


def adapter_config(adapter: str | Path) -> dict:
    path = Path(adapter) / "adapter_config.json"
    if not path.exists():
        raise MergeError(
            f"{adapter} is not a LoRA adapter directory (no adapter_config.json); "
            "a directory with config.json is already a standalone model"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MergeError(f"{path}: not valid JSON ({e.msg})") from None


def base_of(adapter: str | Path) -> str:
    """The base model the adapter was trained on, as a path or hub id loadable here."""
    base = adapter_config(adapter).get("base_model_name_or_path")
    if not base:
        raise MergeError(f"{Path(adapter) / 'adapter_config.json'}: no base_model_name_or_path")
    if base == BUNDLED or (Path(base).name == BUNDLED_NAME and not Path(base).exists()):
        return str(bundled_model_dir())
    if base.startswith(("/", ".", "~")) and not Path(base).expanduser().exists():
        raise MergeError(
            f"the base model of {adapter} is {base}, which does not exist on this machine; "
            "copy it there or edit base_model_name_or_path in adapter_config.json"
        )
    return base


def load_tokenizer_for(adapter: str | Path, base: str):
    """The adapter's own tokenizer (saved by the trainer, with its chat template), else the base's."""
    from transformers import AutoTokenizer

    source = adapter if any((Path(adapter) / f).exists() for f in TOKENIZER_FILES) else base
    return AutoTokenizer.from_pretrained(source)


def adapter_chain(adapter: str | Path) -> list[str]:
    """The adapters from `adapter` down to the first real model, then that model: [adapter, ..., base].

    A GRPO run started from an SFT adapter records the SFT adapter as its base (note_parent_adapter),
    so merging the GRPO adapter applies the SFT adapter first, exactly as training saw it.
    """
    chain = [str(adapter)]
    while is_adapter_dir(chain[-1]):
        if len(chain) > 16:
            raise MergeError(f"{adapter}: adapter chain longer than 16 (a loop in base_model_name_or_path?)")
        chain.append(base_of(chain[-1]))
    return chain


def load_merged(adapter: str | Path, dtype: str = "auto"):
    """The base model with the adapter's weights (and those of the adapters under it) folded in:
    a plain transformers model, no PEFT layers."""
    if dtype not in DTYPES:
        raise MergeError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    *adapters, base = adapter_chain(adapter)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except OSError as e:
        raise ModelLoadError(f"cannot load the base model {base!r} of the adapter {adapter}: {e}") from None
    for path in reversed(adapters):  # the innermost (closest to the base) first
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    return model


def model_for_training(model_path: str, dtype: str = "float32"):
    """What to hand a TRL trainer as `model`: the path itself, or, for a LoRA adapter directory (an SFT
    or GRPO result), its base with the adapter merged in memory, so that a new LoRA trains on top.

    transformers cannot load an adapter directory as a model (it has no config.json), which is why
    BASE_MODEL_ID=<adapter> needs this. The merged model keeps the base's name_or_path, so vLLM
    (colocate) starts from the base and receives the merged weights at the first weight sync.
    """
    if not is_adapter_dir(model_path):
        return model_path
    chain = " <- ".join(adapter_chain(model_path)[::-1])
    print(f"{model_path} is a LoRA adapter: merging it into its base in memory ({chain})", flush=True)
    return load_merged(model_path, dtype=dtype)


def note_parent_adapter(model, model_path: str) -> None:
    """After the trainer wrapped the model: when training started from an adapter, the adapters it
    saves name that adapter as their base (not the bare base model, which would drop its weights at
    merge time). No-op otherwise, and for full fine-tuning (the saved model is complete)."""
    if not is_adapter_dir(model_path):
        return
    for config in (getattr(model, "peft_config", None) or {}).values():
        config.base_model_name_or_path = str(Path(model_path).resolve())


def merge(adapter: str | Path, out: str | Path = "merged_model", dtype: str = "auto") -> Path:
    """Write the merged model and its tokenizer to `out` (refuses a non-empty directory)."""
    adapter, out = Path(adapter), Path(out)
    if not is_adapter_dir(adapter):
        adapter_config(adapter)  # raises with the explanation
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"{out} exists and is not empty; choose another --out or remove it")
    model = load_merged(adapter, dtype)
    tokenizer = load_tokenizer_for(adapter, adapter_chain(adapter)[-1])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "merge_info.json").write_text(
        json.dumps(
            {"adapter": str(adapter.resolve()), "chain": adapter_chain(adapter), "dtype": dtype}, indent=2
        )
        + "\n"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlvr.export.merge", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--adapter", required=True, help="LoRA adapter directory (e.g. sft_runs/latest/final)"
    )
    parser.add_argument("--out", default="merged_model", help="output directory (default: merged_model/)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES, help="weights dtype (default: the base's)")
    args = parser.parse_args(argv)
    try:
        out = merge(args.adapter, args.out, args.dtype)
    except (MergeError, ModelLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"merged {' <- '.join(adapter_chain(args.adapter)[::-1])} -> {out}")
    print(f"next: make export-gguf path={out}  (or BASE_MODEL_ID={out} make rlvr-train)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
