# ocamler-grpo — every target sets itself up on first use (.venv, Python packages, and as root on
# Debian/Ubuntu the system packages). Configuration: environment variables, documented in .envrc.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
export HF_HUB_DISABLE_TELEMETRY := 1
export PYTHONPATH := $(CURDIR)

.PHONY: help setup test test-fast lint score validate-data vf-eval rlvr-train pipeline sft-train stop status tensorboard dashboard \
  eval eval-compare serve-model merge-adapter export-gguf llama-cpp llama-server vllm-server reward-server verl-data synth-data \
  bench-dashboard bench-reward bench-reward-server bench-speed bench-train shell shell-cuda clean

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
	$(PY) -m ruff format --check rlvr sft eval dashboard scripts tests bench ocamler_grpo

score: ## score completions offline: make score problems=P completions=C [out=O]
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.score --problems "$(problems)" --completions "$(completions)" $(if $(out),--out "$(out)",)

validate-data: ## check a problem set with the verifier: make validate-data DATA=<path-or-hf-id> (default: bundled)
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.validate --data "$(or $(DATA),bundled)"

# GRPO_ROLLOUT_ENGINE=llama-server and EVAL_BACKEND=llama-server generate with llama.cpp: build it
# first (once, cached)
LLAMA_IF_NEEDED = $(if $(filter llama-server,$(GRPO_ROLLOUT_ENGINE) $(EVAL_BACKEND) $(backend)),$(PY) -m rlvr.export.llama_cpp build,true)

rlvr-train: ## GRPO in the background (FOREGROUND=1 attached; GRPO_MONITOR=0 without dashboard/TensorBoard)
	@scripts/bootstrap.sh core
	@$(LLAMA_IF_NEEDED)
	@$(PY) -m rlvr.launch start grpo

stop: ## stop the running training (checkpoint first) and the monitors it started
	@$(PY) -m rlvr.launch stop

status: ## every run (GRPO, SFT, pipeline, eval) with its real state (running / died / stalled / finished ...), step, reward and age
	@$(PY) -m rlvr.status $(if $(all),--all)

pipeline: ## SFT -> GRPO -> eval before/after -> learning report, in the background (FOREGROUND=1 attached; PIPELINE_RESUME=latest continues)
	@scripts/bootstrap.sh core
	@$(LLAMA_IF_NEEDED)
	@$(PY) -m rlvr.launch start pipeline

sft-train: ## supervised fine-tuning on reference solutions, in the background (FOREGROUND=1 attached)
	@scripts/bootstrap.sh core
	@$(PY) -m rlvr.launch start sft

eval: ## evaluate: make eval model=<HF id|dir|adapter dir|bundled> [data=...] [n=...] [k=1,5,10] [limit=...] [backend=server|llama-server] [repair=N]; make eval resume=<run> continues an interrupted one
	@scripts/bootstrap.sh core
	@$(LLAMA_IF_NEEDED)
	$(PY) -m eval.run $(if $(model),--model "$(model)",) $(if $(data),--data "$(data)",) $(if $(n),--n "$(n)",) \
	  $(if $(k),--k "$(k)",) $(if $(limit),--limit "$(limit)",) $(if $(backend),--backend "$(backend)",) \
	  $(if $(resume),--resume "$(resume)",) $(if $(repair),--repair "$(repair)",)

eval-compare: ## compare two eval runs: make eval-compare a=<run> b=<run>
	@test -n "$(a)" -a -n "$(b)" || { echo "usage: make eval-compare a=<run dir or name> b=<run dir or name>" >&2; exit 2; }
	$(PY) -m eval.compare "$(a)" "$(b)"

vf-eval: ## verifiers' evaluation of the environment (the verifiers extra): make vf-eval url=<base url> [model=...] [n=8] [r=1] [tokens=512] [split=eval] [data=...]
	@test -n "$(url)" || { echo "usage: make vf-eval url=http://127.0.0.1:8000/v1 [model=bundled] [n=8] [r=1]  (make serve-model serves one)" >&2; exit 2; }
	@scripts/bootstrap.sh core
	@scripts/bootstrap.sh verifiers
	PRIME_API_KEY=$${PRIME_API_KEY:-local} .venv/bin/vf-eval ocamler-grpo --client.base-url "$(url)" -m "$(or $(model),bundled)" \
	  -n "$(or $(n),8)" -r "$(or $(r),1)" --sampling.max-tokens "$(or $(tokens),512)" --no-push --no-rich \
	  --env.taskset.split "$(or $(split),eval)" $(if $(data),--env.taskset.source "$(data)",) -o eval_runs/verifiers

serve-model: ## OpenAI-compatible server (transformers) for make eval backend=server: make serve-model [model=...] [port=8000]
	@scripts/bootstrap.sh core
	$(PY) scripts/serve_transformers.py --model "$(or $(model),bundled)" --port "$(or $(port),8000)"

merge-adapter: ## fold a LoRA adapter into its base: make merge-adapter path=<adapter dir> [out=merged_model]
	@test -n "$(path)" || { echo "usage: make merge-adapter path=<adapter dir, e.g. sft_runs/latest/final> [out=merged_model]" >&2; exit 2; }
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.export.merge --adapter "$(path)" --out "$(or $(out),merged_model)"

