"""Micro-batching of concurrent query encodes, and the light import paths of the server's CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence

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
    assert batcher.encoded == 24


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
    assert batcher.encoded == 16 and batcher.batches <= 8  # at least two queries per encoder call
    assert "encode_query" not in vars(encoder)  # nothing was patched


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
