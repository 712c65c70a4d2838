"""Reading a BEIR folder for the benchmarks, with nothing but the standard library (the peers'
venv has no prismrag)."""

from __future__ import annotations

import json
from pathlib import Path


def read_beir(folder: Path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Document ids, document texts (title and text joined as prismrag's BEIR loader does), and
    the (id, text) of each query judged in qrels/test.tsv."""
    ids, texts = [], []
    for line in (folder / "corpus.jsonl").open(encoding="utf-8"):
        rec = json.loads(line)
        ids.append(rec["_id"])
        texts.append("\n".join(p for p in (rec.get("title"), rec.get("text")) if p))
    judged = {line.split("\t")[0] for line in (folder / "qrels" / "test.tsv").open() if not line.startswith("query-id")}
    queries = [json.loads(line) for line in (folder / "queries.jsonl").open(encoding="utf-8")]
    return ids, texts, [(q["_id"], q["text"]) for q in queries if q["_id"] in judged]
