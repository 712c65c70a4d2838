"""`prism`: the command line. Imports stay light until a command needs a model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import PrismError


def _engine(args: argparse.Namespace):  # noqa: ANN202
    from .engine import Engine

    return Engine.from_file(args.recipe)


def cmd_validate(args: argparse.Namespace) -> int:
    from .recipe import build_recipe, load_recipe_spec
    from .registry import Registry

    spec, source, base_dir = load_recipe_spec(args.recipe)
    built = build_recipe(spec, source, base_dir, Registry())
    print(f"{source}: ok (recipe {spec.name!r})")
    for name, r in built.retrievers.items():
        queries = ", ".join(sorted(m.value for m in r.encoder.query_modalities))
        docs = ", ".join(sorted(m.value for m in r.encoder.document_modalities))
        print(f"  retriever {name}: {r.encoder.name} -> {r.index.name} index; documents: {docs}; queries: {queries}")
    if built.fusion:
        print(f"  fusion: {built.fusion.name}")
    for rr in built.rerankers:
        print(f"  rerank: {rr.name}")
    print(f"  store: {built.store.name}; sources: {', '.join(s.name for s in built.sources) or 'none'}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .registry import Registry

    registry = Registry()
    components = [info.describe() for info in registry.all_components()]
    errors = [e.__dict__ for e in registry.load_errors]
    if args.json:
        print(json.dumps({"components": components, "load_errors": errors}, indent=2))
        return 0
    rows = sorted(components, key=lambda c: (c["kind"], c["name"]))
    print(f"{'KIND':<9} {'NAME':<22} {'MODALITIES':<22} {'OUTPUT':<7} {'FROM':<28}")
    for c in rows:
        mods = ",".join(c.get("document_modalities", [])) if c["kind"] == "encoder" else ""
        origin = f"{c['distribution'] or c['plugin']} {c['version'] or ''}".strip()
        print(f"{c['kind']:<9} {c['name']:<22} {mods:<22} {c.get('output', ''):<7} {origin:<28}")
    for e in errors:
        print(f"failed to load plugin {e['plugin']} ({e['distribution']}): {e['error']}", file=sys.stderr)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from .progress import TerminalProgress

    progress = TerminalProgress(enabled=False if args.quiet else None)
    with _engine(args) as engine:
        report = engine.ingest(progress, rebuild=args.rebuild)
    progress.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(
        f"{engine.name}: {report.loaded} items loaded; {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.deleted} deleted "
        f"({report.items_per_second:,.1f} items/s)"
    )
    for name, n in report.encoded.items():
        print(f"  {name}: {n} encoded, {report.cache_hits.get(name, 0)} from cache")
    if report.errors:
        print(f"  {len(report.errors)} skipped:", file=sys.stderr)
        for err in report.errors[:50]:
            print(f"    {err}", file=sys.stderr)
    return 0


def _snippet(payload: dict[str, Any], width: int = 90) -> str:
    text = payload.get("text") or payload.get("path") or ""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_search(args: argparse.Namespace) -> int:
    from .explain import explain, explanation_lines
    from .filters import parse_filter_expressions

    flt = parse_filter_expressions(args.filter or [])
    with _engine(args) as engine:
        result = engine.search_detailed(args.query, top_k=args.top_k, filter=flt, modality=args.modality)
    if args.json:
        print(json.dumps([h.to_dict() for h in result.hits], indent=2, default=str))
        return 0
    if not result.hits:
        print("no results")
    for hit in result.hits:
        print(f"{hit.rank:>3}. {hit.score:9.4f}  {hit.id}  [{hit.modality.value}]")
        print(f"      {_snippet(dict(hit.payload))}")
        if args.explain:
            for line in explanation_lines(explain(hit, result.retrievers, result.top_ks)):
                print(f"      {line}")
    if args.explain:
        total = sum(v for k, v in result.timings.items())
        stages = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in result.timings.items())
        print(f"\n{total * 1000:.1f} ms: {stages}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        info = engine.info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"recipe {info['recipe']} ({info['source']})")
    print(f"  store: {info['store']['use']} at {info['store']['location']}, {info['points']} points"
          + (f", {info['store']['disk_bytes'] / 1e6:.1f} MB on disk" if info["store"]["disk_bytes"] else ""))
    for name, r in info["retrievers"].items():
        dim = f"{r['dimension']}-d " if r["dimension"] else ""
        print(f"  {name}: {r['encoder']}, {dim}{r['kind']}" + (f" {r['distance']}" if r["distance"] else "")
              + f"; queries: {', '.join(r['query_modalities'])}")
    print(f"  fusion: {info['fusion'] or 'none'}; rerank: {', '.join(info['rerank']) or 'none'}")
    print(f"  payload fields: {', '.join(info['payload_keys'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prism",
        description="prismrag: multimodal retrieval from declarative recipes.",
    )
    parser.add_argument("--version", action="version", version="prismrag 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a recipe without loading models")
    p.add_argument("recipe")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plugins", help="list installed plugins and their components")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("ingest", help="load a recipe's sources and index them (incremental)")
    p.add_argument("recipe")
    p.add_argument("--rebuild", action="store_true", help="drop the index and re-index from scratch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="search an ingested recipe")
    p.add_argument("recipe")
    p.add_argument("query", help="text, or a path to a file (its extension sets the modality)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--filter", action="append", metavar="EXPR", help="KEY=VALUE, KEY!=V, KEY>=N, KEY<N, KEY=A|B (repeatable)")
    p.add_argument("--modality", choices=["text", "image", "audio", "video", "shape"], default=None)
    p.add_argument("--explain", action="store_true", help="show each hit's provenance and stage timings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", help="counts, vectors and disk use of an ingested recipe")
    p.add_argument("recipe")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    # Further commands (eval, compare, tui, ...) come from plugins, built-in ones included.
    from .registry import Registry

    Registry().add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Model loading progress bars from the hub and transformers would drown the CLI's own output.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return args.func(args)
    except PrismError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
