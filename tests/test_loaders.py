"""Behaviour of the chunker and the built-in loaders on small files written per test."""

from __future__ import annotations

import json
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from prismrag.contracts import RESERVED_PAYLOAD_KEYS, Context, Loader
from prismrag.errors import IngestError, ItemError
from prismrag.plugins import loaders as L
from prismrag.registry import Registry
from prismrag.support.chunking import ChunkParams, chunk_text
from prismrag.types import Item, Media, Modality, extensions_of

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def split(entries: list[Item | ItemError]) -> tuple[list[Item], list[ItemError]]:
    items = [e for e in entries if isinstance(e, Item)]
    errors = [e for e in entries if isinstance(e, ItemError)]
    assert len(items) + len(errors) == len(entries)
    return items, errors


def write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def loader_context(base_dir: Path) -> Context:
    """A context whose `loader_for_path` maps extensions to this module's loaders, as the engine does."""
    by_ext = {ext: cls for cls in (L.TextFilesLoader, L.ImagesLoader) for ext in cls.extensions}
    return Context(
        base_dir=base_dir,
        where="test.yaml: sources[0]",
        loader_for_path=lambda p: by_ext.get(p.suffix.lower()),
    )


def load(cls: type[Loader], base_dir: Path, **params) -> list[Item | ItemError]:
    return list(cls(cls.Params(**params), loader_context(base_dir)).load())


# ------------------------------------------------------------------------------------ chunking


def check_spans(text: str, spans: list[tuple[int, int]], p: ChunkParams) -> None:
    """The invariants every chunking must keep."""
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for start, end in spans:
        assert 0 <= start < end <= len(text) and end - start <= p.size
    for (s0, e0), (s1, e1) in pairwise(spans):
        assert s0 < s1 <= e0 < e1  # progress, no gap
        assert e0 - s1 <= p.overlap
    has_space = any(c.isspace() for c in text)
    for start, end in spans[:-1]:
        window = text[start + p.overlap + 1 : end]
        if has_space and any(c.isspace() for c in window):
            assert text[end - 1].isspace() or text[end].isspace(), "cut inside a word"


def test_short_and_empty_text() -> None:
    p = ChunkParams(size=50, overlap=10)
    assert chunk_text("", p) == []
    assert chunk_text("short text.", p) == [(0, 11)]
    assert chunk_text("x" * 50, p) == [(0, 50)]


def test_cuts_after_paragraph_break_before_sentence_end() -> None:
    text = "a" * 10 + " word. " + "b" * 30 + "\n\n" + "c" * 5 + ". more words. " + "d" * 60
    spans = chunk_text(text, ChunkParams(size=60, overlap=0))
    assert text[: spans[0][1]].endswith("\n\n")
    check_spans(text, spans, ChunkParams(size=60, overlap=0))


def test_cuts_after_sentence_end_before_plain_space() -> None:
    text = "one two three four five six seven. eight nine ten eleven twelve thirteen fourteen"
    p = ChunkParams(size=50, overlap=0)
    spans = chunk_text(text, p)
    assert text[: spans[0][1]] == "one two three four five six seven. "
    check_spans(text, spans, p)


def test_cuts_at_whitespace_never_inside_a_word() -> None:
    text = " ".join(["alpha", "beta", "gamma", "delta", "epsilon"] * 20)
    p = ChunkParams(size=37, overlap=8)
    spans = chunk_text(text, p)
    check_spans(text, spans, p)
    for start, end in spans:
        assert start == 0 or text[start - 1] == " "
        assert end == len(text) or text[end - 1] == " "


def test_text_without_whitespace_is_cut_hard_with_overlap() -> None:
    text = "x" * 250
    p = ChunkParams(size=100, overlap=10)
    spans = chunk_text(text, p)
    assert spans == [(0, 100), (90, 190), (180, 250)]


