"""Write a BEIR-layout subset of a data set: its first N documents and the queries judged in them.

Every system in the peer benchmark reads this one folder, so all index the same texts and answer
the same queries. The subset is chosen by `prismrag.datasets.load_dataset(limit_docs=N)`.

    .venv/bin/python scripts/bench/make_subset.py ../shared/data/nfcorpus 1000 /tmp/prism-bench/subset
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prismrag.datasets import load_dataset


def main(source: str, n: int, out: str) -> int:
    ds = load_dataset(source, limit_docs=n)
    folder = Path(out)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for item in ds.items:
            fh.write(json.dumps({"_id": item.id, "title": "", "text": item.text}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for q in ds.queries:
            fh.write(json.dumps({"_id": q.id, "text": q.text}) + "\n")
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q in ds.queries:
            for doc, grade in ds.qrels[q.id].items():
                fh.write(f"{q.id}\t{doc}\t{grade}\n")
    print(f"{folder}: {len(ds.items)} documents, {len(ds.queries)} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
