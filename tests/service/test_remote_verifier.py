"""VERIFIER_URL's client against real reward servers: the same outcomes as in-process, failover to a
live host, None (never 0) when no host can score, and the errors that stop a run at start."""

from __future__ import annotations

import dataclasses

import pytest

from rlvr.envconf import ConfigError
from rlvr.grpo.rewards import RewardContext
from rlvr.service.client import RemoteVerifier, open_verifier
from rlvr.service.config import RemoteConfig
from rlvr.service.process import free_port
from rlvr.verifier import Verifier, VerifierConfig

RIGHT = "let sum_list xs = List.fold_left ( + ) 0 xs"
WRONG = "let sum_list xs = List.length xs"
TREE = "let rec tree_size t = match t with Leaf -> 0 | Node (l, _, r) -> tree_size l + 1 + tree_size r"


def pairs(sum_problem, tree_problem):
    return [
        (sum_problem, RIGHT),
        (tree_problem, TREE),
        (sum_problem, WRONG),
        (tree_problem, "let tree_size t = 0"),
        (sum_problem, "let sum_list = 1 +"),
        (tree_problem, TREE + "\n"),
    ]


def plain(outcomes):
    return [{k: v for k, v in o.to_dict().items() if k != "duration_ms"} for o in outcomes]


def test_two_hosts_in_chunks_give_the_in_process_outcomes(serve, verifier, sum_problem, tree_problem):
    items = pairs(sum_problem, tree_problem)
    ids = [f"row{n}" for n in range(len(items))]
    with serve([]) as a, serve([]) as b, RemoteVerifier(RemoteConfig(urls=(a, b), batch=2)) as remote:
        got = remote.score_batch(items, ids=ids)
        assert remote.stats["verified"] == 6 and remote.infra_failures == 0
    assert plain(got) == plain(verifier.score_batch(items, ids=ids))
    assert [o.total_reward for o in got][:3] == [1.0, 1.0, 0.48]


def test_a_dead_host_is_skipped(serve, sum_problem, tree_problem, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    with serve([]) as live, RemoteVerifier(RemoteConfig(urls=(dead, live), batch=1, retries=1)) as remote:
        got = remote.score_batch(pairs(sum_problem, tree_problem))
    assert [o.stage for o in got] == ["pass", "pass", "test_failure", "test_failure", "syntax_error", "pass"]
    assert remote.infra_failures == 0
    assert "unreachable" in capsys.readouterr().err


def test_a_batch_no_host_can_score_is_none_not_zero(serve, sum_problem):
    with serve([]) as url:
        remote = RemoteVerifier(RemoteConfig(urls=(url,), retries=1))
    # the server has stopped: every attempt fails
    got = remote.score_batch([(sum_problem, RIGHT), (sum_problem, WRONG)], ids=["a", "b"])
    remote.close()
    assert [o.total_reward for o in got] == [None, None]
    assert [o.stage for o in got] == ["infra_error", "infra_error"]
    assert [o.id for o in got] == ["a", "b"]
    assert remote.infra_failures == 2 and remote.stats["retries"] == 2
    assert got[0].error.startswith("verifier service: ")


def test_a_wrong_token_stops_at_start(serve, sum_problem):
    with serve([sum_problem], token="right") as url, pytest.raises(ConfigError, match="VERIFIER_URL_TOKEN"):
        RemoteVerifier(RemoteConfig(urls=(url,), token="wrong"))


def test_no_reachable_host_stops_at_start():
    with pytest.raises(ConfigError, match="no reward server answered"):
        RemoteVerifier(RemoteConfig(urls=(f"http://127.0.0.1:{free_port()}",)))


def test_a_bad_url_is_refused_by_the_config():
    with pytest.raises(ConfigError, match="not an http"):
        RemoteConfig.from_env({"VERIFIER_URL": "localhost:8090"})
    assert RemoteConfig.from_env({"VERIFIER_URL": "http://a:1/, http://b:2"}).urls == (
        "http://a:1",
        "http://b:2",
    )


def test_calibrate_times_the_references_on_the_host(serve, sum_problem):
    solved = dataclasses.replace(sum_problem, solution=RIGHT)
    other = dataclasses.replace(solved, id="sum_again")
    with serve([]) as url, RemoteVerifier(RemoteConfig(urls=(url,))) as remote:
        limits = remote.calibrate([solved, other], chunk=1)  # one request a problem
    assert sorted(limits) == ["sum_again", "sum_list"]
    assert limits["sum_list"].reference_cpu_s is not None
    assert 0 < limits["sum_list"].run_cpu_s <= VerifierConfig().run_timeout_s


def test_open_verifier_is_in_process_without_urls():
    v = open_verifier(VerifierConfig(sandbox="bwrap"), RemoteConfig())
    try:
        assert isinstance(v, Verifier)
    finally:
        v.close()


def test_the_reward_functions_score_the_same_through_a_server(serve, verifier, sum_problem, tree_problem):
    from rlvr.grpo.rewards import ocaml_score

    items = pairs(sum_problem, tree_problem)
    ids, texts = [p.id for p, _ in items], [t for _, t in items]
    local = RewardContext(verifier, [sum_problem, tree_problem]).outcomes(ids, texts)
    with serve([]) as url, RemoteVerifier(RemoteConfig(urls=(url,))) as remote:
        far = RewardContext(remote, [sum_problem, tree_problem]).outcomes(ids, texts)
    settings = RewardContext(verifier, []).settings
    assert [ocaml_score(o, t, settings) for o, t in zip(far, texts)] == [
        ocaml_score(o, t, settings) for o, t in zip(local, texts)
    ]


def test_chunks_fit_the_hosts_limits_and_a_too_long_completion_is_its_own_failure(serve, sum_problem):
    with (
        serve([], max_batch=2, max_completion_chars=200) as url,
        RemoteVerifier(RemoteConfig(urls=(url,), batch=256)) as remote,
    ):
        assert remote.batch == 2 and remote.max_chars == 200
        got = remote.score_batch(
            [(sum_problem, RIGHT), (sum_problem, "x" * 201), (sum_problem, WRONG), (sum_problem, RIGHT)]
        )
    assert [o.stage for o in got] == ["pass", "infra_error", "test_failure", "pass"]
    assert got[1].total_reward is None and remote.infra_failures == 1


def test_a_host_that_answers_nonsense_costs_samples_not_the_run(sum_problem):
    from fastapi import FastAPI

    from .conftest import serving_app

    app = FastAPI()
    app.get("/health")(lambda: {"status": "ok", "workers": 1})
    app.post("/score")(lambda: {"outcomes": [{"id": "x", "total_reward": 1.0}]})  # one outcome for two
    with serving_app(app) as url, RemoteVerifier(RemoteConfig(urls=(url,), retries=0)) as remote:
        got = remote.score_batch([(sum_problem, RIGHT), (sum_problem, WRONG)])
    assert [o.stage for o in got] == ["infra_error", "infra_error"]
    assert "1 outcomes for 2 completions" in got[0].error
