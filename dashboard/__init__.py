"""Live dashboard for ocamler-grpo runs (GRPO and SFT): FastAPI + uvicorn + vendored uPlot.

The package imports nothing on its own: the parse processes (:mod:`dashboard.offload`)
import only the parsing modules, not FastAPI.  The app is ``dashboard.app.create_app``.
"""
