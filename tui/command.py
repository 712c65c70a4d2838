"""The `prism tui` subcommand. Importing this module never imports textual."""

from __future__ import annotations

import argparse
from typing import Any

from prismrag import hookimpl


@hookimpl
def register_commands(subparsers: Any) -> None:
    """Add `tui [RECIPE]` to the `prism` parser's subcommands."""
    p = subparsers.add_parser("tui", help="the terminal UI: pick a recipe, ingest, search, evaluate")
    p.add_argument("recipe", nargs="?", default=None, help="a recipe file to open (default: pick one)")
    p.add_argument("--recipes-dir", default="recipes", help="where to look for recipes (default: recipes/)")
    p.add_argument("--light", action="store_true", help="start with the light theme")
    p.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from .app import PrismApp
    except ImportError as exc:  # textual is an optional extra
        from prismrag import MissingDependencyError

        raise MissingDependencyError("prism tui", "textual", "tui") from exc
    app = PrismApp(recipe=args.recipe, recipes_dir=args.recipes_dir, light=args.light)
    app.run()
    return app.return_code or 0
