"""Load a causal LM with transformers (a LoRA adapter directory is applied on its base) and generate.

Shared by the transformers backend and scripts/serve_transformers.py, so a local eval and one through the
server see the same model, the same prompt text (rlvr.prompts.render) and the same sampling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.export.merge import MergeError, adapter_chain, load_merged
from rlvr.models import (
    BUNDLED,
    ModelLoadError,
    check_loadable,
    is_adapter_dir,
    load_tokenizer,
    resolve_model,
)


@dataclass
class Generation:
    """One sampled answer: its text, why it stopped, its length, and the time it cost.

    `seconds` is the sample's share of the call that produced it (a batched generate's wall time divided
    by the sequences in the batch; a server request's latency).
    """

    text: str
    finish_reason: str | None = None  # "stop" (end of sequence or a stop string) | "length" | None
    completion_tokens: int | None = None
    seconds: float = 0.0


@dataclass
class LoadedModel:
    """A model ready to generate, its tokenizer (left padding) and what was loaded, for the records."""

    model: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)


def _has_tokenizer(path: Path) -> bool:
    return any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def _torch_dtype(name: str, cuda: bool):
    import torch

    if name == "auto":
        return torch.bfloat16 if cuda else torch.float32
    return getattr(torch, name)


def load_model(spec: str | None, dtype: str = "auto", device: str | None = None) -> LoadedModel:
    """Load `spec` ("bundled", a model dir, an adapter dir or a hub id) for generation.

    An adapter directory (adapter_config.json) is loaded on its base model and merged, so generation
    runs at the base model's speed. Raises ModelLoadError with what to do when something is missing.
    """
    import torch
    from transformers import AutoModelForCausalLM

    spec = spec or BUNDLED
    path = resolve_model(spec)
    adapter = Path(path) if is_adapter_dir(path) else None
    try:
        # a GRPO adapter trained on top of an SFT adapter names that adapter as its base: the whole chain
        # down to a real model is merged, innermost first, exactly as training saw the weights
        chain = adapter_chain(adapter) if adapter else [path]
    except MergeError as e:
        raise ModelLoadError(f"{e}; merge it first (make merge-adapter) or fix that field") from None
    base = resolve_model(chain[-1])
    check_loadable(base)
    tokenizer = load_tokenizer(str(adapter) if adapter and _has_tokenizer(adapter) else base)
    tokenizer.padding_side = "left"
    cuda = torch.cuda.is_available()
    device = device or ("cuda" if cuda else "cpu")
    torch_dtype = _torch_dtype(dtype, device.startswith("cuda"))
    try:
        if adapter:
            model = load_merged(adapter, dtype=str(torch_dtype).removeprefix("torch."))
        else:
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"cannot load the model {base!r} (from {spec!r}): {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    model.to(device)
    model.eval()
    info = {
        "spec": spec,
        "path": str(path),
        "adapter": str(adapter) if adapter else None,
        "base": base if adapter else None,
        "adapter_chain": chain[:-1] if adapter else [],
        "dtype": str(torch_dtype).removeprefix("torch."),
        "device": device,
        "parameters": sum(p.numel() for p in model.parameters()),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
    }
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)


def sampling_kwargs(temperature: float, top_p: float) -> dict[str, Any]:
    """Explicit sampling settings for `generate`: none is left to the model's generation_config (which
    for some models sets top_k, top_p or a repetition penalty that would silently change the eval)."""
    if temperature <= 0:
        return {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0}
    return {
        "do_sample": True,
        "num_beams": 1,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": 0,
        "repetition_penalty": 1.0,
    }


def generate(
    lm: LoadedModel,
    prompts: list[str],
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int | None = None,
    stop: list[str] | None = None,
) -> list[list[Generation]]:
    """`n` samples for each rendered prompt, in one batched `generate` call (left padding).

    `stop` strings end a sequence (the text is cut before the first one, finish_reason "stop").
    """
    import torch

    if not prompts:
        return []
    tok = lm.tokenizer
    if seed is not None:
        torch.manual_seed(seed)
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(lm.model.device)
    extra: dict[str, Any] = {"stop_strings": list(stop), "tokenizer": tok} if stop else {}
    start = time.monotonic()
    with torch.inference_mode():
        out = lm.model.generate(
            **enc,
            **sampling_kwargs(temperature, top_p),
            **extra,
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            pad_token_id=tok.pad_token_id,
        )
    seconds = (time.monotonic() - start) / (len(prompts) * n)
    new = out[:, enc["input_ids"].shape[1] :].tolist()
    eos = _eos_ids(lm)
    results: list[list[Generation]] = []
    for i in range(len(prompts)):
        group = []
        for ids in new[i * n : (i + 1) * n]:
            end = next((j for j, t in enumerate(ids) if t in eos), None)
            used = ids if end is None else ids[: end + 1]
            text = tok.decode(used, skip_special_tokens=True)
            finish = "stop" if end is not None else "length"
            cut = _cut_at_stop(text, stop)
            if cut is not None:
                text, finish = cut, "stop"
            group.append(Generation(text, finish, len(used), round(seconds, 4)))
        results.append(group)
    return results


def _eos_ids(lm: LoadedModel) -> set[int]:
    ids: set[int] = set()
    for source in (lm.model.generation_config.eos_token_id, lm.tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return ids


def _cut_at_stop(text: str, stop: list[str] | None) -> str | None:
    """The text before the first stop string, or None if there is none."""
    hits = [k for s in stop or () if (k := text.find(s)) >= 0]
    return text[: min(hits)] if hits else None
