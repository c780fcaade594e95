#!/usr/bin/env bash
# Serve a model with vLLM's OpenAI-compatible server (make vllm-server model=<id|path>). GPU only.
#   scripts/vllm_server.sh <hub id | model dir | bundled> [extra `vllm serve` flags]
# Listens on VLLM_HOST:VLLM_PORT (127.0.0.1:8000 by default, never the dashboard's 8080 or
# TensorBoard's 6006) with the model name VLLM_MODEL_NAME (ocaml-model). vLLM is the optional `gpu`
# extra: .venv/bin/pip install -e '.[gpu]'. A LoRA adapter directory is merged first
# (make merge-adapter path=<adapter>): vLLM serves one standalone model here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

model="${1:-}"
[ $# -gt 0 ] && shift
if [ -z "$model" ]; then
  echo "usage: make vllm-server model=<hub id | model directory | bundled>" >&2
  exit 2
fi
if ! "$PY" -c "import vllm" 2>/dev/null; then
  echo "error: vLLM is not installed. It is the optional 'gpu' extra (needs a CUDA GPU):" >&2
  echo "  .venv/bin/pip install -e '.[gpu]'     (TRL 1.16 supports vllm 0.22-0.31)" >&2
  echo "On a CPU machine serve a GGUF instead: make export-gguf path=<model>, then make llama-server model=<file.gguf>" >&2
  exit 2
fi
if [ -f "$model/adapter_config.json" ]; then
  echo "error: $model is a LoRA adapter; merge it first: make merge-adapter path=$model (then model=merged_model)" >&2
  exit 2
fi
host="${VLLM_HOST:-127.0.0.1}"
port="${VLLM_PORT:-8000}"
if [ "$port" = "${DASHBOARD_PORT:-8080}" ] || [ "$port" = "${TENSORBOARD_PORT:-6006}" ]; then
  echo "error: VLLM_PORT=$port is the dashboard's or TensorBoard's port; choose another (default 8000)" >&2
  exit 2
fi
resolved="$(PYTHONPATH=. "$PY" -c 'import sys; from rlvr.models import resolve_model; print(resolve_model(sys.argv[1]))' "$model")" || exit 2

echo "vLLM: $resolved"
echo "  OpenAI API:  http://$host:$port/v1/chat/completions  (model name: ${VLLM_MODEL_NAME:-ocaml-model})"
exec .venv/bin/vllm serve "$resolved" --host "$host" --port "$port" \
  --served-model-name "${VLLM_MODEL_NAME:-ocaml-model}" "$@"
