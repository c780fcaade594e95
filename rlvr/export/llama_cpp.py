"""llama.cpp, built once from source into a cache: `python -m rlvr.export.llama_cpp build` (make llama-cpp).

Why from source: the PyPI sdist `llama-cpp-python` vendors a complete llama.cpp tree (C++ sources,
`convert_hf_to_gguf.py`, its `gguf-py`), and PyPI is the one registry a user's machine can always
reach. We download that sdist with pip, unpack the vendored tree into
`<OCAMLER_CACHE>/llama.cpp/<version>/src`, and build only the two programs the export and serving
steps need (`llama-server`, `llama-quantize`): ~15 min on 2 cores, once. Converting a model to GGUF
runs the vendored Python script with this venv's interpreter (torch, transformers, numpy are already
here; the vendored gguf-py is used, so converter and library always match).

The build is serialised by a file lock and marked complete by a stamp file written last, so a killed
build is rebuilt (incrementally) rather than half-used.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ..envconf import ConfigError, Env
from ..models import cache_root

DEFAULT_VERSION = "0.3.36"  # llama-cpp-python sdist that vendors the llama.cpp we build (doc/serving.md)
TARGETS = ("llama-server", "llama-quantize")
STAMP = "BUILT.json"
# Converter imports beyond what the training stack installs (only for SentencePiece vocabularies).
CONVERTER_EXTRAS = {"sentencepiece": "sentencepiece>=0.2,<0.3"}


class LlamaCppError(RuntimeError):
    """llama.cpp is missing, cannot be fetched or failed to build; the message says what to run."""


def version_from_env(env: dict[str, str] | None = None) -> str:
    """LLAMA_CPP_VERSION (default DEFAULT_VERSION): which llama-cpp-python 0.3.x sdist to build."""
    e = Env(os.environ if env is None else env)
    version = e.str("LLAMA_CPP_VERSION", DEFAULT_VERSION) or DEFAULT_VERSION
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[:2] != ["0", "3"]:
        raise ConfigError(
            f"LLAMA_CPP_VERSION={version!r}: expected a llama-cpp-python 0.3.x version, e.g. 0.3.36"
        )
    return version


def home(version: str | None = None) -> Path:
    """The directory holding one version's source tree and build: <cache>/llama.cpp/<version>."""
    explicit = os.environ.get("LLAMA_CPP_DIR")
    if explicit:  # an existing llama.cpp checkout (with build/bin) instead of ours
        return Path(explicit).expanduser()
    return cache_root() / "llama.cpp" / (version or version_from_env())


def source_dir(version: str | None = None) -> Path:
    h = home(version)
    return h if os.environ.get("LLAMA_CPP_DIR") else h / "src"


def build_dir(version: str | None = None) -> Path:
    return source_dir(version) / "build"


def is_built(version: str | None = None) -> bool:
    if os.environ.get("LLAMA_CPP_DIR"):
        return all((build_dir(version) / "bin" / t).exists() for t in TARGETS)
    return (home(version) / STAMP).exists()


def binary(name: str, version: str | None = None) -> Path:
    """Path of a built llama.cpp program (llama-server or llama-quantize)."""
    path = build_dir(version) / "bin" / name
    if not path.exists() or not is_built(version):
        raise LlamaCppError(
            f"{name} is not built (looked for {path}); run `make llama-cpp` first "
            "(downloads the llama-cpp-python sdist from PyPI and builds llama.cpp once, ~15 min on 2 cores)"
        )
    return path


def convert_script(version: str | None = None) -> Path:
    """Path of the vendored convert_hf_to_gguf.py (present once the source is unpacked)."""
    path = source_dir(version) / "convert_hf_to_gguf.py"
    if not path.exists():
        raise LlamaCppError(f"{path} is missing; run `make llama-cpp` first")
    return path


