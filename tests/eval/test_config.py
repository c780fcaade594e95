"""Eval settings: defaults, flags over variables, and errors that name the flag or variable."""

from __future__ import annotations

import pytest

from eval.config import EvalConfig
from rlvr.envconf import ConfigError


def test_defaults_are_greedy_single_sample_on_the_bundled_eval_split():
    cfg = EvalConfig.from_sources({})
    assert (cfg.model, cfg.data, cfg.split, cfg.backend) == ("bundled", "bundled", "eval", "transformers")
    assert (cfg.n, cfg.ks, cfg.temperature, cfg.limit) == (1, (1,), 0.0, 0)


def test_the_llama_server_backend_serves_the_bundled_model_by_default():
    cfg = EvalConfig.from_sources({"EVAL_BACKEND": "llama-server"})
    assert (cfg.backend, cfg.model, cfg.base_url) == ("llama-server", "bundled", None)


def test_flags_win_over_variables_and_default_ks_are_cut_to_n():
    cfg = EvalConfig.from_sources({"EVAL_N": "3", "EVAL_SEED": "9"}, {"n": "10", "limit": "5"})
    assert (cfg.n, cfg.ks, cfg.temperature, cfg.seed, cfg.limit) == (10, (1, 5, 10), 0.8, 9, 5)
    assert EvalConfig.from_sources({"EVAL_N": "4"}).ks == (1,)
    assert EvalConfig.from_sources({"EVAL_K": "1,5,10"}).ks == (1,)  # the default, e.g. exported in .envrc


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({"EVAL_N": "0"}, {}, "EVAL_N='0'"),
        ({}, {"n": "abc"}, "--n (EVAL_N)='abc'"),
        ({"EVAL_N": "2", "EVAL_K": "1,5"}, {}, "pass@5 but EVAL_N=2"),
        ({"EVAL_N": "4", "EVAL_TEMPERATURE": "0"}, {}, "EVAL_TEMPERATURE=0"),
        ({"EVAL_BACKEND": "server"}, {}, "needs OPENAI_BASE_URL"),
        (
            {"EVAL_BACKEND": "vllm"},
            {},
            "EVAL_BACKEND='vllm': expected one of transformers, server, llama-server",
        ),
        ({"EVAL_SPLIT": "test"}, {}, "EVAL_SPLIT='test'"),
        ({}, {"run_name": "a/b"}, "--run-name (EVAL_RUN_NAME)='a/b'"),
        ({"OPENAI_BASE_URL": "localhost:8080"}, {}, "OPENAI_BASE_URL='localhost:8080'"),
        ({"EVAL_EXTRA_BODY": "{top_k: 0}"}, {}, "EVAL_EXTRA_BODY='{top_k: 0}': not valid JSON"),
        ({"EVAL_EXTRA_BODY": "[1]"}, {}, "expected a JSON object"),
    ],
)
def test_errors_name_the_setting(env, flags, message):
    with pytest.raises(ConfigError) as err:
        EvalConfig.from_sources(env, flags)
    assert message in str(err.value)


def test_extra_body_is_parsed_once_and_recorded():
    cfg = EvalConfig.from_sources({"EVAL_EXTRA_BODY": '{"top_k": 0, "min_p": 0}'})
    assert cfg.extra_body == {"top_k": 0, "min_p": 0} and cfg.to_dict()["extra_body"] == cfg.extra_body