export-gguf: ## GGUF + Ollama Modelfile: make export-gguf path=<model or adapter dir> [quant=Q4_K_M] [out=gguf_out] [push=<repo id>]
	@test -n "$(path)" || { echo "usage: make export-gguf path=<model dir, adapter dir or bundled> [quant=Q4_K_M] [out=gguf_out]" >&2; exit 2; }
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.export.llama_cpp build
	$(PY) -m rlvr.export.gguf --model "$(path)" --quant "$(or $(quant),Q4_K_M)" --out "$(or $(out),gguf_out)" \
	  $(if $(push),--push "$(push)",)

llama-cpp: ## build llama-server and llama-quantize once into the cache (from the llama-cpp-python sdist)
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.export.llama_cpp build

llama-server: ## serve a GGUF (OpenAI API on 127.0.0.1:8081, LLAMA_SERVER_PORT): make llama-server model=<file.gguf>
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.export.llama_cpp build
	scripts/llama_server.sh "$(model)"

vllm-server: ## serve with vLLM (GPU; OpenAI API on 127.0.0.1:8000, VLLM_PORT): make vllm-server model=<id|dir>
	@scripts/bootstrap.sh core
	scripts/vllm_server.sh "$(or $(model),$${BASE_MODEL_ID:-})"

reward-server: ## the verifier over HTTP (127.0.0.1:8090; OpenRLHF's remote reward at /openrlhf): make reward-server [port=8090] [host=127.0.0.1] [problems=bundled,<file>,<hub id>]
	@scripts/bootstrap.sh core
	REWARD_SERVER_PORT="$(or $(port),$${REWARD_SERVER_PORT:-})" REWARD_SERVER_HOST="$(or $(host),$${REWARD_SERVER_HOST:-})" \
	  REWARD_SERVER_PROBLEMS="$(or $(problems),$${REWARD_SERVER_PROBLEMS:-})" $(PY) -m rlvr.service

synth-data: ## verified training data from a teacher: make synth-data teacher=<base url> [model=…] [n=…] [mode=solutions|problems] [data=bundled] [out=…] [merge=1]
	@scripts/bootstrap.sh core
	@test -n "$(teacher)" || { echo "make synth-data: give teacher=<OpenAI-compatible base URL>, e.g. teacher=http://127.0.0.1:8081/v1" >&2; exit 2; }
	$(PY) -m rlvr.synth --teacher "$(teacher)" --mode "$(or $(mode),solutions)" --data "$(or $(data),bundled)" \
	  $(if $(model),--model "$(model)") $(if $(n),--n "$(n)") $(if $(out),--out "$(out)") $(if $(merge),--merge)

verl-data: ## a problem set as verl's RL parquet: make verl-data [data=bundled|<file>|<hub id>] [split=train|eval|all] out=<file.parquet>
	@scripts/bootstrap.sh core
	$(PY) -m rlvr.integrations.verl_data --data "$(or $(data),bundled)" --split "$(or $(split),train)" --out "$(or $(out),data/verl/$(or $(split),train).parquet)"

dashboard: ## the live dashboard on 127.0.0.1:8080, DASHBOARD_PORT (GRPO, completions, SFT, compare)
	@scripts/bootstrap.sh core
	$(PY) -m dashboard  # reads GRPO_OUTPUT_DIR, SFT_OUTPUT_DIR, PIPELINE_OUTPUT_DIR, DASHBOARD_HOST/PORT

bench-dashboard: ## time the dashboard's first page opens (Chromium and API) on a generated 100k-step, 1M-completion run
	@scripts/bootstrap.sh browser
	$(PY) scripts/bench_dashboard.py

bench-reward: ## reward throughput: verifier (sandboxed), old verdicts, a naive ocamlc harness, the compiler floor [RUN=<grpo run dir>: its reward phase, step by step]
	@scripts/bootstrap.sh core
	$(PY) scripts/bench_reward.py $(if $(RUN),--grpo-run "$(RUN)") $(if $(OLD_PROBLEMS),--old-problems "$(OLD_PROBLEMS)")

bench-reward-server: ## in-process scoring vs the reward server on loopback (one client and several), completions/s per core
	@scripts/bootstrap.sh core
	$(PY) scripts/bench_reward_server.py

bench-speed: ## SFT examples/s and GRPO completions/s, previous cpu defaults vs today's, and llama-server's tokens/s
	@scripts/bootstrap.sh core
	$(PY) scripts/bench_speed.py

bench-train: ## bench-speed, then does it learn? eval -> SFT -> eval -> GRPO -> eval of the bundled model on CPU (hours)
	@scripts/bootstrap.sh core
	$(PY) scripts/bench_speed.py
	$(PY) scripts/bench_train.py

tensorboard: ## TensorBoard on the run directories (TENSORBOARD_PORT, default 6006)
	@scripts/bootstrap.sh core
	.venv/bin/tensorboard --logdir "$${GRPO_OUTPUT_DIR:-grpo_runs}" --host 127.0.0.1 --port "$${TENSORBOARD_PORT:-6006}"

shell: ## the Nix dev shell (Python, uv, OCaml + findlib, bubblewrap, llama.cpp)
	nix develop

shell-cuda: ## the Nix dev shell with the CUDA toolkit
	nix develop .#cuda

clean: ## remove caches (keeps .venv and runs)
	rm -rf .pytest_cache .ruff_cache **/__pycache__
