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



@pytest.fixture
def read_only():
    """make(folder) makes a folder read-only for this process (a read-only bind mount as root,
    who writes through modes; modes otherwise) and returns the function that undoes it; whatever
    the test left is undone after it."""
    pending: list = []

    def make(folder: Path):  # noqa: ANN202
        if os.name == "posix" and os.geteuid() == 0:
            for args in (["--bind", str(folder), str(folder)], ["-o", "remount,ro,bind", str(folder)]):
                proc = subprocess.run(["mount", *args], capture_output=True, text=True)
                if proc.returncode != 0:
                    pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()}")
                if args[0] == "--bind":
                    pending.append(lambda: subprocess.run(["umount", str(folder)], check=False))
        else:
            paths = [folder, *folder.rglob("*")]
            for path in paths:
                path.chmod(0o555 if path.is_dir() else 0o444)
            pending.append(lambda: [path.chmod(0o755 if path.is_dir() else 0o644) for path in paths])
        undo = pending[-1]

        def restore() -> None:
            pending.remove(undo)
            undo()

        return restore

    yield make
    for undo in reversed(pending):
        undo()


def test_a_read_only_store_is_a_clear_error_and_answers_once_writable_again(tmp_path, read_only, capsys):
    from prismrag.cli import main

    write_docs(tmp_path / "docs", 0, 5)
    recipe = tmp_path / "kw.yaml"
    recipe.write_text("name: kw\nstore: {use: qdrant-edge, path: store}\nsources: [{use: text-files, path: docs}]\n"
                      "retrievers:\n  kw: {encoder: {use: bm25}}\n")
    assert main(["ingest", str(recipe), "--quiet"]) == 0
    writable_again = read_only(tmp_path / "store")
    capsys.readouterr()
    for argv in (["search", str(recipe), "document"], ["ingest", str(recipe), "--quiet"],
                 ["ingest", str(recipe), "--quiet", "--rebuild"]):
        assert main(argv) == 2, argv  # before: an OSError traceback from the lock file
        err = capsys.readouterr().err
        assert f"{tmp_path / 'store'}: cannot write here" in err and "Make the folder writable" in err, err
    (tmp_path / "locked").mkdir()
    read_only(tmp_path / "locked")
    new = recipe.with_name("new.yaml")
    new.write_text(recipe.read_text().replace("name: kw", "name: new").replace("path: store", "path: locked/store"))
    assert main(["ingest", str(new), "--quiet"]) == 2  # a new store under a read-only folder
    assert "cannot write here" in capsys.readouterr().err
    writable_again()
    assert main(["search", str(recipe), text_of(3), "--json"]) == 0
    assert '"d00003.txt#0"' in capsys.readouterr().out


def test_an_embedding_cache_on_a_read_only_disk_is_a_clear_error_and_never_moved_aside(tmp_path, read_only):
    import numpy as np

    from prismrag.cache import EmbeddingCache
    from prismrag.errors import PrismError

    folder = tmp_path / "cache"
    cache = EmbeddingCache(folder)
    cache.put("fp", ["a"], np.ones((1, 4), np.float32))
    cache.close()
    writable_again = read_only(folder)
    with pytest.raises(PrismError, match=r"embeddings.sqlite cannot be opened for writing .*cache: false"):
        EmbeddingCache(folder)  # before: "damaged", then an OSError moving it aside (or moved aside: lost)
    assert sorted(p.name for p in folder.iterdir() if "damaged" in p.name) == []
    writable_again()
    again = EmbeddingCache(folder)
    assert sorted(again.get("fp", ["a"], "dense")) == [0]  # the vectors are all there
    again.close()
