# ocamler-grpo — every target sets itself up on first use (.venv, Python packages, and as root on
# Debian/Ubuntu the system packages). Configuration: environment variables, documented in .envrc.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
export HF_HUB_DISABLE_TELEMETRY := 1
export PYTHONPATH := $(CURDIR)

.PHONY: help setup test test-fast lint score validate-data rlvr-train stop tensorboard dashboard bench-dashboard eval eval-compare serve-model shell shell-cuda clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install OCaml, bubblewrap (as root) and the Python environment in .venv
	@scripts/bootstrap.sh core

test: ## run the whole test suite (tests/slow included; FAST=1 skips it)
	@scripts/bootstrap.sh browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(if $(FAST),-m "not slow",) tests

test-fast: ## the test suite without tests/slow
	@$(MAKE) --no-print-directory test FAST=1

lint: ## ruff
	@scripts/bootstrap.sh core
	$(PY) -m ruff check .
	$(PY) -m ruff format --check rlvr sft eval dashboard scripts tests

score: ## score completions offline: make score problems=P completions=C [out=O]
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.score --problems "$(problems)" --completions "$(completions)" $(if $(out),--out "$(out)",)

validate-data: ## check a problem set with the verifier: make validate-data DATA=<path-or-hf-id> (default: bundled)
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.validate --data "$(or $(DATA),bundled)"

rlvr-train: ## GRPO in the background (FOREGROUND=1 attached; GRPO_MONITOR=0 without dashboard/TensorBoard)
	@scripts/bootstrap.sh core
	@$(PY) -m rlvr.launch start grpo

stop: ## stop the running training (checkpoint first) and the monitors it started
	@$(PY) -m rlvr.launch stop

eval: ## evaluate: make eval model=<HF id|dir|adapter dir|bundled> [data=...] [n=...] [k=1,5,10] [limit=...] [backend=server]
	@scripts/bootstrap.sh core
	$(PY) -m eval.run $(if $(model),--model "$(model)",) $(if $(data),--data "$(data)",) $(if $(n),--n "$(n)",) \
	  $(if $(k),--k "$(k)",) $(if $(limit),--limit "$(limit)",) $(if $(backend),--backend "$(backend)",)

eval-compare: ## compare two eval runs: make eval-compare a=<run> b=<run>
	@test -n "$(a)" -a -n "$(b)" || { echo "usage: make eval-compare a=<run dir or name> b=<run dir or name>" >&2; exit 2; }
	$(PY) -m eval.compare "$(a)" "$(b)"

serve-model: ## OpenAI-compatible server (transformers) for make eval backend=server: make serve-model [model=...] [port=8000]
	@scripts/bootstrap.sh core
	$(PY) scripts/serve_transformers.py --model "$(or $(model),bundled)" --port "$(or $(port),8000)"

dashboard: ## the live dashboard on 127.0.0.1:$${DASHBOARD_PORT:-8080} (GRPO, completions, SFT, compare)
	@scripts/bootstrap.sh core
	$(PY) -m dashboard --runs-dir "$${GRPO_OUTPUT_DIR:-grpo_runs}" --sft-runs-dir "$${SFT_OUTPUT_DIR:-sft_runs}" \
	  --host "$${DASHBOARD_HOST:-127.0.0.1}" --port "$${DASHBOARD_PORT:-8080}"

bench-eval: ## evaluate: make eval model=<HF id|dir|adapter dir|bundled> [data=...] [n=...] [k=1,5,10] [limit=...] [backend=server]
	@scripts/bootstrap.sh core
	$(PY) -m eval.run $(if $(model),--model "$(model)",) $(if $(data),--data "$(data)",) $(if $(n),--n "$(n)",) \
	  $(if $(k),--k "$(k)",) $(if $(limit),--limit "$(limit)",) $(if $(backend),--backend "$(backend)",)

eval-compare: ## compare two eval runs: make eval-compare a=<run> b=<run>
	@test -n "$(a)" -a -n "$(b)" || { echo "usage: make eval-compare a=<run dir or name> b=<run dir or name>" >&2; exit 2; }
	$(PY) -m eval.compare "$(a)" "$(b)"

serve-model: ## OpenAI-compatible server (transformers) for make eval backend=server: make serve-model [model=...] [port=8000]
	@scripts/bootstrap.sh core
	$(PY) scripts/serve_transformers.py --model "$(or $(model),bundled)" --port "$(or $(port),8000)"

dashboard: ## time the dashboard's first page loads on a generated 100k-step, 1M-completion run
	@scripts/bootstrap.sh core
	$(PY) scripts/bench_dashboard.py

tensorboard: ## TensorBoard on the run directories (TENSORBOARD_PORT, default 6006)
	@scripts/bootstrap.sh core
	.venv/bin/tensorboard --logdir "$${GRPO_OUTPUT_DIR:-grpo_runs}" --host 127.0.0.1 --port "$${TENSORBOARD_PORT:-6006}"

shell: ## the Nix dev shell (Python, uv, OCaml + findlib, bubblewrap, llama.cpp)
	nix develop

shell-cuda: ## the Nix dev shell with the CUDA toolkit
	nix develop .#cuda

clean: ## remove caches (keeps .venv and runs)
	rm -rf .pytest_cache .ruff_cache **/__pycache__
