"""Score through one or more reward servers (VERIFIER_URL) with the in-process Verifier's interface.

`RemoteVerifier.score_batch` cuts a batch into chunks of `RemoteConfig.batch`, sends them in parallel,
spread over the hosts, and retries a chunk on the next host after a connection error, a timeout or a 5xx
(a 503 is a busy host). A chunk that no host could score comes back as `infra_error` outcomes with
`total_reward` None, which TRL masks: a lost host costs samples, never the run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ..envconf import ConfigError
from ..problems import Problem
from ..verifier import Outcome, Verifier, VerifierConfig
from ..verifier.time_limits import TimeLimit
from .config import RemoteConfig
from .wire import outcome_from_wire, problem_to_wire


class RemoteVerifier:
    """The Verifier's public interface (score, score_batch, calibrate, infra_failures, stats, close)
    over HTTP. Problems travel inline with each request, so a host needs no copy of the data."""

    def __init__(self, config: RemoteConfig):
        if not config.urls:
            raise ConfigError("VERIFIER_URL: no reward server address given")
        self.config = config
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        # a host that does not answer a connection is given up on in seconds, not after the scoring timeout
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(config.timeout_s, connect=10.0))
        self._pool = ThreadPoolExecutor(
            max_workers=4 * len(config.urls), thread_name_prefix="remote-verifier"
        )
        self._lock = threading.Lock()
        self._next = 0
        self.infra_failures = 0
        self.stats: Counter[str] = Counter()
        self.hosts = self._check_hosts()
        self.jobs = sum(h.get("workers", 0) for h in self.hosts.values())
        # what every live host accepts: chunks fit the smallest, and a completion none would take is
        # an infra_error of its own instead of a refused chunk
        limits = [h.get("limits") or {} for h in self.hosts.values()]
        self.batch = min([config.batch, *(lim.get("max_batch", config.batch) for lim in limits)])
        self.max_chars = min([lim.get("max_completion_chars", 1 << 62) for lim in limits] or [1 << 62])

    def _check_hosts(self) -> dict[str, dict[str, Any]]:
        """Each host's /health; a wrong token stops here, an unreachable host is reported and left out
        of the rotation."""
        up: dict[str, dict[str, Any]] = {}
        for url in self.config.urls:
            try:
                r = self._http.get(f"{url}/health", timeout=min(30.0, self.config.timeout_s))
            except httpx.HTTPError as e:
                print(
                    f"verifier service {url}: unreachable ({e}); its share goes to the others",
                    file=sys.stderr,
                )
                continue
            if r.status_code == 401:
                raise ConfigError(f"VERIFIER_URL {url}: the token was refused (set VERIFIER_URL_TOKEN)")
            if r.status_code == 200:
                up[url] = r.json()
            else:
                print(f"verifier service {url}: /health answered {r.status_code}", file=sys.stderr)
        if not up:
            raise ConfigError(f"VERIFIER_URL: no reward server answered ({', '.join(self.config.urls)})")
        return up

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> RemoteVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | str:
        """POST to the hosts in turn, starting from the next in rotation: the JSON answer, or why not."""
        with self._lock:
            start = self._next
            self._next += 1
        urls = list(self.hosts)
        why = "no attempt"
        for attempt in range(1 + self.config.retries):
            url = urls[(start + attempt) % len(urls)]
            try:
                r = self._http.post(f"{url}{path}", json=body)
            except httpx.HTTPError as e:
                why = f"{url}: {type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    return r.json()
                why = f"{url}: HTTP {r.status_code}: {r.text[:300]}"
                if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                    return why  # the request itself is wrong: another host would say the same
            with self._lock:
                self.stats["retries"] += 1
            time.sleep(min(2.0, 0.2 * 2**attempt))
        return why

    def _score_chunk(self, items: Sequence[tuple[Problem, str]], ids: Sequence[str]) -> list[Outcome]:
        problems = {p.id: p for p, _ in items}
        body = {
            "problems": [problem_to_wire(p) for p in problems.values()],
            "items": [{"problem_id": p.id, "completion": text} for p, text in items],
        }
        answer = self._post("/score", body)
        if not isinstance(answer, str):
            try:
                outcomes = [outcome_from_wire(o) for o in answer["outcomes"]]
                if len(outcomes) != len(items):
                    raise ValueError(f"{len(outcomes)} outcomes for {len(items)} completions")
            except (KeyError, TypeError, ValueError) as e:
                answer = f"a malformed answer ({type(e).__name__}: {e})"
        if isinstance(answer, str):
            return self._unscored(ids, f"a batch of {len(items)} was not scored ({answer})")
        for o, i in zip(outcomes, ids):
            o.id = i
        with self._lock:
            self.stats["verified"] += len(outcomes)
        return outcomes

    def _unscored(self, ids: Sequence[str], why: str) -> list[Outcome]:
        with self._lock:
            self.infra_failures += len(ids)
        print(f"verifier service: {why}", file=sys.stderr)
        return [
            Outcome(id=i, total_reward=None, stage="infra_error", error=f"verifier service: {why}")
            for i in ids
        ]

    def score(self, problem: Problem, completion: str, id: str | None = None) -> Outcome:
        return self.score_batch([(problem, completion)], ids=[id] if id else None)[0]

    def score_batch(
        self, items: Sequence[tuple[Problem, str]], ids: Sequence[str] | None = None
    ) -> list[Outcome]:
        """Outcomes in input order, as Verifier.score_batch gives them. Two different problems that
        share an id go in different chunks (a request names each problem once)."""
        ids = list(ids) if ids else [p.id for p, _ in items]
        out: list[Outcome | None] = [None] * len(items)
        chunks: list[list[int]] = []
        current: list[int] = []
        seen: dict[str, Problem] = {}
        for n, (p, text) in enumerate(items):
            if len(text) > self.max_chars:
                out[n] = self._unscored(
                    [ids[n]], f"a completion of {len(text)} characters is over the hosts' limit"
                )[0]
                continue
            if len(current) >= self.batch or (p.id in seen and seen[p.id] != p):
                chunks.append(current)
                current, seen = [], {}
            seen[p.id] = p
            current.append(n)
        if current:
            chunks.append(current)
        futures = [
            self._pool.submit(self._score_chunk, [items[n] for n in c], [ids[n] for n in c]) for c in chunks
        ]
        for c, f in zip(chunks, futures):
            for n, o in zip(c, f.result()):
                out[n] = o
        return out  # type: ignore[return-value]

    def calibrate(self, problems: Sequence[Problem], chunk: int = 256) -> dict[str, TimeLimit]:
        """Every host times the references on its own CPU (POST /calibrate, `chunk` problems a request),
        so that no step waits for it; the limits the first host derived are returned."""
        limits: dict[str, TimeLimit] = {}
        for n, url in enumerate(self.hosts):
            for i in range(0, len(problems), chunk):
                body = {"problems": [problem_to_wire(p) for p in problems[i : i + chunk]]}
                try:
                    r = self._http.post(f"{url}/calibrate", json=body)
                    r.raise_for_status()
                except httpx.HTTPError as e:
                    print(f"verifier service {url}: calibration failed ({e})", file=sys.stderr)
                    break
                answer = r.json()
                self.stats["reference_measurements"] += answer.get("measured", 0)
                if n == 0:
                    limits.update({pid: TimeLimit(**lim) for pid, lim in answer["limits"].items()})
        return limits


def open_verifier(local: VerifierConfig, remote: RemoteConfig) -> Verifier | RemoteVerifier:
    """The verifier a trainer scores with: the reward servers of VERIFIER_URL when set, else in-process."""
    if remote.urls:
        v = RemoteVerifier(remote)
        workers = ", ".join(f"{u} ({h.get('workers')} workers)" for u, h in v.hosts.items())
        print(f"reward: scored by {len(v.hosts)} reward server(s): {workers}", flush=True)
        return v
    return Verifier(local)
