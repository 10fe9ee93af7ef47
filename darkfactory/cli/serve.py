"""``darkfactory serve``: the factory as a service (API, dashboard, approvals, webhooks)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from darkfactory.cli._common import Subparsers, UsageError, load_dotenv


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="run the factory as a service: REST API, dashboard, approvals, webhooks"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free one)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, one worker each (1-16)")
    p.add_argument("--out", type=Path, default=None, help="runs directory (default: runs/)")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config directory (agents.yaml, tasks.yaml, factory.yaml, service.yaml)",
    )
    g = p.add_argument_group("past one machine (docs/scaling-out.md)")
    g.add_argument(
        "--broker", default=None, help="send runs to Celery workers: redis://HOST:PORT/DB"
    )
    g.add_argument(
        "--store", type=Path, default=None, help="the run store the workers share (a directory)"
    )
    g.add_argument("--queue", default="darkfactory", help="the Celery queue (default: darkfactory)")
    p.add_argument(
        "--sandbox",
        choices=("auto", "docker", "bwrap", "local"),
        default=None,
        help="sandbox backend of every run (default: factory.yaml's)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from darkfactory.service.server import build_context

    load_dotenv()
    if not 1 <= args.jobs <= 16:
        raise UsageError(f"--jobs must be 1 to 16, got {args.jobs}")
    ctx = build_context(
        config_dir=args.config,
        runs_dir=args.out,
        host=args.host,
        port=args.port,
        jobs=args.jobs,
        backend=args.sandbox,
        broker=args.broker,
        store=args.store,
        queue_name=args.queue,
    )
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if not ctx.settings.public_url:
        ctx.public_url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    from darkfactory.service.server import create_app

    app = create_app(ctx)
    print(
        f"darkfactory serve: {ctx.public_url} (runs in {ctx.runs_dir}, {args.jobs} at a time, "
        f"{'no tokens: local use only' if ctx.tokens.open else 'tokens required'})",
        flush=True,
    )
    ctx.start()
    try:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[sock])
    finally:
        ctx.stop()
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose another --port (0 takes any free one), or stop what uses it",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
