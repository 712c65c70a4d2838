"""A small deterministic corpus and recipes for the TUI tests (hash encoder, no models)."""

from __future__ import annotations

import textwrap
from pathlib import Path

DOCS = {
    "cats.md": "# Cats\n\nCats are small carnivorous mammals. A cat purrs, sleeps all day and hunts mice at night.",
    "dogs.md": "# Dogs\n\nDogs are loyal companions. A dog barks at strangers and fetches sticks in the park.",
    "boats.md": "# Boats\n\nA sailing boat uses the wind on its sails to cross the sea between harbours.",
    "trains.md": "# Trains\n\nTrains run on rails between stations, pulled by a locomotive or an electric unit.",
    "mice.md": "# Mice\n\nField mice hide from cats and owls; a mouse eats seeds and grain in the barn.",
    "owls.md": "# Owls\n\nOwls hunt at night. An owl can turn its head and hears mice moving under snow.",
}


def write_corpus(root: Path, docs: dict[str, str] = DOCS) -> Path:
    folder = root / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def write_recipe(root: Path, name: str = "animals", *, salt: str = "", rerank: bool = True, extra: str = "") -> Path:
    """Two hash retrievers fused with RRF, optionally an MMR rerank stage."""
    mmr = "rerank: [{use: mmr, retriever: dense, lambda: 0.7, top_n: 10}]\n" if rerank else ""
    text = textwrap.dedent(f"""\
        name: {name}
        description: test recipe over a few animal and transport notes
        store: {{use: qdrant-edge, path: ../store-{name}}}
        sources:
          - {{use: text-files, path: ../docs, glob: "*.md"}}
        retrievers:
          dense:
            encoder: {{use: hash, dimension: 64, salt: "{salt}"}}
            top_k: 20
          words:
            encoder: {{use: hash, dimension: 256, salt: "w{salt}"}}
            top_k: 20
        fusion: {{use: rrf, k: 60, weights: {{dense: 1.0, words: 1.0}}}}
        search: {{top_k: 5}}
        """) + mmr + extra
    path = root / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_beir(root: Path) -> Path:
    """A toy BEIR-layout data set over DOCS with three judged queries."""
    import json

    folder = root / "toy"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for name, text in DOCS.items():
            title, _, body = text.partition("\n\n")
            fh.write(json.dumps({"_id": name.split(".")[0], "title": title.lstrip("# "), "text": body}) + "\n")
    queries = {"q1": "which animal hunts mice", "q2": "crossing the sea with wind", "q3": "rails and stations"}
    with (folder / "queries.jsonl").open("w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    rows = [("q1", "cats", 2), ("q1", "owls", 1), ("q2", "boats", 1), ("q3", "trains", 1)]
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows)
    )
    return folder


def make_image(path: Path, color: tuple[int, int, int] = (200, 40, 40)) -> Path:
    """A small PNG: a coloured square on white, with a stripe (so half-blocks show two colours)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (32, 24), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((4, 4, 20, 18), fill=color)
    draw.rectangle((0, 20, 31, 23), fill=(20, 60, 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