def test_overlap_is_respected_and_deterministic() -> None:
    text = ("Sentence number one is here. And a second one follows it! " * 40).strip()
    p = ChunkParams(size=200, overlap=50)
    spans = chunk_text(text, p)
    assert spans == chunk_text(text, p)
    check_spans(text, spans, p)
    overlaps = [e0 - s1 for (_, e0), (s1, _) in pairwise(spans)]
    assert max(overlaps) > 0


def test_random_texts_keep_the_invariants() -> None:
    rng = np.random.default_rng(7)
    seps = np.array([" ", " ", " ", " ", ". ", "! ", "\n", "\n\n", ",  ", "\t"])
    for _ in range(60):
        n_words = int(rng.integers(1, 400))
        lengths = rng.integers(1, 25, size=n_words)
        words = ["w" * int(k) for k in lengths]
        text = "".join(
            w + str(s) for w, s in zip(words, rng.choice(seps, size=n_words), strict=True)
        )
        size = int(rng.integers(5, 300))
        p = ChunkParams(size=size, overlap=int(rng.integers(0, size)))
        spans = chunk_text(text, p)
        check_spans(text, spans, p)


def test_chunk_params_are_validated() -> None:
    assert ChunkParams() == ChunkParams(size=800, overlap=100)
    for bad in ({"size": 0}, {"size": 100, "overlap": 100}, {"overlap": -1}, {"sise": 3}):
        with pytest.raises(ValidationError):
            ChunkParams(**bad)


# ---------------------------------------------------------------------------------- text files

LONG_MD = "# Getting started\n\n" + "\n\n".join(
    f"Paragraph {i} explains one more thing about the framework in plain words." for i in range(30)
)


def make_docs(root: Path) -> None:
    write(root, "docs/guide.md", LONG_MD)
    write(root, "docs/sub/notes.txt", "A short note.\n")
    write(root, "docs/api.rst", "API reference\n=============\n\nCalls and more calls.\n")
    write(root, "docs/script.py", "print('not text')\n")
    write(root, "docs/.git/HEAD.md", "# hidden\n")
    write(root, "docs/.prism/cache.txt", "hidden too\n")


def test_text_files_ids_parents_spans_and_metadata(tmp_path: Path) -> None:
    make_docs(tmp_path)
    items, errors = split(
        load(L.TextFilesLoader, tmp_path, path="docs", chunk={"size": 300, "overlap": 50})
    )
    assert errors == []
    guide = [i for i in items if i.parent_id == "guide.md"]
    assert len(guide) > 3
    assert [i.id for i in guide] == [f"guide.md#{n}" for n in range(len(guide))]
    assert [i.source for i in items].index("api.rst") < [i.source for i in items].index("guide.md")
    assert items[-1].id == "sub/notes.txt#0" and items[-1].parent_id == "sub/notes.txt"
    for item in guide:
        assert item.modality is Modality.TEXT
        assert item.span is not None and item.text == LONG_MD[item.span.start : item.span.end]
        assert item.metadata == {"file": "guide.md", "title": "Getting started", "headings": ["Getting started"]}
        assert item.source == "guide.md"
        assert not RESERVED_PAYLOAD_KEYS.intersection(item.metadata)
    titles = {i.metadata["file"]: i.metadata["title"] for i in items}
    assert titles == {
        "api.rst": "API reference",
        "guide.md": "Getting started",
        "sub/notes.txt": "notes",
    }


def test_text_files_ids_and_hashes_are_stable(tmp_path: Path) -> None:
    make_docs(tmp_path)
    first = [(i.id, i.content_hash()) for i in load(L.TextFilesLoader, tmp_path, path="docs")]
    second = [(i.id, i.content_hash()) for i in load(L.TextFilesLoader, tmp_path, path="docs")]
    assert first == second and len(first) == 6
    # a file that grows keeps the ids and hashes of its earlier chunks (all but its old last one)
    short = "First paragraph of a page.\n\n" * 20
    write(tmp_path, "docs/sub/notes.txt", short)
    before = [(i.id, i.content_hash()) for i in load(L.TextFilesLoader, tmp_path, path="docs/sub")]
    write(tmp_path, "docs/sub/notes.txt", short * 3)
    after = [(i.id, i.content_hash()) for i in load(L.TextFilesLoader, tmp_path, path="docs/sub")]
    assert len(before) == 1 and len(after) > 1
    assert after[0][0] == before[0][0] == "notes.txt#0"


