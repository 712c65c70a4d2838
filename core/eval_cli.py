"""`prism eval` and `prism compare`. Importing this module imports argparse only; the commands
import the engine (and, through its plugins, torch) when they run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .hookspecs import hookimpl


def _at_least(low: int) -> Any:
    """An argparse type: a whole number >= low (argparse turns the ValueError into a usage error)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"number >= {low}"
    return parse


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR",
                   help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), a media set (corpus/ of videos or "
                        "recordings, queries.jsonl, qrels/, optional qrels/<split>.spans.tsv time slots) or a "
                        "labelled media folder (labels.csv)")
    p.add_argument("--split", default="test", help="qrels/<split>.tsv, or the labels.csv split (default: test)")
    p.add_argument("--queries", choices=["auto", "label", "example", "leave-one-out"], default="auto",
                   help="labelled media: label text as queries, held-out items (query by example), or "
                        "leave-one-out (every item queries all the others); "
                        "auto = label text when the recipe takes text queries")
    p.add_argument("--limit-docs", type=_at_least(1), default=None, metavar="N",
                   help="index only the first N documents (and score the queries judged in them)")
    p.add_argument("--limit-queries", type=_at_least(1), default=None, metavar="N", help="run only the first N queries")
    p.add_argument("--depth", type=_at_least(10), default=100, help="results kept per query (default 100, for Recall@100)")
    p.add_argument("--no-ann-check", action="store_true", help="skip the exact-search run that measures ANN recall")
    p.add_argument("--json", action="store_true", help="print one JSON object (metric names as keys)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@hookimpl
def register_commands(subparsers: Any) -> None:
    """Add the `eval` and `compare` subcommands to the `prism` parser's subparsers."""
    sub = subparsers
    p = sub.add_parser("eval", help="score a recipe on a data set (nDCG@10, recall, MRR, MAP, latency; "
                                    "time-code accuracy where the set has time slots)")
    p.add_argument("recipe", help="the recipe file to score (YAML or TOML)")
    _data_options(p)
    p.add_argument("--out", metavar="DIR", help="write report.json, per_query.jsonl and run.trec here")
    p.add_argument("--index-dir", metavar="DIR",
                   help="build the index here instead of a temporary folder (kept, reused incrementally)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", help="two recipes on the same queries: deltas, p-values, wins and losses")
    p.add_argument("recipe_a", help="a recipe, or a folder written by `prism eval --out` (not re-run)")
    p.add_argument("recipe_b", help="a recipe, or a folder written by `prism eval --out` (not re-run)")
    _data_options(p)
    p.add_argument("--metric", default="nDCG@10", help="the metric that ranks per-query wins and losses")
    p.add_argument("--show", type=_at_least(0), default=5, help="how many most-won and most-lost queries to list")
    p.add_argument("--permutations", type=_at_least(1), default=10_000, help="sign flips of the randomization test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="write comparison.json and each recipe's results (a/, b/) here")
    p.set_defaults(func=cmd_compare)


def _query_mode(args: argparse.Namespace, recipes: list[str], registry: Any) -> str:
    """`auto` becomes `label` when every recipe takes text queries, else `example`."""
    if args.queries != "auto":
        return args.queries
    from .recipe import build_recipe, load_recipe_spec
    from .types import Modality

    for path in recipes:
        built = build_recipe(*load_recipe_spec(path), registry)
        if not any(r.encoder.accepts(Modality.TEXT, "query") for r in built.retrievers.values()):
            return "example"
    return "label"


def _load(args: argparse.Namespace, recipes: list[str]) -> tuple[Any, Any]:
    from .datasets import DatasetError, detect_layout, load_dataset
    from .registry import Registry

    if not args.data:
        raise DatasetError("--data DIR is required to evaluate a recipe (a BEIR or labelled media folder)")
    registry = Registry()
    folder = Path(args.data)
    mode = _query_mode(args, recipes, registry) if detect_layout(folder) == "labelled" else "auto"
    dataset = load_dataset(
        folder, split=args.split, queries=mode, registry=registry,  # type: ignore[arg-type]
        limit_docs=args.limit_docs, limit_queries=args.limit_queries,
    )
    return dataset, registry


def _run(recipe: str, dataset: Any, registry: Any, args: argparse.Namespace, index_dir: str | None, label: str = "") -> Any:
    from .evaluation import evaluate
    from .progress import TerminalProgress

    progress = TerminalProgress(enabled=False if args.quiet else None)
    if progress.enabled and label:
        print(label, file=sys.stderr)
    try:
        return evaluate(recipe, dataset, registry=registry, index_dir=index_dir, depth=args.depth,
                        ann_check=not args.no_ann_check, progress=progress)
    finally:
        progress.close()


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import format_report

    dataset, registry = _load(args, [args.recipe])
    report = _run(args.recipe, dataset, registry, args, args.index_dir)
    written = report.write(args.out) if args.out else []
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
        for path in written:
            print(f"  wrote {path}")
    from .plan_recall import gate_failures

    failures = gate_failures(report.plan_recall)
    for problem in failures:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if failures else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_reports, format_comparison
    from .evaluation import EvalReport
    from .metrics import METRICS

    if args.metric not in METRICS:
        print(f"error: --metric must be one of {', '.join(METRICS)}", file=sys.stderr)
        return 2

    saved = {r: (Path(r) / "report.json").is_file() for r in (args.recipe_a, args.recipe_b)}
    recipes = [r for r, is_saved in saved.items() if not is_saved]
    dataset, registry = _load(args, recipes) if recipes else (None, None)
    a, b = (
        EvalReport.read(r) if saved[r] else _run(r, dataset, registry, args, None, f"{tag}: {r}")
        for tag, r in (("A", args.recipe_a), ("B", args.recipe_b))
    )
    where = [(r.dataset.get("path"), r.dataset.get("split")) for r in (a, b)]
    if where[0] != where[1]:
        print(f"warning: A and B were evaluated on different data ({where[0]} vs {where[1]}); "
              f"only shared query ids are compared", file=sys.stderr)
    result = compare_reports(a, b, by=args.metric, show=args.show, permutations=args.permutations, seed=args.seed)
    if args.out:
        out = Path(args.out)
        for report, tag in ((a, "a"), (b, "b")):
            if not saved[args.recipe_a if tag == "a" else args.recipe_b]:
                report.write(out / tag)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.json").write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_comparison(result))
    return 0
