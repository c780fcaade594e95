"""HF model directory -> GGUF (f16) -> quantised GGUF + Ollama Modelfile:
`python -m rlvr.export.gguf --model PATH [--quant Q4_K_M] [--out gguf_out/] [--push REPO_ID]`.

Why these steps: llama.cpp, Ollama and LM Studio load GGUF; the converter (the vendored
convert_hf_to_gguf.py's `conversion` package, imported into this process) writes 16-bit weights, and llama-quantize shrinks
them (Q4_K_M: ~3.5x smaller than f16 for a 1.5B model, small quality loss). Both tools come from the
llama.cpp that `make llama-cpp` builds once (rlvr.export.llama_cpp). A LoRA adapter directory is
merged first (rlvr.export.merge). Nothing is uploaded unless --push names a hub repository.

Output (in --out): <name>-f16.gguf, <name>-<quant>.gguf, Modelfile (FROM the quantised file),
export.json (source, files, sizes, seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..models import ModelLoadError, is_adapter_dir, resolve_model
from . import llama_cpp, modelfile
from .merge import MergeError, merge

# llama-quantize types worth offering (llama-quantize --help lists more); "f16" = no quantisation.
QUANTS = (
    "f16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1",
    "Q3_K_M", "Q3_K_S", "Q3_K_L", "Q2_K",
)  # fmt: skip


class ExportError(RuntimeError):
    """The export cannot proceed; the message names the file or tool and what to do."""


def model_dir(spec: str, work: Path) -> Path:
    """A local HF model directory for `spec`: a path, "bundled", a hub id (downloaded), or an adapter
    (merged into its base under `work`)."""
    try:
        resolved = resolve_model(spec)
    except ModelLoadError as e:
        raise ExportError(str(e)) from None
    path = Path(resolved)
    if path.exists():
        if is_adapter_dir(path):
            print(f"{path} is a LoRA adapter: merging it into its base first", flush=True)
            try:
                return merge(path, work / "merged")
            except MergeError as e:
                raise ExportError(str(e)) from None
        return path
    if spec.startswith(("/", ".", "~")) or spec.count("/") != 1:
        raise ExportError(
            f"--model {spec}: no such directory (expected a model or adapter directory, or a hub id)"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(resolved))
    except Exception as e:
        raise ExportError(
            f"--model {spec!r} is neither a local directory nor a downloadable hub model: {e}"
        ) from None


def default_name(spec: str, model: Path) -> str:
    """A file name stem: the model directory's name, with its run's name for `final`/`checkpoint-N`."""
    if spec in ("", "bundled"):
        return model.name
    path = Path(spec.rstrip("/"))
    if path.name == "final" or path.name.startswith("checkpoint-"):
        parent = path.resolve().parent
        parent = parent.parent if parent.name == "checkpoints" else parent
        return f"{parent.name}-{path.name}"
    return path.name


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


def run_tool(cmd: list[str], what: str) -> None:
    """Run a conversion tool, streaming nothing; on failure raise with the end of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-2500:]
        raise ExportError(f"{what} failed (status {proc.returncode}): {' '.join(cmd)}\n{tail}")


def _converter():
    """The vendored converter's `conversion` package and its gguf-py, imported once into this process
    (an in-process conversion skips the few seconds a fresh interpreter spends importing torch).

    The converter needs the gguf-py it ships with: the PyPI `gguf` that transformers may already have
    imported (to read the bundled GGUF) is older and lacks what the converter uses, so it is replaced in
    sys.modules by the vendored one (a superset of it)."""
    source = llama_cpp.convert_script().parent
    vendored = source / "gguf-py"
    loaded = sys.modules.get("gguf")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(vendored)):
        for name in [n for n in sys.modules if n == "gguf" or n.startswith("gguf.")]:
            del sys.modules[name]
    if str(vendored) not in sys.path:
        sys.path.insert(0, str(vendored))
    if str(source) not in sys.path:  # last: its tests/, scripts/ ... must not shadow anything
        sys.path.append(str(source))
    import gguf
    from conversion import ModelBase, ModelType, get_model_architecture, get_model_class

    logging.getLogger("hf-to-gguf").setLevel(logging.WARNING)  # one INFO line per tensor otherwise
    return gguf, ModelBase, ModelType, get_model_architecture, get_model_class


OUTTYPES = ("f16", "bf16", "f32")