def test_text_files_without_chunking_globs_and_excludes(tmp_path: Path) -> None:
    make_docs(tmp_path)
    whole = load(L.TextFilesLoader, tmp_path, path="docs", chunk=None)
    assert [(i.id, i.parent_id, i.span) for i in whole] == [
        ("api.rst", None, None),
        ("guide.md", None, None),
        ("sub/notes.txt", None, None),
    ]
    assert whole[1].text == LONG_MD
    top_md = load(L.TextFilesLoader, tmp_path, path="docs", glob="*.md", chunk=None)
    assert [i.id for i in top_md] == ["guide.md"]
    no_sub = load(L.TextFilesLoader, tmp_path, path="docs", exclude=["sub", "*.rst"], chunk=None)
    assert [i.id for i in no_sub] == ["guide.md"]
    one = load(L.TextFilesLoader, tmp_path, path="docs/sub/notes.txt", chunk=None)
    assert [(i.id, i.text) for i in one] == [("notes.txt", "A short note.\n")]


def test_non_utf8_file_is_reported_and_the_rest_load(tmp_path: Path) -> None:
    write(tmp_path, "src/good.txt", "fine text")
    write(tmp_path, "src/latin.txt", b"caf\xe9 au lait")
    items, errors = split(load(L.TextFilesLoader, tmp_path, path="src"))
    assert [i.id for i in items] == ["good.txt#0"]
    assert len(errors) == 1
    msg = str(errors[0])
    assert "src/latin.txt" in msg and "byte offset 3" in msg and "encoding: latin-1" in msg
    items, errors = split(load(L.TextFilesLoader, tmp_path, path="src", encoding="latin-1"))
    assert errors == [] and items[1].text == "café au lait"
    with pytest.raises(ValidationError, match="unknown text encoding"):
        L.TextFilesParams(path="src", encoding="klingon-8")


def test_empty_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "src/empty.md", "")
    write(tmp_path, "src/blank.md", "  \n\n ")
    write(tmp_path, "src/full.md", "# Hi\nthere")
    items, errors = split(load(L.TextFilesLoader, tmp_path, path="src"))
    assert [i.id for i in items] == ["full.md#0"] and items[0].metadata["title"] == "Hi"
    assert sorted(str(e) for e in errors) == [
        "src/blank.md: file is empty; skipped",
        "src/empty.md: file is empty; skipped",
    ]


def test_missing_path_raises_ingest_error(tmp_path: Path) -> None:
    for cls in (L.TextFilesLoader, L.ImagesLoader, L.FilesLoader, L.JsonlLoader, L.BeirLoader):
        with pytest.raises(IngestError) as info:
            load(cls, tmp_path, path="nowhere")
        assert "'nowhere'" in str(info.value) and str(tmp_path / "nowhere") in str(info.value)
        assert "sources[0]" in str(info.value)


def test_folder_without_matching_files_says_what_it_found_instead(tmp_path: Path) -> None:
    write(tmp_path, "src/code.py", "x = 1")
    (err,) = load(L.TextFilesLoader, tmp_path, path="src")
    assert "found none, only 1 .py file. Check `path` and `glob`" in str(err)


# --------------------------------------------------------------------------------------- jsonl


def jsonl(*lines: object) -> str:
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"


