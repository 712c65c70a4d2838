"""The `prism serve` subcommand. Light at import: fastapi and uvicorn load in the handler."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..hookspecs import hookimpl

KEY_ENV = "PRISM_API_KEY"


@hookimpl
def register_commands(subparsers: Any) -> None:
    """Add `prism serve RECIPE [RECIPE...]`."""
    p = subparsers.add_parser(
        "serve", help="serve recipes over HTTP: search, ingest, OpenAI-compatible embeddings, rerank"
    )
    p.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipe files (each served under its name)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help=f"the key clients send as 'Authorization: Bearer KEY' (default: ${KEY_ENV})")
    p.add_argument("--allow-no-key", action="store_true",
                   help="serve a non-loopback host without an API key (anyone who reaches it may use it)")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body (default 32 MB)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a search or embedding request may take")
    p.add_argument("--ingest-timeout", type=float, default=600.0, help="seconds an ingest request may take")
    p.add_argument("--media-root", action="append", default=[], metavar="DIR",
                   help="a folder whose files may be named as media queries (repeatable; default: none)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable; default: CORS off)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0,
                   help="how long a search waits for others to batch with (one encoder call, one store "
                        "call; concurrent ingests likewise); 0: no micro-batching")
    p.add_argument("--max-batch", type=int, default=64, help="most searches in one batch")
    p.add_argument("--threads", type=int, default=64, help="worker threads for engine calls")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..errors import MissingDependencyError

    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("prism serve", exc.name or "fastapi", "serve") from None
    from .app import ServerConfig, create_app
    from .security import check_bind

    key = args.api_key if args.api_key is not None else os.environ.get(KEY_ENV) or None
    check_bind(args.host, key, args.allow_no_key)
    config = ServerConfig(
        recipes=list(args.recipes), api_key=key, max_body=int(args.max_body_mb * 1024 * 1024),
        timeout=args.timeout, ingest_timeout=args.ingest_timeout, media_roots=list(args.media_root),
        cors_origins=list(args.cors_origin), batch_wait=args.batch_wait_ms / 1000.0, max_batch=args.max_batch,
        threads=args.threads,
    )
    app = create_app(config)
    from .security import is_loopback

    auth = ("API key required" if key else "no API key: loopback clients only" if is_loopback(args.host)
            else "NO API KEY (--allow-no-key): anyone who can reach this port may use it")
    print(f"prism serve: http://{args.host}:{args.port} ({', '.join(app.state.server.names)}); {auth}; "
          f"micro-batching {'off' if config.batch_wait <= 0 else f'{args.batch_wait_ms:g} ms'}",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_keep_alive=30,
                access_log=args.log_level in ("info", "debug"))
    return 0
