"""Live dashboard for ocamler-grpo runs (GRPO and SFT): FastAPI + uvicorn + vendored uPlot."""

from dashboard.app import create_app

__all__ = ["create_app"]
