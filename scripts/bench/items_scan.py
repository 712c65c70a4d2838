"""How long listing/counting by filter and the empty-filter hint take (they read every payload):
5,000 short text items on qdrant-edge with the BM25 encoder. Run: .venv/bin/python scripts/bench/items_scan.py"""

from __future__ import annotations

import sys
import tempfile
import textwrap
import time
from pathlib import Path

import prismrag
from prismrag import Item, Modality

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000

with tempfile.TemporaryDirectory() as tmp:
    recipe = Path(tmp) / "b.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: b
        store: {use: qdrant-edge, path: store}
        retrievers:
          keywords: {encoder: {use: bm25}}
        """))
    engine = prismrag.load_recipe(recipe)
    items = [Item(f"doc/{i}", Modality.TEXT, f"document {i} about topic {i % 50} " * 20,
                  {"file": f"folder{i % 10}/doc{i}.md", "tags": [f"t{i % 7}", "all"], "date": f"2024-01-{1 + i % 28:02d}"})
             for i in range(N)]
    t = time.perf_counter()
    engine.ingest_items(items)
    print(f"ingest {N}: {time.perf_counter() - t:.2f} s")
    for label, call in [
        ("count()", lambda: engine.count()),
        ("count('file prefix folder3/')", lambda: engine.count("file prefix folder3/")),
        ("list_items('tags contains t3', limit=20)", lambda: engine.list_items("tags contains t3", limit=20)),
        ("search with filter 'file prefix folder3/'", lambda: engine.search("topic 3", filter="file prefix folder3/")),
        ("search with no match + hint", lambda: engine.search_detailed("topic 3", filter="file=doc3.md").notes),
    ]:
        t = time.perf_counter()
        out = call()
        ms = 1000 * (time.perf_counter() - t)
        shown = out if isinstance(out, int) or (out and isinstance(out[0], str)) else f"{len(out)} results"
        print(f"{label}: {ms:.0f} ms -> {shown}")
    engine.close()
