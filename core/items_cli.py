"""`prism items list|get|count|delete`: the stored items of a recipe, by id or by filter.
Importing this module imports argparse only; the commands load the engine when they run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .hookspecs import hookimpl

FILTER_HELP = (
    "a filter expression, e.g. 'tags contains rag', 'date>=2024-01-01', 'file prefix docs/', "
    "'lang in [en, de]', 'author exists' (repeatable; all must hold; see docs/recipes.md)"
)


def _common(p: argparse.ArgumentParser, filters: bool = True) -> None:
    p.add_argument("recipe", help="the recipe file (YAML or TOML)")
    if filters:
        p.add_argument("--filter", action="append", metavar="EXPR", help=FILTER_HELP)
        p.add_argument("--owner", help="only items of this owner: 'sources' (the recipe's sources) or the owner "
                                       "given to ingest_items (default 'python')")
    p.add_argument("--json", action="store_true", help="print JSON")


@hookimpl
def register_commands(subparsers: Any) -> None:
    """Add `items` with its actions list, get, count and delete."""
    items = subparsers.add_parser("items", help="list, get, count or delete stored items by id or filter")
    actions = items.add_subparsers(dest="action", metavar="ACTION", required=True,
                                   help="list, get, count or delete")

    p = actions.add_parser("list", help="stored items (id, owner, title or text) passing the filters, in id order")
    _common(p)
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20; 0 for all)")
    p.add_argument("--offset", type=int, default=0, help="skip this many first")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("get", help="the whole stored payload of items by id")
    _common(p, filters=False)
    p.add_argument("ids", nargs="+", metavar="ID", help="item ids, e.g. docs/intro.md#0")
    p.set_defaults(func=cmd_get)

    p = actions.add_parser("count", help="how many stored items pass the filters")
    _common(p)
    p.set_defaults(func=cmd_count)

    p = actions.add_parser("delete", help="delete items by id, or every item passing the filters (asks for --yes)")
    _common(p)
    p.add_argument("ids", nargs="*", metavar="ID", help="item ids to delete")
    p.add_argument("--yes", action="store_true", help="delete by filter or owner without showing the count first")
    p.set_defaults(func=cmd_delete)


def _engine(args: argparse.Namespace) -> Any:
    from .engine import Engine

    return Engine.from_file(args.recipe)


def printable(value: object, newlines: bool = True) -> str:
    """`support.terminal.printable`, imported when a command prints (this module stays light)."""
    from .support.terminal import printable as safe

    return safe(value, newlines)


def _line(item: Any, width: int = 70) -> str:
    text = " ".join(str(item.payload.get("title") or item.text or item.payload.get("path") or "").split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    return printable(f"{item.id}  [{item.owner}]  {text}", newlines=False)  # no escape sequence reaches the terminal


def cmd_list(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        found = engine.list_items(args.filter, owner=args.owner, limit=args.limit or None, offset=args.offset)
        total = engine.count(args.filter, owner=args.owner)
    if args.json:
        print(json.dumps({"total": total, "items": [i.to_dict() for i in found]}, indent=2, default=str))
        return 0
    for item in found:
        print(_line(item))
    shown = f"{args.offset + 1}-{args.offset + len(found)} of " if found and len(found) < total else ""
    print(f"{shown}{total} item{'s' if total != 1 else ''}", file=sys.stderr)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        found = engine.get_items(args.ids)
    missing = [i for i in args.ids if i not in found]
    if args.json:
        print(json.dumps({"items": [i.to_dict() for i in found.values()], "missing": missing}, indent=2, default=str))
    else:
        for item in found.values():
            print(printable(json.dumps(item.to_dict(), indent=2, default=str, ensure_ascii=False)))  # C1, bidi
    if missing:
        print(printable(f"no stored item with id {', '.join(map(repr, missing))} (`prism items list {args.recipe}` "
                        f"lists them)"), file=sys.stderr)
    return 1 if missing else 0


def cmd_count(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        n = engine.count(args.filter, owner=args.owner)
    print(json.dumps({"count": n}) if args.json else n)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from .errors import PrismError

    if not args.ids and not args.filter and not args.owner:
        raise PrismError("prism items delete: give item ids, --filter or --owner")
    with _engine(args) as engine:
        if not args.ids and not args.yes:
            n = engine.count(args.filter, owner=args.owner)
            print(f"{n} item{'s' if n != 1 else ''} match; add --yes to delete them", file=sys.stderr)
            return 1
        gone = engine.delete(args.ids or None, filter=args.filter, owner=args.owner)
    if args.json:
        print(json.dumps({"deleted": gone}))
    else:
        print(f"deleted {len(gone)} item{'s' if len(gone) != 1 else ''}")
    missing = sorted(set(args.ids) - set(gone))
    if missing:
        print(printable(f"not deleted (no such item, or not passing the filter): {', '.join(missing)}"), file=sys.stderr)
    return 0