def test_jsonl_records_metadata_and_errors(tmp_path: Path) -> None:
    write(
        tmp_path,
        "c.jsonl",
        jsonl(
            {
                "_id": "d1",
                "title": "First",
                "text": "one",
                "year": 2020,
                "tags": ["a"],
                "source": "x",
            },
            "{not json",
            {"_id": "d2", "title": "", "text": "two", "lang": "en"},
            "",
            {"title": "no id", "text": "lost"},
            {"_id": "d1", "text": "again"},
            {"_id": 7, "text": "number id"},
            {"_id": "d3", "title": "", "text": " "},
        ),
    )
    items, errors = split(load(L.JsonlLoader, tmp_path, path="c.jsonl"))
    assert [(i.id, i.text) for i in items] == [
        ("d1", "First\none"),
        ("d2", "two"),
        ("7", "number id"),
    ]
    assert items[0].metadata == {"year": 2020}  # lists and reserved keys are left out
    assert items[1].metadata == {"lang": "en"}
    assert items[0].source == "c.jsonl#d1" and items[0].parent_id is None and items[0].span is None
    msgs = [str(e) for e in errors]
    assert msgs[0].startswith("c.jsonl:2: not valid JSON")
    assert msgs[1].startswith("c.jsonl:5: no usable id")
    assert msgs[2].startswith("c.jsonl:6: duplicate id 'd1' (first on line 1)")
    assert msgs[3].startswith("c.jsonl:8:") and "no text" in msgs[3]
    assert len(errors) == 4


def test_jsonl_fields_fallback_id_and_chunking(tmp_path: Path) -> None:
    long = " ".join(f"word{i}" for i in range(200))
    write(tmp_path, "r.jsonl", jsonl({"id": "r1", "body": long, "kind": "memo", "n": 3}))
    items = load(
        L.JsonlLoader,
        tmp_path,
        path="r.jsonl",
        text_fields=["body"],
        metadata_fields=["kind"],
        chunk={"size": 300, "overlap": 30},
    )
    assert len(items) > 3 and all(isinstance(i, Item) for i in items)
    assert [i.id for i in items] == [f"r1#{n}" for n in range(len(items))]
    assert {i.parent_id for i in items} == {"r1"} and items[0].metadata == {"kind": "memo"}
    assert all(i.text == long[i.span.start : i.span.end] for i in items)
    with pytest.raises(ValidationError, match="cannot be metadata"):
        L.JsonlParams(path="r.jsonl", metadata_fields=["kind", "text"])


@pytest.mark.skipif(
    not (SHARED_DATA / "nfcorpus" / "corpus.jsonl").exists(), reason="shared data absent"
)
def test_beir_corpus_reads_as_is() -> None:
    ctx = Context(base_dir=SHARED_DATA)
    t0 = time.perf_counter()
    items = list(L.JsonlLoader(L.JsonlParams(path="nfcorpus/corpus.jsonl"), ctx).load())
    elapsed = time.perf_counter() - t0
    assert len(items) == 3162 and all(isinstance(i, Item) for i in items)
    assert len({i.id for i in items}) == 3162 and items[0].id == "MED-10"
    assert elapsed < 2.0
    beir = list(L.BeirLoader(L.BeirParams(path="nfcorpus"), ctx).load())
    assert [i.id for i in beir] == [i.id for i in items]


def test_beir_folder(tmp_path: Path) -> None:
    write(tmp_path, "set/corpus.jsonl", jsonl({"_id": "a", "title": "T", "text": "body"}))
    write(tmp_path, "set/queries.jsonl", jsonl({"_id": "q", "text": "query"}))
    items = load(L.BeirLoader, tmp_path, path="set")
    assert [(i.id, i.text) for i in items] == [("a", "T\nbody")]
    with pytest.raises(IngestError, match="no corpus.jsonl"):
        load(L.BeirLoader, tmp_path, path=".")


# -------------------------------------------------------------------------------------- images


