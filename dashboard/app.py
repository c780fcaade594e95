"""The dashboard's FastAPI application: the pages (dashboard.pages), the JSON API (dashboard.api) and
one Server-Sent-Events stream per page (dashboard.stream), behind a strict content security policy."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard import api, pages, stream
from dashboard.registry import Registry

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """ASGI middleware adding a strict CSP (no inline scripts) and no-store for the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope.get("path", "").startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if is_api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    runs_dir: str = "grpo_runs", sft_runs_dir: str = "sft_runs", pipeline_dir: str = "pipeline_runs"
) -> FastAPI:
    """Build the dashboard app reading GRPO runs from ``runs_dir``, SFT runs from ``sft_runs_dir`` and
    the pipeline state from ``pipeline_dir``."""
    app = FastAPI(
        title="ocamler-grpo dashboard", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json"
    )
    app.state.registry = Registry({"grpo": runs_dir, "sft": sft_runs_dir})
    app.state.pipeline_dir = pipeline_dir
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)
    app.add_middleware(SecurityHeaders)
    pages.add_pages(app)
    app.include_router(api.router)
    app.include_router(stream.router)
    return app
