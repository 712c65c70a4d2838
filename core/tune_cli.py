"""`prism tune`: fit a recipe's fusion settings on labelled queries and write the tuned recipe.
Importing this module imports argparse only; the command imports the engine when it runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .eval_cli import _at_least
from .hookspecs import hookimpl


@hookimpl
def register_commands(subparsers: Any) -> None:
    """Add the `tune` subcommand to the `prism` parser's subparsers."""
    p = subparsers.add_parser(
        "tune", help="fit a recipe's fusion (method, RRF k, weights, normalization, depths) on labelled queries")
    p.add_argument("recipe", help="the recipe file to tune (YAML or TOML)")
    p.add_argument("--data", metavar="DIR", required=True,
                   help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a labelled media folder")
    p.add_argument("--split", default=None,
                   help="the split tuned on (default: train when the data set has it, else test)")
    p.add_argument("--test-split", default=None, metavar="SPLIT",
                   help="the held-out split scored after the search (default: test, when tuning on another "
                        "split that exists); `none` cross-validates on the tuning split instead")
    p.add_argument("--queries", choices=["auto", "label", "example"], default="auto",
                   help="labelled media: label text as queries, or held-out items (as `prism eval`)")
    p.add_argument("--metric", default="nDCG@10", help="the metric maximised (default nDCG@10)")
    p.add_argument("--budget", type=_at_least(1), default=300,
                   help="settings tried: the whole grid when it fits, else a seeded random sample (default 300)")
    p.add_argument("--folds", type=_at_least(2), default=5, help="cross-validation folds with one split (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seeds the random search, the folds and the test")
    p.add_argument("--permutations", type=_at_least(1), default=10_000, help="sign flips of the randomization test")
    p.add_argument("--max-depth", type=_at_least(10), default=None, metavar="N",
                   help="deepest candidate list tried per retriever (default: twice its top_k)")
    p.add_argument("--keep-depths", action="store_true",
                   help="keep each retriever's top_k as the recipe has it (tuning for a top-10 metric tends to "
                        "shorten the lists, which costs Recall@100 and feeds a reranker fewer candidates)")
    p.add_argument("--out", metavar="FILE", help="the tuned recipe (default: RECIPE.tuned.yaml beside the recipe)")
    p.add_argument("--index-dir", metavar="DIR", help="build the index here instead of a temporary folder")
    p.add_argument("--limit-docs", type=_at_least(1), default=None, metavar="N", help="index only the first N documents")
    p.add_argument("--limit-queries", type=_at_least(1), default=None, metavar="N", help="use only the first N queries")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tune)


def default_out(recipe: str | Path) -> Path:
    """`recipes/x.yaml` -> `recipes/x.tuned.yaml` (a TOML recipe is written as YAML)."""
    path = Path(recipe)
    return path.with_name(f"{path.stem}.tuned.yaml")


def cmd_tune(args: argparse.Namespace) -> int:
    from .datasets import detect_layout
    from .eval_cli import _query_mode
    from .metrics import METRICS
    from .progress import TerminalProgress
    from .recipe_writer import write_tuned_recipe
    from .registry import Registry
    from .tune_report import format_tune, tune_recipe

    metric = {m.lower(): m for m in METRICS}.get(args.metric.lower())
    if metric is None:
        print(f"error: --metric must be one of {', '.join(METRICS)}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out(args.recipe)
    if out.resolve() == Path(args.recipe).resolve():
        print("error: --out names the recipe itself; write the tuned recipe to another file", file=sys.stderr)
        return 2
    registry = Registry()
    queries = args.queries
    if queries == "auto" and detect_layout(Path(args.data)) == "labelled":
        queries = _query_mode(args, [args.recipe], registry)
    progress = TerminalProgress(enabled=False if args.quiet else None)
    try:
        report = tune_recipe(
            args.recipe, args.data, split=args.split, test_split=args.test_split, metric=metric,
            budget=args.budget, folds=args.folds, seed=args.seed, permutations=args.permutations,
            max_depth=args.max_depth, keep_depths=args.keep_depths, registry=registry, index_dir=args.index_dir, limit_docs=args.limit_docs,
            limit_queries=args.limit_queries, queries=queries, progress=progress,
        )
    finally:
        progress.close()
    written = write_tuned_recipe(args.recipe, out, {"use": report.tuned.fusion, **report.tuned.fusion_params()},
                                 dict(report.tuned.depths), report.header(), registry)
    if args.json:
        print(json.dumps(report.to_json() | {"out": str(written)}, indent=2))
    else:
        print(format_tune(report))
        print(f"  wrote {written}")
    return 0
