"""Micro-batching of concurrent searches (`Engine.search_many`/`search_prepared` and the server's
`SearchBatcher`), and the light import paths of the server's CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from fake_plugins import HashEncoder, make_registry

from prismrag import Item, Modality, Query, hookimpl
from prismrag.engine import Engine
from prismrag.errors import QueryError
from prismrag.server.batching import SearchBatcher
from prismrag.server.security import ServerError
from prismrag.types import Content, Media, Role

HEAVY = {"torch", "sentence_transformers", "transformers", "open_clip", "fastapi", "uvicorn", "starlette",
         "httpx", "prometheus_client"}


class PickyEncoder(HashEncoder):
    """The hash encoder, except that it cannot encode the text 'bad'."""

    name = "picky"

    def encode(self, contents: Sequence[Content], modality: Modality, role: Role) -> np.ndarray:
        if "bad" in contents:
            raise ValueError("cannot encode 'bad'")
        return super().encode(contents, modality, role)


class PickyPlugin:
    @hookimpl
    def register_encoders(self, register):
        register(PickyEncoder)


TEXTS = [f"item {i} about {['apples', 'rivers', 'stars', 'bread'][i % 4]}" for i in range(40)]


def hybrid_engine(tmp_path, dense: str = "hash", delay: float = 0.0) -> Engine:
    """Two retrievers, fusion and an MMR reranker (which asks for query vectors) over 40 items."""
    (tmp_path / "r.yaml").write_text(textwrap.dedent(f"""\
        name: batched
        store: {{use: qdrant-edge, path: store}}
        retrievers:
          dense: {{encoder: {{use: {dense}, dimension: 32, delay: {delay}}}}}
          words: {{encoder: {{use: hash, dimension: 64, salt: w}}}}
        fusion: {{use: rrf}}
        rerank: [{{use: mmr, retriever: dense}}]
        """))
    registry = make_registry()
    registry.add_plugin(PickyPlugin(), name="picky")
    engine = Engine.from_file(tmp_path / "r.yaml", registry=registry)
    engine.ingest_items([Item(f"d{i}", Modality.TEXT, t) for i, t in enumerate(TEXTS)])
    return engine


def ranked(result) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 6)) for h in result.hits]


def test_search_many_finds_what_searching_one_by_one_finds_in_one_encoder_call_per_retriever(tmp_path):
    with hybrid_engine(tmp_path) as engine:
        queries = [f"{TEXTS[i]} and more" for i in range(16)]
        alone = [engine.search_detailed(q, top_k=5) for q in queries]
        HashEncoder.calls.clear()
        together = engine.search_many(queries, top_k=5)
        assert [ranked(r) for r in together] == [ranked(r) for r in alone]
        assert [r.hits[0].provenance.retrievers.keys() for r in together] == [
            r.hits[0].provenance.retrievers.keys() for r in alone]
        assert sorted(HashEncoder.calls) == [16, 16]  # one batch per retriever, not 32 calls
        assert set(together[0].timings) >= {"encode:dense", "encode:words", "search", "fusion", "payload"}


def test_a_query_that_fails_in_a_batch_fails_alone(tmp_path):
    with hybrid_engine(tmp_path, dense="picky") as engine:
        prepared = [engine.prepare_search(q, top_k=3) for q in ("item 1 about rivers", "bad", "stars")]
        got = engine.search_prepared(prepared)
        assert isinstance(got[1], ValueError) and "cannot encode 'bad'" in str(got[1])
        assert ranked(got[0]) == ranked(engine.search_detailed("item 1 about rivers", top_k=3))
        assert ranked(got[2]) == ranked(engine.search_detailed("stars", top_k=3))
        with pytest.raises(ValueError, match="cannot encode 'bad'"):
            engine.search_many(["stars", "bad"])
        with pytest.raises(QueryError, match="no retriever named 'nope'"):  # said before anything runs
            engine.prepare_search("stars", retrievers=["nope"])


def test_a_query_whose_fusion_fails_fails_alone(tmp_path, monkeypatch):
    with hybrid_engine(tmp_path) as engine:
        fuse = engine._search.fuse

        def picky_fuse(fusion, lists):
            if any(lst and lst[0].id == "d0" for lst in lists.values()):
                raise ValueError("cannot fuse d0")
            return fuse(fusion, lists)

        alone = ranked(engine.search_detailed("item 3 about bread"))
        monkeypatch.setattr(engine._search, "fuse", picky_fuse)
        got = engine.search_prepared([engine.prepare_search(q) for q in ("item 0 about apples", "item 3 about bread")])
        assert isinstance(got[0], ValueError) and ranked(got[1]) == alone


def test_a_failed_store_call_is_retried_query_by_query(tmp_path, monkeypatch):
    with hybrid_engine(tmp_path) as engine:
        queries = ["apples", "rivers", "bread"]
        alone = [ranked(engine.search_detailed(q)) for q in queries]

        search_many = engine.store.search_many
        sizes = []

        def fails_when_batched(requests):  # (qdrant's search_plans is a search_many of one)
            sizes.append(len(requests))
            if len(requests) > 1:
                raise RuntimeError("the batched call failed")
            return search_many(requests)

        monkeypatch.setattr(engine.store, "search_many", fails_when_batched)
        assert [ranked(r) for r in engine.search_many(queries)] == alone
        assert sizes == [3, 1, 1, 1]


def test_queries_of_other_modalities_are_encoded_apart(tmp_path):
    with hybrid_engine(tmp_path) as engine:
        queries = [Query.text("apples and rivers"), Query(Modality.IMAGE, Media(data=b"\x89PNG bytes")),
                   Query.text("stars at night")]
        alone = [ranked(engine.search_detailed(q)) for q in queries]
        HashEncoder.calls.clear()
        assert [ranked(r) for r in engine.search_many(queries)] == alone
        assert sorted(HashEncoder.calls) == [1, 1, 2, 2]  # per retriever: the texts together, the image apart


def _search_concurrently(batcher: SearchBatcher, prepared: list) -> list:
    async def all_of() -> list:
        return await asyncio.gather(*(batcher.asubmit(p) for p in prepared), return_exceptions=True)

    return asyncio.run(all_of())


def test_concurrent_searches_share_batches_and_a_bad_one_fails_alone(tmp_path):
    with hybrid_engine(tmp_path, dense="picky", delay=0.02) as engine:
        queries = [f"{TEXTS[i]} and more" for i in range(16)] + ["bad"]
        alone = [ranked(engine.search_detailed(q)) for q in queries[:-1]]
        batcher = SearchBatcher(engine, max_wait=0.05, max_batch=64, name="t")
        try:
            got = _search_concurrently(batcher, [engine.prepare_search(q) for q in queries])
        finally:
            batcher.close()
        assert [ranked(r) for r in got[:-1]] == alone
        assert isinstance(got[-1], ValueError)
        assert batcher.handled == 17 and batcher.batches <= 3  # the queries shared encoder and store calls


def test_a_closed_batcher_answers_what_came_before_and_refuses_what_comes_after(tmp_path):
    with hybrid_engine(tmp_path, delay=0.2) as engine:
        batcher = SearchBatcher(engine, max_wait=0.0, max_batch=1, name="t")
        got: list = []
        first = threading.Thread(target=lambda: got.append(batcher.submit(engine.prepare_search("apples"))))
        first.start()
        while batcher.batches == 0:  # the first query is being encoded (0.2 s)
            threading.Event().wait(0.005)
        queued = threading.Thread(target=lambda: got.append(batcher.submit(engine.prepare_search("rivers"))))
        queued.start()
        while batcher.depth() == 0:
            threading.Event().wait(0.005)
        batcher.close()
        first.join(5)
        queued.join(5)
        assert len(got) == 2 and all(r.hits for r in got)  # both were answered
        with pytest.raises(ServerError, match="shutting down") as refused:  # at once, instead of waiting forever
            batcher.submit(engine.prepare_search("stars"))
        assert refused.value.status == 503


def test_warming_up_batches_searches_and_freezes_what_it_loaded(tmp_path):
    """After `warm`, the loaded models and stores sit in the GC's permanent generation (full
    collections no longer walk them), and each recipe's searches have a batcher."""
    import gc

    from prismrag.server.state import Served, ServerConfig

    (tmp_path / "r.yaml").write_text("name: warm\nstore: {use: qdrant-edge, path: store}\nretrievers:\n"
                                     "  words: {encoder: {use: bm25}, index: {use: sparse}}\n")
    gc.unfreeze()
    served = Served(ServerConfig(recipes=[str(tmp_path / "r.yaml")]))
    try:
        served.warm()
        assert served.status == {"warm": "ready"}
        assert gc.get_freeze_count() > 0
        batcher = served.batchers["warm"]
        assert batcher.engine is served.engines["warm"]
    finally:
        gc.unfreeze()
        served.close()
    with pytest.raises(ServerError, match="shutting down"):
        batcher.submit(None)
    assert not Served(ServerConfig(recipes=[str(tmp_path / "r.yaml")], batch_wait=0)).batchers  # batching off


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
