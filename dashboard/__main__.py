"""``python -m dashboard``: serve the dashboard (bound to 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; environment variables give the defaults (rlvr.settings reads them)."""
    from rlvr.settings import dashboard_address, run_root

    host, port = dashboard_address(os.environ)
    p = argparse.ArgumentParser(
        prog="python -m dashboard", description="Live dashboard for ocamler-grpo runs."
    )
    p.add_argument("--runs-dir", default=run_root("grpo", os.environ), help="GRPO runs directory")
    p.add_argument("--sft-runs-dir", default=run_root("sft", os.environ), help="SFT runs directory")
    p.add_argument(
        "--pipeline-dir",
        default=run_root("pipeline", os.environ),
        help="pipeline runs directory (make pipeline)",
    )
    p.add_argument("--host", default=host, help="bind address")
    p.add_argument("--port", type=int, default=port, help="port")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run uvicorn with the dashboard app."""
    import uvicorn

    from dashboard.app import create_app

    args = parse_args(argv)
    app = create_app(args.runs_dir, args.sft_runs_dir, args.pipeline_dir)
    print(
        f"dashboard: http://{args.host}:{args.port}/  (GRPO runs: {os.path.abspath(args.runs_dir)}, "
        f"SFT runs: {os.path.abspath(args.sft_runs_dir)})",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
