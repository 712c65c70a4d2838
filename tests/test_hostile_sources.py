"""Hostile input, source files (issue 17): symlinks out of the folder, /dev/zero, FIFOs, huge
files, NUL bytes, bad globs. Each is skipped with an error naming the file; the rest is indexed."""

from __future__ import annotations

import os
import resource
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
