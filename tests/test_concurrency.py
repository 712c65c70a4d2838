"""The engine's concurrency contract: many searches at once while one ingest writes; every
search sees each item either as it was or as it is after the ingest, never half-written."""

from __future__ import annotations

import textwrap
import threading
import time

import numpy as np
from fake_plugins import HashEncoder

import prismrag
from prismrag.concurrency import ReadWriteLock
from prismrag.contracts import HASH_KEY
from prismrag.types import Item, Modality

N = 240


def items(version: str) -> list[Item]:
    rng = np.random.default_rng(3)
    words = [f"w{i:03d}" for i in range(400)]
    return [Item(f"doc{i:03d}", Modality.TEXT, f"{version} " + " ".join(rng.choice(words, size=20))) for i in range(N)]


def test_sixteen_searching_threads_while_another_ingests(tmp_path, registry):
    recipe = tmp_path / "c.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: concurrent
        store: {use: qdrant-edge, path: store}
        retrievers:
          dense: {encoder: {use: hash, dimension: 64, delay: 0.02}, top_k: 50}
          keywords: {encoder: {use: hash, dimension: 32, salt: k}, top_k: 50}
        ingest: {batch_size: 16, cache: false}
        """))
    engine = prismrag.load_recipe(recipe, registry=registry)
    old, new = items("vold"), items("vnew")
    engine.ingest_items(old)
    encoder = HashEncoder(HashEncoder.Params(dimension=64))
    errors: list[str] = []
    seen_versions: set[str] = set()
    searches = [0]
    done = threading.Event()
    lock = threading.Lock()

    def search_forever(k: int) -> None:
        query = f"w{k:03d} w{k + 100:03d} w{k + 200:03d}"
        qvec = encoder.encode([query], Modality.TEXT, "query")[0]
        while not done.is_set():
            try:
                result = engine.search_detailed(query, top_k=20)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            for hit in result.hits:
                text = hit.payload.get("text", "")
                dense = hit.provenance.retrievers.get("dense")
                if dense is not None:  # the stored vector must be the one of the stored text
                    expected = float(encoder.encode([text], Modality.TEXT, "document")[0] @ qvec)
                    if abs(expected - dense.score) > 1e-4:
                        errors.append(f"{hit.id}: vector of another version than its text")
                with lock:
                    seen_versions.add(text.split()[0])
            with lock:
                searches[0] += 1

    threads = [threading.Thread(target=search_forever, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    try:
        report = engine.ingest_items(new, delete_missing=True)
    finally:
        time.sleep(0.2)
        done.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert report.updated == N and report.added == 0
    assert searches[0] > 16  # searches ran during the ingest, not only after it
    assert seen_versions <= {"vold", "vnew"}
    stored = engine.store.manifest()
    assert len(stored) == N
    points = engine.store.retrieve(list(stored))
    assert {p.payload["text"].split()[0] for p in points.values()} == {"vnew"}
    assert all(points[i].payload[HASH_KEY] == h for i, h in stored.items())
    engine.close()


def test_a_writer_waits_for_readers_and_new_readers_wait_for_a_waiting_writer():
    rw = ReadWriteLock()
    order: list[str] = []
    reader_in = threading.Event()
    release_reader = threading.Event()

    def reader(name: str, hold: threading.Event | None) -> None:
        with rw.read():
            order.append(f"{name} in")
            if hold is not None:
                reader_in.set()
                hold.wait(5)
            order.append(f"{name} out")

    def writer() -> None:
        with rw.write():
            order.append("writer")

    first = threading.Thread(target=reader, args=("r1", release_reader))
    first.start()
    reader_in.wait(5)
    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.1)  # the writer is waiting now
    second = threading.Thread(target=reader, args=("r2", None))
    second.start()
    time.sleep(0.1)
    assert order == ["r1 in"]  # neither the writer nor the late reader got in
    release_reader.set()
    for t in (first, w, second):
        t.join(5)
    assert order == ["r1 in", "r1 out", "writer", "r2 in", "r2 out"]


def test_the_write_lock_is_reentrant_and_a_writer_may_read():
    rw = ReadWriteLock()
    with rw.write(), rw.write(), rw.read():
        pass
    with rw.read():  # released: others get in
        pass


def test_queued_writers_go_one_at_a_time_before_the_readers_behind_them():
    rw = ReadWriteLock()
    order: list[str] = []
    hold = threading.Event()
    reader_in = threading.Event()

    def first_reader() -> None:
        with rw.read():
            reader_in.set()
            hold.wait(5)
            order.append("r1 out")

    def writer(name: str) -> None:
        with rw.write():
            order.append(f"{name} in")
            time.sleep(0.05)
            order.append(f"{name} out")

    def late_reader(name: str) -> None:
        with rw.read():
            order.append(name)

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    reader_in.wait(5)
    for t in (threading.Thread(target=writer, args=("w1",)), threading.Thread(target=writer, args=("w2",))):
        threads.append(t)
        t.start()
    time.sleep(0.1)
    late = [threading.Thread(target=late_reader, args=(f"r{k}",)) for k in (2, 3, 4)]
    for t in late:
        t.start()
    time.sleep(0.1)
    assert order == []
    hold.set()
    for t in threads + late:
        t.join(5)
    assert order[0] == "r1 out" and sorted(order[5:]) == ["r2", "r3", "r4"]
    writes = order[1:5]  # one writer at a time, never interleaved
    assert writes in (["w1 in", "w1 out", "w2 in", "w2 out"], ["w2 in", "w2 out", "w1 in", "w1 out"])


def test_a_query_being_encoded_holds_back_no_ingest(tmp_path, registry):
    """Encoders touch no store: a search takes the read lock only after encoding, so an ingest
    (a writer) that starts while a slow query encodes finishes without waiting for it."""
    recipe = tmp_path / "e.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: encoding
        store: {use: qdrant-edge, path: store}
        retrievers:
          dense: {encoder: {use: hash, dimension: 32}}
        ingest: {cache: false}
        """))
    engine = prismrag.load_recipe(recipe, registry=registry)
    engine.ingest_items(items("vold")[:10])
    ingested = threading.Event()

    encoder = engine.recipe.retrievers["dense"].encoder
    encode_query = encoder.encode_query

    def encode_while_ingesting(query):
        worker = threading.Thread(target=lambda: (engine.ingest_items(items("vnew")[10:12]), ingested.set()))
        worker.start()
        assert ingested.wait(20), "the ingest waited for a query that was only being encoded"
        return encode_query(query)

    encoder.encode_query = encode_while_ingesting
    hits = engine.search("w001 w002", top_k=20)
    assert len(hits) == 12  # the search read the store after the ingest: it sees the new items
    engine.close()