def write_gguf(model: Path, out_file: Path, outtype: str = "f16") -> Path:
    """Convert the HF model directory `model` to a GGUF file with llama.cpp's own converter, in this
    process; `outtype` is the type of the 2-D weights (f16, bf16 or f32; norms stay f32)."""
    import torch

    if outtype not in OUTTYPES:
        raise ExportError(f"GGUF type {outtype!r}: expected one of {', '.join(OUTTYPES)}")
    llama_cpp.ensure_converter_deps()  # this venv may be newer than the cached build
    gguf, ModelBase, ModelType, get_model_architecture, get_model_class = _converter()
    ftype = {
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "f32": gguf.LlamaFileType.ALL_F32,
    }[outtype]
    try:
        hparams = ModelBase.load_hparams(model, False)
        model_class = get_model_class(get_model_architecture(hparams, ModelType.TEXT))
    except (NotImplementedError, ValueError, KeyError, OSError, AttributeError) as e:
        raise ExportError(f"{model}: llama.cpp's converter cannot convert this model: {e}") from None
    tmp = out_file.with_name(out_file.name + ".tmp")
    progress = io.StringIO()  # the writer draws a progress bar on stderr
    try:
        with torch.inference_mode(), contextlib.redirect_stderr(progress):
            model_class(model, ftype, tmp).write()
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"conversion of {model} to GGUF failed: {type(e).__name__}: {e}") from None
    tmp.replace(out_file)  # a reader never sees a half-written file
    return out_file


class TensorRefresh:
    """Rewrites, in place, the tensor data of a GGUF file that write_gguf made from the HF directory
    `model`, with new weights of the same names and shapes (a policy after a training step):
    `TensorRefresh(gguf_file, model)(state_dict)`. The tensors go through llama.cpp's own converter
    (its renames, permutations and casts), so the file ends byte for byte as write_gguf would write
    it for those weights; the metadata (vocabulary, chat template, hyperparameters) stays as it is,
    which is what saves the time: it is two thirds of a conversion of the bundled model. The file's
    tensor layout is read once, here (reading the metadata is slow: a 49 152-word vocabulary)."""

    def __init__(self, gguf_file: Path, model: Path, outtype: str = "f16"):
        if outtype not in OUTTYPES:
            raise ExportError(f"GGUF type {outtype!r}: expected one of {', '.join(OUTTYPES)}")
        self.gguf_file, self.model, self.outtype = gguf_file, model, outtype
        gguf = _converter()[0]
        reader = gguf.GGUFReader(gguf_file)
        self.layout = {t.name: (t.data_offset, t.data.dtype, t.data.shape) for t in reader.tensors}

    def __call__(self, state: dict) -> None:
        """Write `state`'s weights (HF names, as in `model`'s files) into the file. ExportError, before
        anything is written, when the converted tensors do not match the file's."""
        import numpy as np
        import torch

        gguf, ModelBase, ModelType, get_model_architecture, get_model_class = _converter()
        ftype = {
            "f16": gguf.LlamaFileType.MOSTLY_F16,
            "bf16": gguf.LlamaFileType.MOSTLY_BF16,
            "f32": gguf.LlamaFileType.ALL_F32,
        }[self.outtype]
        model_class = get_model_class(
            get_model_architecture(ModelBase.load_hparams(self.model, False), ModelType.TEXT)
        )
        converter = model_class(
            self.model, ftype, self.gguf_file.with_name(self.gguf_file.name + ".unused"), eager=True
        )
        missing = sorted(set(converter.model_tensors) - set(state))
        if missing:
            raise ExportError(f"refresh of {self.gguf_file}: the new weights lack {', '.join(missing[:5])}")
        # the tensors the converter would read from `model`'s files, taken from `state` instead
        converter.model_tensors = {
            name: (lambda t=state[name]: t.detach()) for name in converter.model_tensors
        }
        converted: dict = {}

        def keep(name, tensor, raw_shape=None, raw_dtype=None):  # the writer's add_tensor: keep, don't write
            converted[name] = tensor

        converter.gguf_writer.add_tensor = keep
        numpy_quantize = gguf.quants.quantize

        def quantize(data, qtype):  # float32 -> float16 by torch: the same rounding, ~10x numpy's speed
            if qtype == gguf.GGMLQuantizationType.F16 and data.dtype == np.float32:
                return torch.from_numpy(data).to(torch.float16).numpy()
            return numpy_quantize(data, qtype)

        gguf.quants.quantize = quantize
        try:
            with torch.inference_mode(), contextlib.redirect_stderr(io.StringIO()):
                converter.prepare_tensors()
        finally:
            gguf.quants.quantize = numpy_quantize
        if converted.keys() != self.layout.keys():
            raise ExportError(
                f"refresh of {self.gguf_file}: {len(converted)} converted tensors, {len(self.layout)} in the file"
            )
        for name, data in converted.items():
            _, dtype, shape = self.layout[name]
            if data.dtype != dtype or data.size != int(np.prod(shape)):
                raise ExportError(
                    f"refresh of {self.gguf_file}: tensor {name} is {data.dtype} {data.shape} now, {dtype} {shape} in the file"
                )
        with self.gguf_file.open("r+b") as out:
            for name, data in converted.items():
                out.seek(self.layout[name][0])
                out.write(np.ascontiguousarray(data).tobytes())


