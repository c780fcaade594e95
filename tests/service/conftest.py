"""A real reward server (uvicorn on loopback, the real verifier and sandbox) for the service tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from rlvr.service.app import create_app
from rlvr.service.config import ServerConfig
from rlvr.service.process import free_port


@contextmanager
def serving(verifier, problems, **settings) -> Iterator[str]:
    """Serve `problems` with `verifier` on a free loopback port; yields the base URL."""
    config = ServerConfig(port=free_port(), **settings)
    with serving_app(create_app(config, verifier, problems), config.port) as url:
        yield url


@contextmanager
def serving_app(app, port: int | None = None) -> Iterator[str]:
    """Any ASGI app served by uvicorn on a loopback port; yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the reward server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(verifier, sum_problem, tree_problem) -> Iterator[str]:
    with serving(verifier, [sum_problem, tree_problem]) as url:
        yield url


@pytest.fixture()
def serve(verifier):
    """`serve(problems, **ServerConfig settings)`: a context manager serving them with the shared verifier."""
    return lambda problems, **settings: serving(verifier, problems, **settings)
