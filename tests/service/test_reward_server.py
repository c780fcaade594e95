"""The reward server over real HTTP on loopback, with the real verifier: exact scores, every bound's
error, the token, and OpenRLHF's remote reward protocol."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from rlvr.envconf import ConfigError
from rlvr.service.config import ServerConfig
from rlvr.service.wire import problem_to_wire

RIGHT = "```ocaml\nlet sum_list xs = List.fold_left ( + ) 0 xs\n```"
WRONG = "```ocaml\nlet sum_list xs = List.length xs\n```"  # passes 1 of 5: 0.25 + 0.10 + 0.65 / 5
SYNTAX = "```ocaml\nlet sum_list xs = (\n```"


def post(url: str, path: str, body, **kw) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=120, **kw)


def test_scores_a_right_and_a_wrong_answer_exactly(server):
    r = post(
        server,
        "/score",
        {"items": [{"problem_id": "sum_list", "completion": c} for c in (RIGHT, WRONG, SYNTAX)]},
    )
    assert r.status_code == 200
    outcomes = r.json()["outcomes"]
    assert [o["total_reward"] for o in outcomes] == [1.0, 0.48, 0.0]
    assert [o["stage"] for o in outcomes] == ["pass", "test_failure", "syntax_error"]
    assert [o["tests_passed"] for o in outcomes] == [5, 1, 0]


def test_same_outcomes_as_the_verifier_in_process(server, verifier, sum_problem, tree_problem):
    tree = "let rec tree_size t = match t with Leaf -> 0 | Node (l, _, r) -> tree_size l + 1 + tree_size r"
    pairs = [
        (sum_problem, RIGHT),
        (tree_problem, tree),
        (sum_problem, WRONG),
        (tree_problem, "let tree_size t = 1"),
    ]
    local = [o.to_dict() for o in verifier.score_batch(pairs)]
    r = post(server, "/score", {"items": [{"problem_id": p.id, "completion": c} for p, c in pairs]})
    remote = r.json()["outcomes"]
    for o in local + remote:
        o.pop("duration_ms")
    assert remote == local


def test_a_problem_can_be_sent_inline(server, sum_problem):
    inline = problem_to_wire(sum_problem) | {"id": "sum_inline", "prompt": sum_problem.prompt}
    r = post(
        server, "/score", {"problems": [inline], "items": [{"problem_id": "sum_inline", "completion": RIGHT}]}
    )
    assert r.status_code == 200
    assert r.json()["outcomes"][0]["total_reward"] == 1.0


def test_an_unknown_problem_id_is_a_422_naming_the_item(server):
    r = post(
        server,
        "/score",
        {
            "items": [
                {"problem_id": "sum_list", "completion": RIGHT},
                {"problem_id": "nope", "completion": RIGHT},
            ]
        },
    )
    assert r.status_code == 422
    assert "items[1]: unknown problem id 'nope'" in r.json()["detail"]


def test_a_bad_inline_problem_is_a_422_naming_the_field(server):
    r = post(
        server,
        "/score",
        {
            "problems": [{"id": "x", "prompt": "let f x =", "tests": []}],
            "items": [{"problem_id": "x", "completion": "1"}],
        },
    )
    assert r.status_code == 422
    assert "problems[0]: field 'tests'" in r.json()["detail"]


def test_too_many_completions_is_a_413_naming_the_setting(serve, sum_problem):
    with serve([sum_problem], max_batch=2) as url:
        r = post(url, "/score", {"items": [{"problem_id": "sum_list", "completion": RIGHT}] * 3})
    assert r.status_code == 413
    assert r.json()["detail"] == "3 completions in one request; at most 2 (REWARD_SERVER_MAX_BATCH)"


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(serve, sum_problem):
    big = b'{"items": [{"problem_id": "sum_list", "completion": "' + b"x" * 5000 + b'"}]}'
    with serve([sum_problem], max_body_bytes=4096) as url:
        declared = httpx.post(f"{url}/score", content=big, headers={"content-type": "application/json"})
        streamed = httpx.post(
            f"{url}/score",
            content=iter([big[:2000], big[2000:]]),
            headers={"content-type": "application/json"},
        )
        small = post(url, "/score", {"items": [{"problem_id": "sum_list", "completion": RIGHT}]})
    for r in (declared, streamed):
        assert r.status_code == 413
        assert "REWARD_SERVER_MAX_BODY_BYTES" in r.json()["detail"]
    assert small.status_code == 200


def test_a_completion_over_the_limit_is_a_413_naming_it(serve, sum_problem):
    with serve([sum_problem], max_completion_chars=100) as url:
        r = post(
            url,
            "/score",
            {
                "items": [
                    {"problem_id": "sum_list", "completion": RIGHT},
                    {"problem_id": "sum_list", "completion": "x" * 101},
                ]
            },
        )
    assert r.status_code == 413
    assert r.json()["detail"].startswith("item 1: completion of 101 characters; at most 100")


def test_a_full_queue_answers_503_with_retry_after(serve, sum_problem):
    import threading

    loop = "let rec sum_list xs = sum_list xs"  # runs each test to its time limit: the queue stays full
    with serve([sum_problem], max_batch=2, max_pending=2) as url:
        first = threading.Thread(
            target=post, args=(url, "/score", {"items": [{"problem_id": "sum_list", "completion": loop}] * 2})
        )
        first.start()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").json()["pending"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        r = post(url, "/score", {"items": [{"problem_id": "sum_list", "completion": RIGHT}]})
        first.join()
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert "busy: 2 completions queued" in r.json()["detail"]


def test_a_batch_larger_than_the_queue_is_refused_at_start():
    with pytest.raises(ConfigError, match="REWARD_SERVER_MAX_PENDING"):
        ServerConfig(max_batch=10, max_pending=5)


def test_with_a_token_every_request_must_carry_it(serve, sum_problem):
    body = {"items": [{"problem_id": "sum_list", "completion": RIGHT}]}
    with serve([sum_problem], token="s3cret") as url:
        missing = post(url, "/score", body)
        wrong = post(url, "/score", body, headers={"Authorization": "Bearer nope"})
        health = httpx.get(f"{url}/health")
        right = post(url, "/score", body, headers={"Authorization": "Bearer s3cret"})
    assert (missing.status_code, wrong.status_code, health.status_code) == (401, 401, 401)
    assert right.status_code == 200 and right.json()["outcomes"][0]["total_reward"] == 1.0


def test_listening_beyond_loopback_needs_a_token():
    with pytest.raises(ConfigError, match="REWARD_SERVER_TOKEN"):
        ServerConfig(host="0.0.0.0")
    assert ServerConfig(host="0.0.0.0", token="t").host == "0.0.0.0"
    assert ServerConfig(host="::1").token is None


def test_the_command_refuses_a_public_address_without_a_token():
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr.service"],
        env={"PATH": "/usr/bin:/bin", "REWARD_SERVER_HOST": "0.0.0.0", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "listening beyond loopback needs REWARD_SERVER_TOKEN" in proc.stderr


def test_health_reports_the_pool_and_the_throughput(server, verifier):
    post(server, "/score", {"items": [{"problem_id": "sum_list", "completion": RIGHT}]})
    h = httpx.get(f"{server}/health").json()
    assert h["status"] == "ok" and h["problems"] == 2 and h["workers"] == verifier.jobs
    assert h["completions_scored"] >= 1 and h["requests"] >= 1 and h["pending"] == 0
    assert h["limits"]["max_batch"] == ServerConfig().max_batch


# -- OpenRLHF's remote reward protocol (openrlhf/utils/remote_rm_utils.py: query, prompts, labels) ----


def test_openrlhf_protocol_scores_the_response_part(server):
    prompt = "<|im_start|>user\nWrite sum_list.<|im_end|>\n<|im_start|>assistant\n"
    body = {
        "query": [prompt + RIGHT + "<|im_end|>", prompt + WRONG + "<|im_end|>\n<|endoftext|>"],
        "prompts": [prompt, prompt],
        "labels": ["sum_list", "sum_list"],
    }
    r = post(server, "/openrlhf", body)
    assert r.status_code == 200
    out = r.json()
    assert out["rewards"] == [1.0, 0.48]
    assert out["scores"] == [1.0, 0.48]
    assert out["extra_logs"]["pass"] == [1.0, 0.0]
    assert out["extra_logs"]["tests_fraction"] == [1.0, 0.2]


def test_openrlhf_needs_a_label_per_query(server):
    r = post(server, "/openrlhf", {"query": ["x", "y"], "prompts": ["", ""], "labels": ["sum_list"]})
    assert r.status_code == 422 and "1 labels for 2 queries" in r.json()["detail"]
    r = post(server, "/openrlhf", {"query": ["x"]})
    assert r.status_code == 422 and "labels are missing" in r.json()["detail"]


def test_openrlhf_a_query_without_its_prompt_costs_only_that_sample(server):
    prompt = "<|im_start|>assistant\n"
    body = {"query": ["abc", prompt + RIGHT], "prompts": ["zzz", prompt], "labels": ["sum_list", "sum_list"]}
    r = post(server, "/openrlhf", body)
    assert r.status_code == 200
    assert r.json()["rewards"] == [0.0, 1.0] and r.json()["extra_logs"]["infra_error"] == [1.0, 0.0]


def test_the_token_is_checked_before_the_body_is_read(serve, sum_problem):
    with serve([sum_problem], token="s3cret", max_body_bytes=4096) as url:
        r = httpx.post(f"{url}/score", content=b"x" * 10_000, headers={"content-type": "application/json"})
    assert r.status_code == 401
