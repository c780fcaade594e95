#!/usr/bin/env bash
# Serve a GGUF with llama.cpp's OpenAI-compatible server (make llama-server model=<file.gguf>).
#   scripts/llama_server.sh <model.gguf> [extra llama-server flags]
# Listens on LLAMA_SERVER_HOST:LLAMA_SERVER_PORT (127.0.0.1:8081 by default, never the dashboard's
# 8080 or TensorBoard's 6006), context LLAMA_SERVER_CTX tokens (4096), model name LLAMA_SERVER_ALIAS
# (ocaml-model), LLAMA_SERVER_THREADS CPU threads (llama.cpp's default when unset: set it to the
# cores a training run leaves free, or both slow down). The chat template is the one stored in the
# GGUF (llama-server's jinja engine).
# llama-server comes from `make llama-cpp` (built once into the cache).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

model="${1:-}"
[ $# -gt 0 ] && shift
if [ -z "$model" ]; then
  echo "usage: make llama-server model=<file.gguf>   (make export-gguf path=<model> writes one to gguf_out/)" >&2
  exit 2
fi
if [ ! -f "$model" ]; then
  echo "error: model=$model: no such file; expected a .gguf file (make export-gguf path=<model> writes one)" >&2
  exit 2
fi
host="${LLAMA_SERVER_HOST:-127.0.0.1}"
port="${LLAMA_SERVER_PORT:-8081}"
if [ "$port" = "${DASHBOARD_PORT:-8080}" ] || [ "$port" = "${TENSORBOARD_PORT:-6006}" ]; then
  echo "error: LLAMA_SERVER_PORT=$port is the dashboard's or TensorBoard's port; choose another (default 8081)" >&2
  exit 2
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "error: something already listens on port $port; stop it or set LLAMA_SERVER_PORT" >&2
  exit 2
fi
threads=()
if [ -n "${LLAMA_SERVER_THREADS:-}" ]; then
  if ! [[ "$LLAMA_SERVER_THREADS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: LLAMA_SERVER_THREADS=$LLAMA_SERVER_THREADS: expected a positive whole number of CPU threads" >&2
    exit 2
  fi
  threads=(-t "$LLAMA_SERVER_THREADS" -tb "$LLAMA_SERVER_THREADS")
fi
server="$(PYTHONPATH=. "$PY" -m rlvr.export.llama_cpp where llama-server)" || exit 2

echo "llama-server: $model"
echo "  OpenAI API:  http://$host:$port/v1/chat/completions  (model name: ${LLAMA_SERVER_ALIAS:-ocaml-model})"
echo "  web UI:      http://$host:$port/      stop: Ctrl-C"
exec "$server" -m "$model" --host "$host" --port "$port" -c "${LLAMA_SERVER_CTX:-4096}" \
  --alias "${LLAMA_SERVER_ALIAS:-ocaml-model}" ${threads[@]+"${threads[@]}"} "$@"
