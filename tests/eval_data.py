"""Small evaluation data sets built on disk for tests: a BEIR folder and a labelled image folder."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

TOPICS = {
    "cats": "cat kitten purr whiskers feline mouse hunt",
    "dogs": "dog puppy bark leash canine fetch stick",
    "boats": "boat sail harbour anchor wind mast keel",
    "trains": "train rail station locomotive track carriage",
    "bread": "bread flour yeast oven dough crust bakery",
    "stars": "star galaxy telescope orbit planet nebula",
}


def write_beir(root: Path, docs_per_topic: int = 6, extra_qrels: str = "", seed: int = 0) -> Path:
    """A BEIR folder: docs_per_topic documents per topic, one query per topic judged on them.

    Each document mixes its topic's words with noise words; grades are 2 for the first two
    documents of a topic and 1 for the others. `extra_qrels` lines are appended to the qrels.
    """
    rng = np.random.default_rng(seed)
    noise = [f"noise{i}" for i in range(40)]
    folder = root / "beir"
    (folder / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for t, (topic, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        for d in range(docs_per_topic):
            picked = list(rng.choice(vocab, size=4)) + list(rng.choice(noise, size=6))
            corpus.append({"_id": f"{topic}-{d}", "title": "", "text": " ".join(picked)})
            qrels.append(f"q{t}\t{topic}-{d}\t{2 if d < 2 else 1}")
        queries.append({"_id": f"q{t}", "text": " ".join(vocab[:3])})
    queries.append({"_id": "q-unjudged", "text": "nothing judged"})
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n" + extra_qrels)
    return folder


def write_recipe(root: Path, name: str, retrievers: str, extra: str = "") -> Path:
    path = root / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nstore: {{use: qdrant-edge, path: never-used}}\nretrievers:\n"
        + textwrap.indent(textwrap.dedent(retrievers), "  ")
        + textwrap.dedent(extra)
    )
    return path


HASH_RETRIEVER = """\
dense:
  encoder: {use: hash, dimension: %d}
  top_k: 50
"""

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230), "yellow": (230, 220, 20)}


def write_images(root: Path, per_label: int = 5, with_split: bool = True, seed: int = 0) -> Path:
    """A labelled image folder: per_label small BMP images per colour, in sub-folders, with a
    labels.csv (file names only, resolved by the loader) and a split column (first image = test)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / "images"
    rows = ["file,label,split" if with_split else "file,label"]
    for label, rgb in COLORS.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            pixels = np.empty((16, 16, 3), np.uint8)
            pixels[:] = rgb
            spots = rng.integers(0, 16, size=(6, 2))
            pixels[spots[:, 0], spots[:, 1]] = rng.integers(0, 255, size=(6, 3))
            name = f"{label}_{i}.bmp"
            Image.fromarray(pixels).save(folder / label / name)
            rows.append(f"{name},{label},{'test' if i == 0 else 'train'}" if with_split else f"{name},{label}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder
