"""The `prism tui` subcommand. Importing this module never imports textual."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from prismrag import hookimpl

SERVER_ENV = "PRISM_SERVER"
KEY_ENV = "PRISM_API_KEY"


@hookimpl
def register_commands(subparsers: Any) -> None:
    """Add `tui [RECIPE] [--server URL]` to the `prism` parser's subcommands."""
    p = subparsers.add_parser("tui", help="the terminal UI: pick a recipe, ingest, search, evaluate")
    p.add_argument("recipe", nargs="?", default=None,
                   help="a recipe file to open (default: pick one); with a server: a served recipe's name or file")
    p.add_argument("--recipes-dir", default="recipes", help="where to look for recipes (default: recipes/)")
    p.add_argument("--light", action="store_true", help="start with the light theme")
    p.add_argument("--server", metavar="URL", default=None,
                   help=f"search a running `prism serve` instead of opening the index (default: ${SERVER_ENV} "
                        f"unless RECIPE is a local file; --server '' opens locally)")
    p.add_argument("--api-key", default=None, help=f"the server's API key (default: ${KEY_ENV})")
    p.set_defaults(func=cmd_tui)


def server_of(args: argparse.Namespace) -> str | None:
    """The server the TUI asks: --server, else $PRISM_SERVER unless RECIPE names a local file
    (a recipe file opens locally; a served recipe's name goes to the server)."""
    if args.server is not None:
        return args.server or None
    if args.recipe is not None and Path(args.recipe).is_file():
        return None
    return os.environ.get(SERVER_ENV) or None


def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from .app import PrismApp
    except ImportError as exc:  # textual is an optional extra
        from prismrag import MissingDependencyError

        raise MissingDependencyError("prism tui", "textual", "tui") from exc
    server = server_of(args)
    if server is not None:
        try:
            import httpx  # noqa: F401
        except ImportError:
            from prismrag import MissingDependencyError

            raise MissingDependencyError("prism tui --server", "httpx", "tui") from None
    key = args.api_key if args.api_key is not None else os.environ.get(KEY_ENV) or None
    app = PrismApp(recipe=args.recipe, recipes_dir=args.recipes_dir, light=args.light, server=server, api_key=key)
    app.run()
    return app.return_code or 0
