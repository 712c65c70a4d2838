"""`prism`: the command line. Imports stay light until a command needs a model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import PrismError
from .support.terminal import printable


def _engine(args: argparse.Namespace):  # noqa: ANN202
    from .engine import Engine

    return Engine.from_file(args.recipe)


def cmd_validate(args: argparse.Namespace) -> int:
    from .recipe import validate_recipe_file
    from .registry import Registry

    built = validate_recipe_file(args.recipe, Registry())
    spec, source = built.spec, built.source
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
    if not args.models:
        return 0
    problems = _model_problems(built)
    for where, message in problems:
        print(f"  {where}: {message}", file=sys.stderr)
    print(f"  models: {'all load' if not problems else f'{len(problems)} cannot be loaded'}")
    return 2 if problems else 0


def _model_problems(built: Any) -> list[tuple[str, str]]:
    """Load every model the recipe names (encoders, then rerankers that have one); what fails."""
    parts: list[tuple[str, Any]] = [(f"retrievers.{n}.encoder", r.encoder.dimension) for n, r in built.retrievers.items()]
    for i, rr in enumerate(built.rerankers):
        load = getattr(type(rr), "model", None)  # a method, or a property that loads on access
        if isinstance(load, property):
            parts.append((f"rerank[{i}]", lambda rr=rr: rr.model))
        elif callable(load):
            parts.append((f"rerank[{i}]", rr.model))
    problems = []
    for where, load in parts:
        try:
            load()
        except PrismError as exc:
            problems.append((where, str(exc)))
        except Exception as exc:  # a diagnostic command: report what the library said, per model
            problems.append((where, f"{type(exc).__name__}: {exc}"))
    return problems


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
    rate = f" ({report.items_per_second:,.1f} items/s)" if report.added + report.updated else ""
    print(
        f"{engine.name}: {report.loaded} items loaded; {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.deleted} deleted{rate}"
    )
    for name, n in report.encoded.items():
        print(f"  {name}: {n} encoded, {report.cache_hits.get(name, 0)} from cache")
    for owner, n in report.kept.items():
        print(f"  kept {n} item{'s' if n != 1 else ''} added by {owner!r} (not from the sources; `prism items list "
              f"{args.recipe} --owner {owner}` shows them)")
    if report.errors:
        print(f"  {len(report.errors)} skipped:", file=sys.stderr)
        for err in report.errors[:50]:
            print(f"    {printable(err)}", file=sys.stderr)
    return 0


def _snippet(payload: dict[str, Any], width: int = 90) -> str:
    from .types import time_span_label

    text = payload.get("text") or payload.get("transcript") or payload.get("path") or ""
    text = " ".join(str(text).split())
    span = time_span_label(payload)
    if span:  # a time span of a recording: where in the file, then what is said there
        text = f"{span}  {text}" if text and text != payload.get("path") else span
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_weights(values: Sequence[str]) -> dict[str, float] | None:
    """`--weight NAME=NUMBER` options as fusion weights (None when none were given)."""
    weights: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            weights[name.strip()] = float(number)
            if not 0 <= weights[name.strip()] <= 1e6:  # also refuses nan and inf
                raise ValueError
        except ValueError:
            raise PrismError(f"--weight {value!r}: expected RETRIEVER=NUMBER (0 to 1e6), e.g. --weight dense=0.7") from None
    return weights or None


def cmd_search(args: argparse.Namespace) -> int:
    from .explain import explain, explanation_lines
    from .filters import parse_filter_expressions
    from .query import query_source

    server = args.server or os.environ.get("PRISM_SERVER")
    if server:  # a running `prism serve` answers: no model loads here
        from .server.client import search_remote

        return search_remote(server, args)
    flt = parse_filter_expressions(args.filter or [])
    weights = parse_weights(args.weights or [])
    source = query_source(args.query, args.modality)
    if source is not None:
        print(f"query: read from the file {source} (pass --modality text to search these words instead)", file=sys.stderr)
    with _engine(args) as engine:
        result = engine.search_detailed(args.query, top_k=args.top_k, filter=flt, modality=args.modality,
                                        weights=weights)
    if args.json:
        print(json.dumps([h.to_dict() for h in result.hits], indent=2, default=str))
        return 0
    if not result.hits:
        print("no results")
        for note in result.notes:
            print(f"  {printable(note)}", file=sys.stderr)
    for hit in result.hits:
        print(f"{hit.rank:>3}. {hit.score:9.4f}  {printable(hit.id, newlines=False)}  [{hit.modality.value}]")
        print(f"      {printable(_snippet(dict(hit.payload)))}")
        if args.explain:
            for line in explanation_lines(explain(hit, result.retrievers, result.top_ks)):
                print(f"      {printable(line)}")
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
    if not info["ingested"]:
        print(f"  store: {info['store']['use']} at {info['store']['location']}: nothing ingested yet, "
              f"run `prism ingest {info['source']}`")
    else:
        print(f"  store: {info['store']['use']} at {info['store']['location']}, {info['points']} points"
              + (f", {info['store']['disk_bytes'] / 1e6:.1f} MB on disk" if info["store"]["disk_bytes"] else ""))
    for name, r in info["retrievers"].items():
        dim = f"{r['dimension']}-d " if r["dimension"] else ""
        print(f"  {name}: {r['encoder']}, {dim}{r['kind']}" + (f" {r['distance']}" if r["distance"] else "")
              + f"; queries: {', '.join(r['query_modalities'])}")
    print(f"  fusion: {info['fusion'] or 'none'}; rerank: {', '.join(info['rerank']) or 'none'}")
    if info["ingested"]:
        print(f"  payload fields: {printable(', '.join(info['payload_keys']), newlines=False)}")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    """Print a shell completion script for `prism` (subcommands, options, recipe files)."""
    try:
        import shtab
    except ImportError:
        raise PrismError("shell completion needs shtab: pip install shtab") from None
    parser = build_parser()
    for action in _all_actions(parser):
        if action.dest in ("recipe", "recipe_a", "recipe_b", "query", "data", "out", "index_dir"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    print(shtab.complete(parser, shell=args.shell))
    return 0


def _all_actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)


RECIPE_HELP = "a recipe file (YAML or TOML)"


def _server_search(argv: Sequence[str] | None) -> bool:
    """`prism search --server URL ...` (or with $PRISM_SERVER): a server answers, no plugin loads."""
    args = list(sys.argv[1:] if argv is None else argv)
    return bool(args) and args[0] == "search" and (
        bool(os.environ.get("PRISM_SERVER")) or any(a == "--server" or a.startswith("--server=") for a in args))


def _light_command(argv: Sequence[str] | None) -> str | None:
    """The plugin command parsed from its own entry point alone, no other plugin loaded: `tui`
    (its screens load plugins when they need them, and never when it searches a server)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "tui" if args and args[0] == "tui" else None