def download_sdist(version: str, dest: Path) -> Path:
    """`pip download` the llama-cpp-python sdist (source only, no dependencies) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"llama-cpp-python=={version}", "-d", str(dest),
    ]  # fmt: skip
    print(f"llama.cpp: downloading the llama-cpp-python {version} sdist from PyPI (~75 MB)", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if proc.returncode != 0 or not found:
        raise LlamaCppError(
            f"`{' '.join(cmd)}` failed (status {proc.returncode}): {proc.stderr.strip()[-800:]}\n"
            "Needs PyPI access once; or point LLAMA_CPP_DIR at an existing llama.cpp build."
        )
    return found[0]


def unpack_vendored(sdist: Path, target: Path) -> None:
    """Extract `vendor/llama.cpp/` of the sdist into `target` (replacing a partial earlier attempt)."""
    prefix = sdist.name.removesuffix(".tar.gz") + "/vendor/llama.cpp/"
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            if m.name.startswith(prefix) and len(m.name) > len(prefix):
                m.name = m.name[len(prefix) :]
                members.append(m)
        if not members:
            raise LlamaCppError(f"{sdist}: no vendor/llama.cpp/ inside; is this a llama-cpp-python sdist?")
        tar.extractall(tmp, members=members, filter="data")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


# Build variants, most to least specific to this CPU; the self-test moves down the list on a CPU fault.
VARIANTS = ("native", "native-no-amx", "portable")
NO_AMX = ("-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF")
# ggml's x86 options and the /proc/cpuinfo flags that allow each (all of them must be present).
# With GGML_NATIVE=ON ggml passes -march=native and ignores these, so "native without AMX" is
# GGML_NATIVE=OFF with every one this CPU has switched on, and AMX off.
X86_OPTIONS = {
    "GGML_SSE42": ("sse4_2",),
    "GGML_AVX": ("avx",),
    "GGML_F16C": ("f16c",),
    "GGML_FMA": ("fma",),
    "GGML_BMI2": ("bmi2",),
    "GGML_AVX2": ("avx2",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "GGML_AVX512_VBMI": ("avx512vbmi",),
    "GGML_AVX512_VNNI": ("avx512_vnni",),
    "GGML_AVX512_BF16": ("avx512_bf16",),
}


def cpu_flags() -> set[str]:
    from .llama_selftest import cpu_info

    return set(cpu_info()[1].split())


def cmake_args(variant: str, flags: set[str] | None = None) -> list[str]:
    """Configure flags: CPU build, static, no network at build time (no curl/OpenSSL/prebuilt web UI);
    `variant` (VARIANTS) picks the kernels: all this CPU has (-march=native), the same minus AMX (each
    instruction set named from `flags`, this CPU's by default), or a portable baseline."""
    if variant not in VARIANTS:
        raise LlamaCppError(
            f"unknown llama.cpp build variant {variant!r}; expected one of {', '.join(VARIANTS)}"
        )
    args = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DBUILD_SHARED_LIBS=OFF",
        f"-DGGML_NATIVE={'ON' if variant == 'native' else 'OFF'}",
    ]
    if variant == "native-no-amx":
        have = cpu_flags() if flags is None else flags
        args += [
            f"-D{opt}={'ON' if all(f in have for f in need) else 'OFF'}" for opt, need in X86_OPTIONS.items()
        ]
        args += NO_AMX
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    return args


def built_variant(version: str | None = None) -> str:
    """The variant of the build in the cache (builds from before variants: native or portable)."""
    try:
        stamp = json.loads((home(version) / STAMP).read_text())
    except (OSError, ValueError):
        return "external" if os.environ.get("LLAMA_CPP_DIR") else "native"
    return stamp.get("variant") or ("native" if stamp.get("native", True) else "portable")


def check_build_tools() -> None:
    missing = [t for t in ("cmake", "c++") if not shutil.which(t)]
    if missing:
        raise LlamaCppError(
            f"building llama.cpp needs {', '.join(missing)} on PATH: "
            "`apt-get install cmake build-essential` (Debian/Ubuntu) or `make shell` (Nix)"
        )