def image_bytes(
    fmt: str, size: tuple[int, int], orientation: int | None = None, noise: bool = False
) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = (
        rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        if noise
        else np.full((size[1], size[0], 3), 120, np.uint8)
    )
    img = Image.fromarray(pixels)
    buf = io.BytesIO()
    kwargs = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_images_sizes_orientation_and_corrupt_files(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    write(tmp_path, "pics/a.png", image_bytes("PNG", (20, 10)))
    write(tmp_path, "pics/b/rotated.jpg", image_bytes("JPEG", (30, 20), orientation=6))
    full = image_bytes("JPEG", (64, 64), noise=True)
    write(tmp_path, "pics/cut.jpg", full[: len(full) * 2 // 3])
    write(tmp_path, "pics/fake.png", b"not an image at all")
    write(tmp_path, "pics/readme.txt", "ignored")
    items, errors = split(load(L.ImagesLoader, tmp_path, path="pics"))
    assert [i.id for i in items] == ["a.png", "b/rotated.jpg"]
    a, rotated = items
    assert a.modality is Modality.IMAGE and isinstance(a.content, Media)
    assert (
        a.content.path == (tmp_path / "pics" / "a.png").resolve() and a.content.path.is_absolute()
    )
    assert a.metadata == {"file": "a.png", "width": 20, "height": 10, "format": "PNG"}
    assert (rotated.metadata["width"], rotated.metadata["height"]) == (20, 30)
    assert a.content_hash() != rotated.content_hash()
    msgs = sorted(str(e) for e in errors)
    assert len(msgs) == 2
    assert msgs[0].startswith("pics/cut.jpg: not a readable image")
    assert msgs[1].startswith("pics/fake.png: not a readable image")
    decoded, errors = split(load(L.ImagesLoader, tmp_path, path="pics", decode=True))
    assert [i.id for i in decoded] == ["a.png", "b/rotated.jpg"] and len(errors) == 2


def test_images_loader_uses_the_one_extension_table_and_reads_tiff(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    assert L.ImagesLoader.extensions == extensions_of(Modality.IMAGE)
    assert L.TextFilesLoader.extensions == extensions_of(Modality.TEXT)
    write(tmp_path, "pics/scan.tif", image_bytes("TIFF", (12, 7)))
    write(tmp_path, "pics/other.tiff", image_bytes("TIFF", (5, 9)))
    items, errors = split(load(L.ImagesLoader, tmp_path, path="pics"))
    assert errors == []
    assert [(i.id, i.modality) for i in items] == [("other.tiff", Modality.IMAGE), ("scan.tif", Modality.IMAGE)]
    assert items[1].metadata == {"file": "scan.tif", "width": 12, "height": 7, "format": "TIFF"}


# ------------------------------------------------------------------------------- files walker


def test_files_walker_dispatches_by_extension(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    write(tmp_path, "mixed/intro.md", "# Intro\n\nHello there.")
    write(tmp_path, "mixed/img/pic.png", image_bytes("PNG", (8, 6)))
    write(tmp_path, "mixed/data.csv", "a,b\n1,2\n")
    write(tmp_path, "mixed/more/data2.csv", "a,b\n")
    write(tmp_path, "mixed/blob.xyz", "??")
    write(tmp_path, "mixed/.git/config.md", "# hidden")
    items, errors = split(load(L.FilesLoader, tmp_path, path="mixed"))
    assert [(i.id, i.modality) for i in items] == [
        ("img/pic.png", Modality.IMAGE),
        ("intro.md#0", Modality.TEXT),
    ]
    assert items[0].metadata["width"] == 8 and items[1].metadata["title"] == "Intro"
    assert [str(e) for e in errors] == [
        "mixed: 3 files skipped: no loader for extensions .csv, .xyz. "
        "Narrow `glob`, add them to `exclude`, or install a plugin that loads them."
    ]
    whole, errors = split(
        load(L.FilesLoader, tmp_path, path="mixed", chunk=None, exclude=["*.csv", "*.xyz"])
    )
    assert [i.id for i in whole] == ["img/pic.png", "intro.md"] and errors == []


def test_loaders_register_through_the_registry(tmp_path: Path) -> None:
    registry = Registry(entry_points=False, plugins=[("loaders", L)])
    names = set(registry.components("loader"))
    assert {"text-files", "jsonl", "beir", "images", "files"} <= names
    assert L.TextFilesLoader.extensions == {".txt", ".md", ".markdown", ".rst"}
    assert {".jpg", ".png", ".webp"} <= L.ImagesLoader.extensions