def _add_builtin_command(sub: Any, name: str) -> bool:
    """Let prismrag's own entry point `name` add its subcommand; False when it is not installed."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="prismrag", name=name):
        if ep.dist is None or ep.dist.name == "prismrag":
            ep.load().register_commands(subparsers=sub)
            return True
    return False


def build_parser(plugin_commands: bool = True, only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prism",
        description="prismrag: multimodal retrieval from declarative recipes.",
    )
    parser.add_argument("--version", action="version", version="prismrag 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a recipe (without loading models unless --models)")
    p.add_argument("recipe", help=RECIPE_HELP)
    p.add_argument("--models", action="store_true",
                   help="also load every model the recipe names and report those that are not available")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plugins", help="list installed plugins and their components")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("ingest", help="load a recipe's sources and index them (incremental)")
    p.add_argument("recipe", help=RECIPE_HELP)
    p.add_argument("--rebuild", action="store_true", help="drop the index and re-index from scratch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("search", help="search an ingested recipe")
    p.add_argument("recipe", help=RECIPE_HELP)
    p.add_argument("query", help="text, or a path to a file (its extension sets the modality)")
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="how many hits (default: the recipe's search.top_k)")
    p.add_argument("--weight", dest="weights", action="append", metavar="RETRIEVER=W",
                   help="a retriever's fusion weight for this query, e.g. --weight bm25=0.5 (repeatable)")
    p.add_argument("--filter", action="append", metavar="EXPR", help="KEY=VALUE, KEY!=V, KEY>=N, date>=2024-01-01, KEY=A|B, KEY in [A, B], KEY prefix TEXT, "
                   "KEY contains TEXT, KEY exists, `not` before in/prefix/contains/exists (repeatable; docs/recipes.md)")
    p.add_argument("--modality", choices=["text", "image", "audio", "video", "shape"], default=None)
    p.add_argument("--explain", action="store_true", help="show each hit's provenance and stage timings")
    p.add_argument("--server", metavar="URL", default=None,
                   help="ask a running `prism serve` (RECIPE: its name or file; default: $PRISM_SERVER; key: $PRISM_API_KEY)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", help="counts, vectors and disk use of an ingested recipe")
    p.add_argument("recipe", help=RECIPE_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    if not plugin_commands or (only is not None and _add_builtin_command(sub, only)):
        return parser
    p = sub.add_parser("completion", help="print a shell completion script",
                       description="Print a completion script: `eval \"$(prism completion bash)\"` in ~/.bashrc, "
                                   "or `prism completion zsh > ~/.zfunc/_prism`.")
    p.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell to complete for")
    p.set_defaults(func=cmd_completion)

    # Further commands (eval, compare, tui, ...) come from plugins, built-in ones included.
    from .registry import Registry

    registry = Registry()
    registry.add_commands(sub)
    parser.set_defaults(plugin_errors=registry.load_errors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(plugin_commands=not _server_search(argv), only=_light_command(argv)).parse_args(argv)
    if args.command != "plugins":  # `prism plugins` lists them itself
        for e in getattr(args, "plugin_errors", []):
            print(f"warning: plugin {e.plugin!r} ({e.distribution or 'no distribution'}) was not loaded: {e.error}",
                  file=sys.stderr)
    # Model loading progress bars from the hub and transformers would drown the CLI's own output.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        code = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        return code
    except PrismError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`prism plugins --json | head`): stop quietly, as `git` and `ls` do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
