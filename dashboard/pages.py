"""The dashboard's pages: static HTML (no template engine) and their assets under /static."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
PAGES = {"/": "grpo.html", "/completions": "completions.html", "/sft": "sft.html", "/compare": "compare.html"}


def page(filename: str) -> Any:
    async def handler() -> FileResponse:
        return FileResponse(
            os.path.join(STATIC_DIR, filename),
            media_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    return handler


def add_pages(app: FastAPI) -> None:
    """Serve each page at its URL and the static assets under /static."""
    for url, filename in PAGES.items():
        app.add_api_route(url, page(filename), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