def ensure_converter_deps() -> None:
    """Install the converter's optional imports into this interpreter's environment (never torch)."""
    missing = [spec for mod, spec in CONVERTER_EXTRAS.items() if importlib.util.find_spec(mod) is None]
    if missing:
        print(f"llama.cpp: installing the converter's dependencies: {' '.join(missing)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *missing], check=True)


def run_logged(cmd: list[str], log: Path, cwd: Path | None = None) -> None:
    """Run `cmd` with its output appended to `log`; on failure raise with the log's tail."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        code = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise LlamaCppError(f"`{' '.join(cmd)}` failed (status {code}); log {log}:\n{tail}")


def build(
    version: str | None = None, jobs: int | None = None, variant: str = "native", rebuild: bool = False
) -> Path:
    """Download, unpack and build llama.cpp unless already built (`rebuild`: build again as `variant`);
    return the build's bin/ directory."""
    version = version or version_from_env()
    if os.environ.get("LLAMA_CPP_DIR"):
        if not is_built(version):
            raise LlamaCppError(f"LLAMA_CPP_DIR={home()}: no {' and '.join(TARGETS)} under build/bin/")
        return build_dir(version) / "bin"
    h = home(version)
    h.mkdir(parents=True, exist_ok=True)
    with open(h / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make llama-cpp` waits, then finds it built
        if is_built(version) and not rebuild:
            print(f"llama.cpp {version}: already built in {build_dir(version) / 'bin'}", flush=True)
            return build_dir(version) / "bin"
        (h / STAMP).unlink(missing_ok=True)  # written last: a killed build is never taken for a whole one
        check_build_tools()
        started = time.monotonic()
        src = source_dir(version)
        if not (src / "CMakeLists.txt").exists():
            with tempfile.TemporaryDirectory(dir=h) as tmp:
                unpack_vendored(download_sdist(version, Path(tmp)), src)
        log = h / "build.log"
        jobs = jobs or os.cpu_count() or 2
        print(
            f"llama.cpp {version}: building {' '.join(TARGETS)} ({variant}) with {jobs} jobs (log: {log})",
            flush=True,
        )
        run_logged(["cmake", "-S", str(src), "-B", str(build_dir(version)), *cmake_args(variant)], log)
        run_logged(["cmake", "--build", str(build_dir(version)), "--target", *TARGETS, "-j", str(jobs)], log)
        ensure_converter_deps()
        seconds = time.monotonic() - started
        stamp = {
            "version": version, "targets": TARGETS, "variant": variant, "native": variant == "native",
            "build_seconds": round(seconds),
        }  # fmt: skip
        (h / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        print(
            f"llama.cpp {version}: built in {seconds / 60:.1f} min -> {build_dir(version) / 'bin'}",
            flush=True,
        )
    return build_dir(version) / "bin"


def ensure_working(version: str | None = None, jobs: int | None = None, variant: str = "native") -> Path:
    """Build (once) and self-test on this CPU (once per CPU kind): a build that faults here is rebuilt
    as the next variant until one works (rlvr.export.llama_selftest). Returns the bin/ directory."""
    from . import llama_selftest

    version = version or version_from_env()
    bin_dir = build(version, jobs, variant)
    current = built_variant(version)
    h = home(version)
    if llama_selftest.passed_here(h, current):
        return bin_dir
    threads = os.cpu_count() or 2
    while True:
        print(
            f"llama.cpp {version}: self-test of the {current} build on this CPU (Q4_K_M, llama-server)",
            flush=True,
        )
        result = llama_selftest.run_selftest(bin_dir, h / "selftest", current, threads)
        llama_selftest.record(h, result)
        if result.ok:
            print(f"llama.cpp {version}: self-test passed ({result.detail}, {result.seconds} s)", flush=True)
            return bin_dir
        later = VARIANTS[VARIANTS.index(current) + 1 :] if current in VARIANTS else ()
        if not result.fault or not later or os.environ.get("LLAMA_CPP_DIR"):
            raise LlamaCppError(
                f"llama.cpp's {current} build does not work on this CPU ({result.cpu}): {result.detail}"
                + ("" if result.fault else "; this is not a CPU fault, so no other build variant is tried")
            )
        print(
            f"llama.cpp {version}: the {current} build faults on this CPU ({result.detail}); "
            f"rebuilding as {later[0]}",
            flush=True,
        )
        current = later[0]
        bin_dir = build(version, jobs, current, rebuild=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlvr.export.llama_cpp", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser(
        "build", help="download and build llama.cpp once (cached), then self-test it on this CPU"
    )
    b.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")
    b.add_argument(
        "--no-native", action="store_true",
        help="portable build (-DGGML_NATIVE=OFF) for a cache shared between different CPUs",
    )  # fmt: skip
    w = sub.add_parser("where", help="print the paths of llama-server, llama-quantize and the converter")
    w.add_argument("name", nargs="?", choices=(*TARGETS, "convert"), help="print only this one's path")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            native = not args.no_native and Env(os.environ).bool("LLAMA_CPP_NATIVE", True)
            bin_dir = ensure_working(jobs=args.jobs, variant="native" if native else "portable")
            for t in TARGETS:
                print(f"  {bin_dir / t}")
            print(f"  {convert_script()}")
        elif args.name:
            print(convert_script() if args.name == "convert" else binary(args.name))
        else:
            for t in TARGETS:
                print(binary(t))
            print(convert_script())
    except (LlamaCppError, ConfigError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
