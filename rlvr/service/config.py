"""The reward server's settings (REWARD_SERVER_*) and the remote verifier's (VERIFIER_URL*), each read once
here with its one default; .envrc documents them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from ..envconf import ConfigError, Env


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """What `make reward-server` serves, where, and the bounds every request is held to."""

    host: str = "127.0.0.1"
    port: int = 8090
    # Required of every request when set (`Authorization: Bearer <token>`); listening beyond loopback
    # without one is refused at start: the service runs whatever code it is sent, in the sandbox.
    token: str | None = None
    problems: tuple[str, ...] = ("bundled",)  # problem sets loaded at start (bundled, files, hub ids)
    max_batch: int = 1024  # completions in one request
    max_body_bytes: int = 32 * 1024 * 1024  # a request's JSON body
    max_completion_chars: int = 100_000  # one completion (a 4k-token answer is ~16k characters)
    max_inline_problems: int = 1024  # problems sent with a request instead of named by id
    # Completions accepted but not yet scored, over all requests; past it a request gets 503 so its
    # client can try another host rather than queue behind a full one.
    max_pending: int = 8192

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"REWARD_SERVER_PORT={self.port}: expected a port in 1..65535")
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"REWARD_SERVER_HOST={self.host}: listening beyond loopback needs REWARD_SERVER_TOKEN "
                "(every request must then carry it); the service compiles and runs what it is sent"
            )
        if self.max_inline_problems < 1:
            raise ConfigError(
                "REWARD_SERVER_MAX_INLINE_PROBLEMS must be at least 1: the remote verifier sends its problems inline"
            )
        if self.max_batch > self.max_pending:
            raise ConfigError(
                f"REWARD_SERVER_MAX_BATCH={self.max_batch} is over REWARD_SERVER_MAX_PENDING={self.max_pending}: "
                "a full batch would always be refused as busy"
            )
        if not self.problems:
            raise ConfigError("REWARD_SERVER_PROBLEMS: expected at least one problem set (e.g. bundled)")

    @staticmethod
    def from_env(env: Mapping[str, str]) -> ServerConfig:
        e, d = Env(env), ServerConfig()
        return ServerConfig(
            host=e.str("REWARD_SERVER_HOST", d.host) or d.host,
            port=e.int("REWARD_SERVER_PORT", d.port, minimum=1),
            token=e.str("REWARD_SERVER_TOKEN", None),
            problems=e.list("REWARD_SERVER_PROBLEMS", d.problems),
            max_batch=e.int("REWARD_SERVER_MAX_BATCH", d.max_batch, minimum=1),
            max_body_bytes=e.int("REWARD_SERVER_MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
            max_completion_chars=e.int(
                "REWARD_SERVER_MAX_COMPLETION_CHARS", d.max_completion_chars, minimum=1
            ),
            max_inline_problems=e.int("REWARD_SERVER_MAX_INLINE_PROBLEMS", d.max_inline_problems, minimum=1),
            max_pending=e.int("REWARD_SERVER_MAX_PENDING", d.max_pending, minimum=1),
        )


@dataclass(frozen=True)
class RemoteConfig:
    """VERIFIER_URL: score on these reward servers instead of in this process (empty: in-process)."""

    urls: tuple[str, ...] = ()
    token: str | None = None  # sent as `Authorization: Bearer`, VERIFIER_URL_TOKEN
    timeout_s: float = 600.0  # one request (a batch); scoring a large batch takes a while
    retries: int = 2  # extra attempts per batch, each on the next host
    batch: int = 256  # completions per request; a step's completions go out in parallel chunks

    def __post_init__(self) -> None:
        for url in self.urls:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(f"VERIFIER_URL: {url!r} is not an http(s)://host:port address")

    @staticmethod
    def from_env(env: Mapping[str, str]) -> RemoteConfig:
        e, d = Env(env), RemoteConfig()
        return RemoteConfig(
            urls=tuple(u.rstrip("/") for u in e.list("VERIFIER_URL", d.urls)),
            token=e.str("VERIFIER_URL_TOKEN", None),
            timeout_s=e.float("VERIFIER_URL_TIMEOUT", d.timeout_s, 0.1, 86400.0),
            retries=e.int("VERIFIER_URL_RETRIES", d.retries, minimum=0),
            batch=e.int("VERIFIER_URL_BATCH", d.batch, minimum=1),
        )
