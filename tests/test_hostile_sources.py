"""Hostile input, source files (issue 17): symlinks out of the folder, /dev/zero, FIFOs, huge
files, NUL bytes, bad globs. Each is skipped with an error naming the file; the rest is indexed."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from prismrag.contracts import Context, ItemError
from prismrag.plugins.loaders import FilesLoader, FilesParams, TextFilesLoader, TextFilesParams

needs_posix = pytest.mark.skipif(os.name != "posix", reason="symlinks, FIFOs and /dev/zero are POSIX")


def load(tmp_path: Path, loader: type = TextFilesLoader, **params) -> tuple[list, list[str]]:
    cls_params = TextFilesParams if loader is TextFilesLoader else FilesParams
    claim = lambda path: TextFilesLoader if path.suffix in TextFilesLoader.extensions else None  # noqa: E731
    src = loader(cls_params(path="docs", **params), Context(base_dir=tmp_path, loader_for_path=claim))
    out = list(src.load())
    return [i for i in out if not isinstance(i, ItemError)], [str(e) for e in out if isinstance(e, ItemError)]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "good.md").write_text("# Good\n\nAn ordinary document.")
    return tmp_path / "docs"


@needs_posix
def test_a_symlink_out_of_the_source_folder_is_not_followed(tmp_path, docs):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-TOKEN-12345")
    (docs / "leak.txt").symlink_to(secret)
    (docs / "sub").mkdir()
    (docs / "inside.txt").symlink_to(docs / "good.md")  # inside the folder: followed
    items, errors = load(tmp_path)
    assert not any("SECRET" in i.content for i in items)
    assert sorted(i.id.split("#")[0] for i in items) == ["good.md", "inside.txt"]
    assert len(errors) == 1 and "leak.txt" in errors[0] and "outside the source folder" in errors[0]
    assert "symlinks: anywhere" in errors[0]
    items, errors = load(tmp_path, symlinks="anywhere")
    assert any("SECRET" in i.content for i in items) and not errors


@needs_posix
def test_a_symlink_to_dev_zero_and_a_fifo_are_refused_without_reading(tmp_path, docs):
    (docs / "zero.txt").symlink_to("/dev/zero")
    os.mkfifo(docs / "pipe.md")
    items, errors = load(tmp_path, symlinks="anywhere")  # even where links may go anywhere
    assert [i.id for i in items] == ["good.md#0"]
    assert any("zero.txt" in e and "character device" in e for e in errors)
    assert any("pipe.md" in e and "FIFO" in e for e in errors)
    items, errors = load(tmp_path, loader=FilesLoader, symlinks="anywhere")
    assert [i.id for i in items] == ["good.md#0"] and len(errors) == 2


def test_a_file_over_max_file_mb_is_skipped_naming_the_limit(tmp_path, docs):
    (docs / "big.txt").write_bytes(b"word " * 300_000)  # 1.5 MB
    items, errors = load(tmp_path, max_file_mb=1)
    assert [i.id for i in items] == ["good.md#0"]
    assert len(errors) == 1 and "big.txt" in errors[0] and "`max_file_mb` (1)" in errors[0]


def test_a_file_of_nul_bytes_is_not_indexed_as_text(tmp_path, docs):
    (docs / "nul.txt").write_bytes(b"\0" * 5000)
    (docs / "utf16.txt").write_text("hello", encoding="utf-16")
    items, errors = load(tmp_path)
    assert [i.id for i in items] == ["good.md#0"]
    assert any("nul.txt" in e and "NUL bytes" in e for e in errors)


@needs_posix
def test_dangling_and_looping_symlinks_are_reported_not_fatal(tmp_path, docs):
    (docs / "dangling.txt").symlink_to(tmp_path / "missing.txt")
    (docs / "loop.txt").symlink_to(docs / "loop.txt")
    items, errors = load(tmp_path)
    assert [i.id for i in items] == ["good.md#0"] and len(errors) == 2


@pytest.mark.parametrize("glob", ["[z-a].md", "**/[b-a]*"])
def test_a_glob_with_a_bad_range_is_a_validation_error(glob):
    with pytest.raises(ValidationError, match="not a valid pattern"):
        TextFilesParams(path="docs", glob=glob)
    with pytest.raises(ValidationError, match="not a valid pattern"):
        TextFilesParams(path="docs", exclude=[glob])


@needs_posix
@pytest.mark.parametrize("limit", [None, 2000])
def test_peak_memory_with_a_1gb_file_and_an_endless_symlink_stays_small(tmp_path, docs, limit):
    """A sparse 1 GB file and a link to /dev/zero, loaded under a 1.5 GB address-space cap:
    refused by size (default `max_file_mb`), or, with the limit raised, after an 8 KB NUL check."""
    with open(docs / "huge.txt", "wb") as fh:
        fh.truncate(1 << 30)
    (docs / "zero.md").symlink_to("/dev/zero")
    extra = "" if limit is None else f", max_file_mb={limit}"
    code = textwrap.dedent(f"""
        import resource, pathlib
        from prismrag.contracts import Context, ItemError
        from prismrag.plugins.loaders import TextFilesLoader, TextFilesParams
        params = TextFilesParams(path="docs", symlinks="anywhere"{extra})
        out = list(TextFilesLoader(params, Context(base_dir=pathlib.Path({str(tmp_path)!r}))).load())
        # VmHWM, not ru_maxrss: the forked child's ru_maxrss starts at the (large) pytest parent's RSS
        hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
        print(len(out), sum(isinstance(e, ItemError) for e in out), hwm // 1024)
    """)
    cap = (1500 << 20, 1500 << 20)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, cap))
    assert proc.returncode == 0, proc.stderr
    count, errors, peak_mb = map(int, proc.stdout.split())
    assert (count, errors) == (3, 2) and peak_mb < 500, proc.stdout


@needs_posix
@pytest.mark.parametrize("limit", [None, 2000])
def test_peak_memory_of_a_whole_ingest_with_a_1gb_file_and_an_endless_symlink(tmp_path, docs, limit):
    """The acceptance measure: `prism ingest` (loading, bm25, the qdrant-edge store) of a folder
    holding a sparse 1 GB file and a link to /dev/zero, peak resident memory of the process."""
    with open(docs / "huge.txt", "wb") as fh:
        fh.truncate(1 << 30)
    (docs / "zero.md").symlink_to("/dev/zero")
    extra = "" if limit is None else f", max_file_mb: {limit}"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nstore: {use: qdrant-edge, path: store}\n"
                      f"sources: [{{use: text-files, path: docs, symlinks: anywhere{extra}}}]\n"
                      "retrievers:\n  kw: {encoder: {use: bm25}}\n")
    code = textwrap.dedent(f"""
        import json, sys
        from prismrag.cli import main
        rc = main(["ingest", {str(recipe)!r}, "--quiet", "--json"])
        hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
        print("PEAK", rc, hwm // 1024)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout[: proc.stdout.rindex("PEAK")])
    rc, peak_mb = proc.stdout.rsplit("PEAK", 1)[1].split()
    assert int(rc) == 0 and report["added"] == 1 and len(report["errors"]) == 2, report
    assert int(peak_mb) < 500, f"peak {peak_mb} MB"
    print(f"peak resident memory of the ingest: {peak_mb} MB")  # the number for the notes (pytest -s)


@needs_posix
def test_a_jsonl_or_beir_path_naming_a_fifo_is_refused_without_reading(tmp_path):
    from prismrag.errors import IngestError
    from prismrag.plugins.loaders import BeirLoader, BeirParams, JsonlLoader, JsonlParams

    os.mkfifo(tmp_path / "feed.jsonl")
    (tmp_path / "beir").mkdir()
    os.mkfifo(tmp_path / "beir" / "corpus.jsonl")
    with pytest.raises(IngestError, match=r"'feed.jsonl' is a FIFO \(named pipe\), not a regular file"):
        list(JsonlLoader(JsonlParams(path="feed.jsonl"), Context(base_dir=tmp_path)).load())
    with pytest.raises(IngestError, match=r"corpus.jsonl is a FIFO \(named pipe\), not a regular file"):
        list(BeirLoader(BeirParams(path="beir"), Context(base_dir=tmp_path)).load())


@needs_posix
def test_a_labelled_eval_row_reaching_a_symlink_out_of_the_folder_is_refused(tmp_path):
    from prismrag.datasets import load_dataset

    folder = tmp_path / "set"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("SECRET-TOKEN-12345")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "other.txt").write_text("SECRET-TOKEN-67890")
    (folder / "a.txt").write_text("a note about cats")
    (folder / "b.txt").write_text("another note about cats")
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")  # named by its stem below
    (folder / "sub" / "linked").symlink_to(tmp_path / "outdir")  # a folder link, named by path
    (folder / "alias.txt").symlink_to(folder / "a.txt")  # inside the folder: followed
    (folder / "labels.csv").write_text(
        "file,label\na,cats\nb,cats\nleak,cats\nleak.txt,cats\nsub/linked/other.txt,cats\nalias,dogs\n"
    )
    ds = load_dataset(folder, queries="label")
    assert not any("SECRET" in str(i.content) for i in ds.items)
    assert sorted(i.id for i in ds.items) == ["a.txt", "alias.txt", "b.txt"]
    refused = [s for s in ds.report.skipped_items if "outside the data folder" in s]
    assert len(refused) == 3, ds.report.skipped_items
    assert "labels.csv:4: 'leak' reaches leak.txt, a symlink to" in refused[0] and "secret.txt" in refused[0]
    assert "sub/linked, a symlink to" in refused[2]


@pytest.mark.parametrize("text", [
    " " * 2_000_000, "a" * 2_000_000, ". " * 1_000_000, "\n" * 2_000_000, "x\n\n" * 700_000, "# h\n" * 500_000,
    "```\n" * 500_000, "---\n" + "k: v\n" * 400_000, "---\n" + "-" * 2_000_000,
], ids=["spaces", "one-word", "dots", "newlines", "paragraphs", "headings", "fences", "open-front-matter", "dashes"])
def test_chunking_headings_and_front_matter_take_linear_time(text):
    """2 MB of each adversarial shape: ~1 s at most on a busy 2-core machine (a quadratic step takes minutes)."""
    import time

    from prismrag.plugins._front_matter import front_matter
    from prismrag.support import ChunkParams, chunk_text, markdown_headings

    started = time.perf_counter()
    front_matter(text)
    markdown_headings(text)
    spans = chunk_text(text, ChunkParams())
    assert time.perf_counter() - started < 5.0
    assert all(0 <= a < b <= len(text) for a, b in spans)


@needs_posix
def test_an_image_source_refuses_a_fifo_a_socket_a_device_and_a_link_out_without_reading(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    from prismrag.plugins.loaders import ImagesLoader, ImagesParams

    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("RGB", (8, 6), (200, 40, 40)).save(pics / "red.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    os.mkfifo(pics / "pipe.png")
    (pics / "zero.jpg").symlink_to("/dev/zero")
    (pics / "leak.png").symlink_to(tmp_path / "outside.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(pics / "sock.png"))
    try:
        out = list(ImagesLoader(ImagesParams(path="pics"), Context(base_dir=tmp_path)).load())
    finally:
        sock.close()
    items, errors = [o for o in out if not isinstance(o, ItemError)], [str(o) for o in out if isinstance(o, ItemError)]
    assert [i.id for i in items] == ["red.png"]
    assert any("pipe.png" in e and "FIFO" in e for e in errors)
    assert any("zero.jpg" in e and ("character device" in e or "outside the source folder" in e) for e in errors)
    assert any("leak.png" in e and "outside the source folder" in e for e in errors)
    assert any("sock.png" in e and "a socket, not a regular file" in e for e in errors)
