"""Hostile conditions, a full disk (issue 17): with the store on a small tmpfs, an ingest that
does not fit stops with a clear "disk full" error (before: SIGBUS, exit 135, and every later open
died the same way), the store still answers searches, and once space is freed the next ingest
completes with every item present once.

Qdrant Edge maps each vector field's 32 MB chunk of an unoptimized segment in full the first time
it loads a shard that holds data: a 20 MB disk cannot hold that at all, so the disk here is 64 MB
and a filler file takes the rest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

import prismrag
from prismrag.plugins._space import DiskFullError


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root on Linux")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def text_of(i: int) -> str:
    return f"document {i} " + " ".join(f"w{(i * 7 + k) % 997}" for k in range(40))


def write_docs(folder: Path, start: int, n: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(start, start + n):
        (folder / f"d{i:05d}.txt").write_text(text_of(i))


def fill(disk: Path, leave_mb: int) -> None:
    (disk / "filler").unlink(missing_ok=True)
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\1" * max(0, free - (leave_mb << 20)))


def test_a_full_disk_is_a_clear_error_and_nothing_is_lost(tmp_path, small_disk, registry):
    docs = tmp_path / "docs"
    write_docs(docs, 0, 200)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: r
        store: {{use: qdrant-edge, path: {small_disk / "store"}}}
        sources: [{{use: text-files, path: docs, chunk: null}}]
        retrievers:
          dense: {{encoder: {{use: hash, dimension: 64}}}}
        ingest: {{batch_size: 256}}
        """))
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        assert engine.ingest().added == 200
    fill(small_disk, 12)  # the first load after writing maps a 32 MB chunk: refused, not SIGBUS
    with prismrag.load_recipe(recipe, registry=registry) as engine, pytest.raises(DiskFullError, match="opening the index"):
        engine.search("document 17")
    (small_disk / "filler").unlink()
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        assert engine.search(text_of(17))[0].id == "d00017.txt"
    fill(small_disk, 9)
    write_docs(docs, 200, 3000)
    with prismrag.load_recipe(recipe, registry=registry) as engine, pytest.raises(DiskFullError, match="disk full"):
        engine.ingest()
    with prismrag.load_recipe(recipe, registry=registry) as engine:  # still answers
        assert engine.search(text_of(17))[0].id == "d00017.txt"
    (small_disk / "filler").unlink()
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        engine.ingest()
        manifest = engine.store.manifest()
        assert len(manifest) == 3200 and set(manifest) == {f"d{i:05d}.txt" for i in range(3200)}
        assert engine.search(text_of(3100))[0].id == "d03100.txt"
