"""Micro-batching of concurrent query encodes and store searches, and the light import paths of the
server's CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np
import pytest
from fake_plugins import HashEncoder

from prismrag import Modality, Query
from prismrag.server.batching import BatchedQueries, QueryBatcher
from prismrag.types import Content, Role

HEAVY = {"torch", "sentence_transformers", "transformers", "open_clip", "fastapi", "uvicorn", "starlette",
         "httpx", "prometheus_client"}


def _encode_concurrently(encode, queries: Sequence[Query]) -> list[np.ndarray]:
    out: list = [None] * len(queries)
    barrier = threading.Barrier(len(queries))

    def one(i: int) -> None:
        barrier.wait()
        try:
            out[i] = encode(queries[i])
        except Exception as exc:  # noqa: BLE001 - compared below
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_queries_share_encoder_calls_and_get_their_own_rows():
    HashEncoder.calls.clear()
    encoder = HashEncoder(HashEncoder.Params(dimension=32, delay=0.05))
    batcher = QueryBatcher(encoder, max_wait=0.02, max_batch=64)
    queries = [Query.text(f"query number {i} about topic {i % 5}") for i in range(24)]
    try:
        got = _encode_concurrently(batcher.encode_query, queries)
    finally:
        batcher.close()
    want = HashEncoder(HashEncoder.Params(dimension=32)).encode_batch([q.content for q in queries], Modality.TEXT, "query")
    np.testing.assert_allclose(np.concatenate(got), want, atol=1e-6)
    assert all(g.shape == (1, 32) for g in got)
    assert len(HashEncoder.calls) <= 4 < 24  # far fewer encoder calls than queries
    assert batcher.handled == 24


class PickyEncoder(HashEncoder):
    name = "picky"

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        if "bad" in contents:
            raise ValueError("cannot encode 'bad'")
        return super().encode(contents, modality, role)


def test_a_failing_query_fails_alone():
    encoder = PickyEncoder(PickyEncoder.Params(dimension=16, delay=0.02))
    batcher = QueryBatcher(encoder, max_wait=0.05, max_batch=8)
    try:
        got = _encode_concurrently(batcher.encode_query, [Query.text(t) for t in ["good one", "bad", "fine two"]])
    finally:
        batcher.close()
    assert isinstance(got[1], ValueError) and "cannot encode 'bad'" in str(got[1])
    assert got[0].shape == (1, 16) and got[2].shape == (1, 16)


def test_a_closed_batcher_answers_what_came_before_and_refuses_what_comes_after():
    encoder = HashEncoder(HashEncoder.Params(dimension=8, delay=0.2))
    batcher = QueryBatcher(encoder, max_wait=0.0, max_batch=1)
    got: list = []
    first = threading.Thread(target=lambda: got.append(batcher.encode_query(Query.text("asked before"))))
    first.start()
    while batcher.batches == 0:  # the first query is being encoded (0.2 s)
        threading.Event().wait(0.005)
    queued = threading.Thread(target=lambda: got.append(batcher.encode_query(Query.text("queued before"))))
    queued.start()
    while batcher.depth() == 0:
        threading.Event().wait(0.005)
    batcher.close()
    first.join(5)
    queued.join(5)
    assert len(got) == 2 and all(g.shape == (1, 8) for g in got)  # both were answered
    from prismrag.server.security import ServerError

    with pytest.raises(ServerError, match="shutting down") as refused:  # at once, instead of waiting forever
        batcher.encode_query(Query.text("asked after"))
    assert refused.value.status == 503


def test_mixed_modalities_are_batched_apart():
    encoder = HashEncoder(HashEncoder.Params(dimension=16))
    batcher = QueryBatcher(encoder, max_wait=0.05, max_batch=8)
    from prismrag.types import Media

    queries = [Query.text("text query"), Query(Modality.IMAGE, Media(data=b"\x89PNG bytes"))]
    try:
        got = _encode_concurrently(batcher.encode_query, queries)
    finally:
        batcher.close()
    for q, g in zip(queries, got, strict=True):
        np.testing.assert_allclose(g, encoder.encode_batch([q.content], q.modality, "query"))


def test_an_engines_query_encoding_batches_concurrent_searches_without_patching_encoders(tmp_path):
    """The server's hook: `Engine.query_encoding` routes the search pipeline's query encodes
    (and a reranker's) through the batchers; the encoders stay as they are."""
    from fake_plugins import make_registry

    from prismrag import Item
    from prismrag.engine import Engine

    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        name: batched
        store: {use: qdrant-edge, path: store}
        retrievers:
          dense: {encoder: {use: hash, dimension: 32, delay: 0.05}}
          words: {encoder: {use: hash, dimension: 64, salt: w}}
        fusion: {use: rrf}
        rerank: [{use: mmr, retriever: dense}]
        """))
    engine = Engine.from_file(tmp_path / "r.yaml", registry=make_registry())
    texts = ["apples grow in orchards", "rivers reach the sea", "stars shine at night", "bread is baked"]
    engine.ingest_items([Item(f"d{i}", Modality.TEXT, t) for i, t in enumerate(texts)])
    queries = [Query.text(f"{texts[i % 4]} number {i}") for i in range(16)]
    alone = [[h.id for h in engine.search(q)] for q in queries]
    encoder = engine.recipe.retrievers["dense"].encoder
    batcher = QueryBatcher(encoder, max_wait=0.02, max_batch=64)
    engine.query_encoding = BatchedQueries({"dense": batcher})  # `words` encodes on its own
    HashEncoder.calls.clear()
    try:
        got = _encode_concurrently(lambda q: [h.id for h in engine.search(q)], queries)
    finally:
        engine.query_encoding = None
        batcher.close()
        engine.close()
    assert got == alone
    assert batcher.handled == 16 and batcher.batches <= 8  # at least two queries per encoder call
    assert "encode_query" not in vars(encoder)  # nothing was patched


def test_concurrent_searches_share_store_calls_and_a_bad_one_fails_alone(tmp_path):
    """The server's other hook: `Engine.store_search` gathers the store searches of concurrent
    queries into one `Store.search_many` call; each query gets its own lists, as searching alone."""
    from fake_plugins import make_registry

    from prismrag import Item
    from prismrag.contracts import SearchPlan
    from prismrag.engine import Engine
    from prismrag.errors import QueryError
    from prismrag.server.batching import SearchBatcher

    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        name: searched
        store: {use: qdrant-edge, path: store}
        retrievers:
          dense: {encoder: {use: hash, dimension: 32}}
          words: {encoder: {use: hash, dimension: 64, salt: w}}
        fusion: {use: rrf}
        """))
    engine = Engine.from_file(tmp_path / "r.yaml", registry=make_registry())
    texts = [f"item {i} about {['apples', 'rivers', 'stars', 'bread'][i % 4]}" for i in range(40)]
    engine.ingest_items([Item(f"d{i}", Modality.TEXT, t) for i, t in enumerate(texts)])
    queries = [Query.text(f"{texts[i]} and more") for i in range(16)]

    def ranked(q: Query) -> list[tuple[str, float]]:
        return [(h.id, round(h.score, 6)) for h in engine.search(q)]

    alone = [ranked(q) for q in queries]
    batcher = SearchBatcher(lambda: engine.collection.store, max_wait=0.05, max_batch=64, name="t")
    engine.store_search = batcher
    try:
        got = _encode_concurrently(ranked, queries)
        plan = SearchPlan.single("dense", 3)
        good = np.ones((1, 32), np.float32)
        outcomes = _encode_concurrently(lambda v: batcher([(plan, {"dense": v})], None, None),
                                        [good, np.ones((1, 5), np.float32), good])
        shared = (batcher.batches, batcher.handled)
        waits = []
        for size in (SearchBatcher.LOADED, 1):
            futures: list[Future] = [Future() for _ in range(size)]
            batcher.run_batch([(([(plan, {"dense": good})], None, None), f) for f in futures
                               if f.set_running_or_notify_cancel()])
            waits.append(batcher.wait())
            assert all(len(f.result(0)[0][0]) == 3 for f in futures)
    finally:
        engine.store_search = None
        batcher.close()
        engine.close()
    assert got == alone
    assert shared[0] < 16 + 3 and shared[1] == 16 + 3  # searches shared store calls
    assert waits == pytest.approx([0.15, 0.05])  # a longer wait for company only after a big batch
    assert isinstance(outcomes[1], QueryError) and "32-d" in str(outcomes[1])
    assert [len(o) for o in (outcomes[0], outcomes[2])] == [1, 1] and len(outcomes[0][0][0]) == 3  # one plan, top 3


