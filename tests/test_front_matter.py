"""Markdown front matter read into metadata, not text (issue 15.2), and titles found in linear time."""

from __future__ import annotations

import time
from pathlib import Path

from test_loaders import load, split, write

from prismrag.plugins import loaders as L
from prismrag.plugins._front_matter import front_matter
from prismrag.plugins._text import text_title

POST = """---
title: "Hybrid search, explained"
tags: [rag, search]
date: 2024-03-05
updated: 2024-03-06 10:30:00
rating: 4.5
authors:
  - name: Ada
---

# A heading that is not the title

Dense and sparse retrieval, fused.
"""


def test_front_matter_becomes_metadata_and_not_text(tmp_path: Path) -> None:
    write(tmp_path, "blog/post.md", POST)
    (item,), errors = split(load(L.TextFilesLoader, tmp_path, path="blog"))
    assert errors == []
    assert item.metadata == {
        "title": "Hybrid search, explained", "tags": ["rag", "search"], "date": "2024-03-05",
        "updated": "2024-03-06T10:30:00", "rating": 4.5, "authors": [{"name": "Ada"}], "file": "post.md",
        "headings": ["A heading that is not the title"],
    }
    assert "---" not in item.text and "tags" not in item.text and item.text.startswith("# A heading")
    start = POST.index("# A heading")
    assert (item.span.start, item.span.end) == (start, len(POST))  # spans count from the file's start
    (whole,), _ = split(load(L.TextFilesLoader, tmp_path, path="blog", front_matter=False, chunk=None))
    assert whole.text.startswith("---\ntitle:") and whole.metadata["title"] == "A heading that is not the title"


def test_bad_front_matter_is_reported_and_reserved_keys_left_out(tmp_path: Path) -> None:
    write(tmp_path, "a/bad.md", "---\ntitle: [unclosed\n---\nBody.\n")
    write(tmp_path, "a/list.md", "---\n- a\n- b\n---\nBody.\n")
    write(tmp_path, "a/reserved.md", "---\nsource: web\ntext: nope\nlang: en\n---\nBody text.\n")
    write(tmp_path, "a/rule.md", "---\n\nA thematic break above, and no closing line.\n")
    items, errors = split(load(L.TextFilesLoader, tmp_path, path="a", chunk=None))
    assert [i.id for i in items] == ["reserved.md", "rule.md"]
    assert items[0].metadata == {"lang": "en", "file": "reserved.md", "title": "reserved"}
    assert items[1].text.startswith("---")
    messages = [str(e) for e in errors]
    assert messages[0].startswith("a/bad.md: front matter is not valid YAML (line 3)")
    assert messages[0].endswith("skipped. Fix the YAML, or set `front_matter: false` on this source.")
    assert "must be a YAML mapping" in messages[1]
    assert messages[2] == (
        "a/reserved.md: front matter key(s) ['source', 'text'] are written by the engine for every item and were "
        "left out (rename them)"
    )


def test_front_matter_function() -> None:
    assert front_matter("no front matter\n---\n") == (0, {}, [])
    assert front_matter("---\n---\nbody") == (8, {}, [])
    end, fields, dropped = front_matter("---\r\nk: 1\r\n...\r\nbody")
    assert fields == {"k": 1} and dropped == [] and end == len("---\r\nk: 1\r\n...\r\n")


def test_titles_are_found_in_linear_time() -> None:
    cases = {
        "spaces.md": " " * 100_000,
        "spaces.rst": " " * 100_000,
        "long-line.rst": "a" + " " * 100_000 + "\nb",
        "hashes.md": "# " + " " * 100_000 + "x",
        "many-headings.md": "```\n# a\n" * 20_000,
        "tabs.md": "#\t" + "\t" * 100_000 + "\n",
    }
    for name, text in cases.items():
        t = time.perf_counter()
        text_title(text, Path(name))
        assert time.perf_counter() - t < 0.2, name
    assert text_title("```\n# not this\n```\n## Real one ##\n", Path("a.md")) == "Real one"
    assert text_title("    # code\n#NoSpace\n# C# ###\n", Path("a.md")) == "C#"
    assert text_title("Intro\n\nAPI reference\n=============\n", Path("a.rst")) == "API reference"
    assert text_title("plain", Path("notes.txt")) == "notes"
