"""Bad settings stop before any model loads, with a message naming the variable."""

import pytest

from rlvr.envconf import ConfigError
from rlvr.grpo.config import GRPOTrainConfig

from .conftest import run_module, train_env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRPO_MAX_STEPS": "ten"}, "GRPO_MAX_STEPS='ten': expected an integer"),
        ({"GRPO_MAX_STEPS": "0"}, "GRPO_MAX_STEPS='0': expected an integer >= 1"),
        ({"GRPO_ALGORITHM": "ppo"}, "GRPO_ALGORITHM='ppo': expected one of grpo, rloo"),
        ({"GRPO_LOSS_TYPE": "x"}, "GRPO_LOSS_TYPE='x': expected one of grpo, dr_grpo"),
        (
            {"GRPO_NUM_GENERATIONS": "4", "GRPO_BATCH_SIZE": "6"},
            "GRPO_BATCH_SIZE=6: must be a multiple of GRPO_NUM_GENERATIONS=4",
        ),
        ({"GRPO_REWARDS": "ocaml,bogus"}, "unknown reward 'bogus'"),
        ({"GRPO_REWARDS": "ocaml:heavy"}, "the weight after ':' must be a number"),
        ({"GRPO_USE_VLLM": "1"}, "GRPO_USE_VLLM=1 needs a CUDA GPU"),
        ({"GRPO_PUSH_TO_HUB": "1"}, "GRPO_PUSH_TO_HUB=1 needs GRPO_HUB_MODEL_ID"),
        ({"GRPO_TEMPERATURE": "-1"}, "GRPO_TEMPERATURE='-1': expected a number in"),
        ({"VERIFIER_SANDBOX": "none"}, "VERIFIER_SANDBOX='none'"),
        ({"GRPO_REPORT_TO": "neptune"}, "'neptune' is not one of tensorboard, wandb, trackio, none"),
        (
            {"GRPO_ROLLOUT_ENGINE": "vllm"},
            "GRPO_ROLLOUT_ENGINE='vllm': expected one of transformers, llama-server",
        ),
        (
            {"GRPO_ROLLOUT_ENGINE": "llama-server", "GRPO_ALGORITHM": "rloo"},
            "GRPO_ROLLOUT_ENGINE=llama-server generates for GRPO_ALGORITHM=grpo without vLLM (got GRPO_ALGORITHM=rloo",
        ),
    ],
)
def test_bad_value_names_the_variable(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        GRPOTrainConfig.from_env(env, cuda=False)


def test_cpu_profile_defaults_to_the_bundled_model():
    cfg = GRPOTrainConfig.from_env({}, cuda=False, cpu_bf16=False)
    assert (cfg.model, cfg.profile, cfg.bf16, cfg.lora.enabled) == ("bundled", "cpu", False, True)
    assert (cfg.num_generations, cfg.batch_size, cfg.max_completion_length, cfg.max_steps) == (8, 8, 256, 30)


def test_cpu_bf16_follows_the_cpu_and_is_refused_where_it_would_be_emulated():
    assert GRPOTrainConfig.from_env({}, cuda=False, cpu_bf16=True).bf16 is True
    assert GRPOTrainConfig.from_env({"GRPO_BF16": "0"}, cuda=False, cpu_bf16=True).bf16 is False
    with pytest.raises(ConfigError, match="GRPO_BF16=1 on CPU needs AVX512-BF16 or AMX"):
        GRPOTrainConfig.from_env({"GRPO_BF16": "1"}, cuda=False, cpu_bf16=False)


def test_cpu_bf16_flags_are_read_from_cpuinfo():
    from rlvr.config import cpu_bf16_flags

    assert cpu_bf16_flags("processor: 0\nflags\t\t: fpu avx512f avx512_bf16 sse\n") == ("avx512_bf16",)
    assert cpu_bf16_flags("flags : fpu amx_bf16 amx_tile avx512_bf16\n") == ("avx512_bf16", "amx_bf16")
    assert cpu_bf16_flags("flags : fpu avx2 fma\n") == ()


def test_cuda_profile_defaults_to_qwen_in_bf16():
    cfg = GRPOTrainConfig.from_env({}, cuda=True)
    assert (cfg.model, cfg.bf16, cfg.lora.r, cfg.lora.alpha) == (
        "Qwen/Qwen2.5-Coder-1.5B-Instruct",
        True,
        64,
        128,
    )


def test_overrides_are_applied():
    cfg = GRPOTrainConfig.from_env(
        {"GRPO_MAX_STEPS": "7", "GRPO_REWARDS": "ocaml,pass_partial_fail:0.5", "LORA_R": "8"}, cuda=False
    )
    assert (cfg.max_steps, cfg.rewards, cfg.lora.r) == (7, ("ocaml", "pass_partial_fail:0.5"), 8)


def test_train_exits_2_with_the_message_and_loads_nothing(tmp_path, problems_file):
    env = train_env(tmp_path / "no-model", problems_file, tmp_path / "runs", GRPO_MAX_STEPS="-5")
    proc = run_module("rlvr.train", env, timeout=120)
    assert proc.returncode == 2
    assert "configuration error: GRPO_MAX_STEPS='-5'" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_the_llama_server_engine_is_refused_without_llama_cpp(tmp_path, problems_file):
    env = train_env(
        tmp_path / "no-model", problems_file, tmp_path / "runs", GRPO_ROLLOUT_ENGINE="llama-server",
        LLAMA_CPP_DIR=str(tmp_path / "no-llama-cpp"),
    )  # fmt: skip
    proc = run_module("rlvr.train", env, timeout=120)
    assert proc.returncode == 2
    assert (
        "configuration error: GRPO_ROLLOUT_ENGINE=llama-server needs llama.cpp: run `make llama-cpp`"
        in proc.stderr
    )
    assert not (tmp_path / "runs").exists()


def test_an_unloadable_model_names_the_bundled_default(tmp_path, problems_file):
    env = train_env(
        tmp_path / "no-model", problems_file, tmp_path / "runs", BASE_MODEL_ID="nobody/no-such-model-xyz"
    )
    proc = run_module("rlvr.train", env, timeout=300)
    assert proc.returncode == 2
    assert "cannot load the model 'nobody/no-such-model-xyz'" in proc.stderr
    assert "BASE_MODEL_ID=bundled" in proc.stderr