def test_warming_up_batches_searches_and_freezes_what_it_loaded(tmp_path):
    """After `warm`, the loaded models and stores sit in the GC's permanent generation (full
    collections no longer walk them), and the engine's searches go through the batchers."""
    import gc

    from prismrag.server.batching import SearchBatcher
    from prismrag.server.state import Served, ServerConfig

    (tmp_path / "r.yaml").write_text("name: warm\nstore: {use: qdrant-edge, path: store}\nretrievers:\n"
                                     "  words: {encoder: {use: bm25}, index: {use: sparse}}\n")
    gc.unfreeze()
    served = Served(ServerConfig(recipes=[str(tmp_path / "r.yaml")]))
    try:
        served.warm()
        assert served.status == {"warm": "ready"}
        assert gc.get_freeze_count() > 0
        engine = served.engines["warm"]
        assert isinstance(engine.store_search, SearchBatcher) and isinstance(engine.query_encoding, BatchedQueries)
    finally:
        gc.unfreeze()
        served.close()
    assert engine.store_search is None and engine.query_encoding is None


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["search", "--server", "http://127.0.0.1:9", "docs", "q"]])
def test_the_cli_paths_of_the_server_stay_light(argv):
    code = textwrap.dedent(f"""
        import json, sys
        from prismrag.cli import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print(json.dumps(sorted(sys.modules)))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not HEAVY & loaded, f"prism {' '.join(argv)} imported {HEAVY & loaded}"
    if argv[0] == "search":
        assert "error: cannot reach prism serve at http://127.0.0.1:9" in out.stderr