def convert_f16(model: Path, out_file: Path) -> None:
    write_gguf(model, out_file, "f16")


def quantize(src: Path, dst: Path, quant: str) -> None:
    run_tool([str(llama_cpp.binary("llama-quantize")), str(src), str(dst), quant], f"llama-quantize {quant}")


def context_length(model: Path) -> int | None:
    try:
        config = json.loads((model / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    value = config.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


def write_modelfile(model: Path, gguf_file: Path) -> list[str]:
    """Modelfile beside `gguf_file`; returns warnings (e.g. a chat template that is not ChatML)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    mf, warnings = modelfile.for_model(tokenizer, gguf_file.name, context_length(model))
    (gguf_file.parent / "Modelfile").write_text(mf.text())
    return warnings


def push(out: Path, repo_id: str, files: list[Path]) -> str:
    """Upload the GGUF files and the Modelfile to a hub model repository (opt-in, needs HF_TOKEN)."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        for f in [*files, out / "Modelfile"]:
            api.upload_file(path_or_fileobj=str(f), path_in_repo=f.name, repo_id=repo_id)
    except Exception as e:
        raise ExportError(
            f"push to {repo_id} failed ({type(e).__name__}: {e}); is HF_TOKEN set and valid?"
        ) from None
    return f"https://huggingface.co/{repo_id}"


def export(
    spec: str, out: Path, quant: str = "Q4_K_M", name: str | None = None, keep_f16: bool = True
) -> dict:
    """Convert, quantise and write the Modelfile; return what export.json records."""
    if quant not in QUANTS:
        raise ExportError(f"--quant {quant!r}: expected one of {', '.join(QUANTS)}")
    llama_cpp.binary("llama-quantize")  # fail before any work if `make llama-cpp` has not run
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ocamler-export-") as tmp:
        model = model_dir(spec, Path(tmp))
        out.mkdir(parents=True, exist_ok=True)
        name = safe_name(name or default_name(spec, model))
        f16 = out / f"{name}-f16.gguf"
        convert_f16(model, f16)
        files = [f16]
        final = f16
        if quant != "f16":
            final = out / f"{name}-{quant}.gguf"
            quantize(f16, final, quant)
            files.append(final)
        warnings = write_modelfile(model, final)
    if not keep_f16 and final != f16:
        f16.unlink()
        files.remove(f16)
    info = {
        "source": spec,
        "quant": quant,
        "files": {f.name: f.stat().st_size for f in files},
        "modelfile": str(out / "Modelfile"),
        "seconds": round(time.monotonic() - started, 1),
        "llama_cpp": llama_cpp.version_from_env(),
        "warnings": warnings,
    }
    (out / "export.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlvr.export.gguf", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="HF model dir, adapter dir, 'bundled' or hub id")
    parser.add_argument("--quant", default="Q4_K_M", choices=QUANTS, help="llama-quantize type (f16: none)")
    parser.add_argument("--out", default="gguf_out", help="output directory (default: gguf_out/)")
    parser.add_argument("--name", default=None, help="file name stem (default: the model directory's name)")
    parser.add_argument("--no-f16", action="store_true", help="delete the f16 GGUF after quantising")
    parser.add_argument("--push", metavar="REPO_ID", default=None, help="upload to this hub repo (opt-in)")
    args = parser.parse_args(argv)
    try:
        info = export(args.model, Path(args.out), args.quant, args.name, keep_f16=not args.no_f16)
        for warning in info["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        for fname, size in info["files"].items():
            print(f"{Path(args.out) / fname}  {size / 2**20:.1f} MiB")
        print(f"{info['modelfile']}  (Ollama: cd {args.out} && ollama create ocaml-model -f Modelfile)")
        final = list(info["files"])[-1]
        print(f"serve: make llama-server model={Path(args.out) / final}  ({info['seconds']} s)")
        if args.push:
            url = push(Path(args.out), args.push, [Path(args.out) / f for f in info["files"]])
            print(f"pushed to {url}")
    except (ExportError, llama_cpp.LlamaCppError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    sys.exit(main())
