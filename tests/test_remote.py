"""The httpx remote plugins: `openai-embeddings` against a real `prism serve` (same search results
as the local recipe), and retries, Retry-After, timeouts, typed errors and key hygiene against a
small scripted HTTP service (the TEI and rerank wire shapes)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from server_helpers import DOCS, call, env_with_plugin, free_port, hash_recipe, ingest_docs, serve

pytest.importorskip("httpx")

from prismrag import Item, Modality, Query  # noqa: E402
from prismrag.plugins._http import (  # noqa: E402
    HttpService,
    RemoteHTTPError,
    RemoteParams,
    RemoteResponseError,
    RemoteUnavailable,
    retry_after,
)
from prismrag.plugins.remote_encoders import OpenAIEmbeddingsEncoder, TeiEncoder, TeiSparseEncoder  # noqa: E402
from prismrag.plugins.remote_rerank import HttpReranker  # noqa: E402

KEY = "remote-secret-key-42"
Reply = tuple[int, Any, dict[str, str]]


@contextmanager
def scripted(handler: Callable[[str, Any, dict[str, str]], Reply]) -> Iterator[tuple[str, list[tuple[str, Any, dict[str, str]]]]]:
    """A local HTTP service: `handler(path, json_body, headers) -> (status, json, headers)`;
    yields its URL and the requests it saw."""
    seen: list[tuple[str, Any, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"null")
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.append((self.path, body, headers))
            status, answer, extra = handler(self.path, body, headers)
            data = json.dumps(answer).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **extra}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _vectors(texts: list[str], dim: int = 4) -> list[list[float]]:
    return [[float(len(t)), 1.0, 0.0, float(i)][:dim] for i, t in enumerate(texts)]


# ------------------------------------------------------------------ against prism serve


def test_remote_encoder_on_prism_serve_gives_the_local_results(tmp_path):
    local_recipe = hash_recipe(tmp_path, "docs")
    env = dict(env_with_plugin(tmp_path), PRISM_API_KEY=KEY, PRISMRAG_CACHE_DIR=str(tmp_path / "cache"))
    queries = ["apple orchards", "where do rivers flow", "stars at night", "baking bread with yeast"]
    with serve([local_recipe], tmp_path, env=env) as base:
        ingest_docs(base, key=KEY)
        served = {q: call(base + "/v1/recipes/docs/search", {"query": q}, key=KEY)[1]["hits"] for q in queries}
        remote_recipe = hash_recipe(tmp_path, "remote", encoder=(
            f"{{use: openai-embeddings, url: '{base}/v1', model: docs/dense, api_key: {{$env: PRISM_TEST_KEY}}, "
            "encoding_format: base64, batch_size: 2, input_type: true}"))
        from prismrag import load_recipe

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PRISM_TEST_KEY", KEY)
            with load_recipe(remote_recipe) as engine:
                engine.ingest_items([Item(k, Modality.TEXT, v, {"kind": "x"}) for k, v in DOCS.items()])
                for q in queries:
                    got = engine.search(q)
                    want = served[q]
                    assert [h.id for h in got] == [h["id"] for h in want]
                    np.testing.assert_allclose([h.score for h in got], [h["score"] for h in want], atol=1e-5)
                encoder = engine.recipe.retrievers["dense"].encoder
                assert encoder.dimension() == 64  # learnt from one probe request
                assert KEY not in repr(encoder.params) and KEY not in encoder.params.model_dump_json()
                fingerprint = encoder.fingerprint()
            mp.setenv("PRISM_TEST_KEY", "wrong-key")
            with load_recipe(remote_recipe) as engine:
                encoder = engine.recipe.retrievers["dense"].encoder
                assert encoder.fingerprint() == fingerprint  # the key is not part of what the vectors are
                with pytest.raises(RemoteHTTPError) as info:
                    encoder.encode_query(Query.text("x"))
                assert info.value.status == 401 and f"{base}/v1/embeddings: HTTP 401: wrong API key" in str(info.value)
                assert "wrong-key" not in str(info.value)


def test_http_rerank_on_prism_serve_in_both_shapes(tmp_path):
    recipe = hash_recipe(tmp_path, "docs", extra="rerank: [{use: mmr, retriever: dense, lambda: 1.0}]\n")
    env = dict(env_with_plugin(tmp_path), PRISMRAG_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PRISM_API_KEY", None)
    from prismrag import Candidate

    candidates = [Candidate(k, 0.0, {"text": v}) for k, v in DOCS.items()] + [Candidate("img", 0.0, {"path": "a.png"})]
    with serve([recipe], tmp_path, env=env) as base:
        orders = []
        for shape in ("cohere", "tei"):
            path = "/v1/rerank" if shape == "cohere" else "/rerank"  # TEI's own path and answer
            rr = HttpReranker(HttpReranker.Params(url=base + path, shape=shape, model="docs/0", top_n=10))
            ranked = rr.rerank(Query.text("apple orchards trees"), candidates, None)  # type: ignore[arg-type]
            rr.close()
            assert sorted(s.id for s in ranked) == sorted(c.id for c in candidates)
            assert ranked[-1].id == "img"  # no text: below the scored ones
            orders.append([s.id for s in ranked])
        assert orders[0] == orders[1] and orders[0][0] == "trees"


# ------------------------------------------------------------------ wire shapes and failures


def _params(url: str, **kw: Any) -> dict[str, Any]:
    return {"url": url, "backoff": 0.01, "max_backoff": 0.05, **kw}


def test_tei_dense_and_sparse_wire_shapes():
    def handler(path: str, body: Any, headers: dict[str, str]) -> Reply:
        if path == "/embed":
            return 200, _vectors(body["inputs"]), {}
        return 200, [[{"index": 3, "value": 0.5}, {"index": 7, "value": float(len(t))}] for t in body["inputs"]], {}

    with scripted(handler) as (url, seen):
        dense = TeiEncoder(TeiEncoder.Params(**_params(url, dimension=4, batch_size=2, query_prompt_name="query")))
        out = dense.encode_batch(["a", "bb", "ccc"], Modality.TEXT, "document")
        assert out.shape == (3, 4) and out[2, 0] == 3.0 and out[2, 3] == 0.0  # index within its request
        dense.encode_query(Query.text("q"))
        assert sorted(s[1]["inputs"] for s in seen) == [["a", "bb"], ["ccc"], ["q"]]
        assert seen[-1][1]["prompt_name"] == "query" and seen[0][1].get("prompt_name") is None
        sparse = TeiSparseEncoder(TeiSparseEncoder.Params(**_params(url)))
        batch = sparse.encode_batch(["xy", "z"], Modality.TEXT, "document")
        indices, values = batch.row(0)
        assert list(indices) == [3, 7] and list(values) == [0.5, 2.0] and len(batch) == 2
        dense.close()
        sparse.close()
        assert dense.service._client is None


def test_429_and_503_are_retried_honouring_retry_after():
    answers = iter([(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.2"}),
                    (503, {"message": "busy"}, {}), None])

    def handler(path: str, body: Any, headers: dict[str, str]) -> Reply:
        nxt = next(answers)
        return nxt if nxt else (200, {"data": [{"index": 0, "embedding": [1.0, 0.0]}]}, {})

    with scripted(handler) as (url, seen):
        enc = OpenAIEmbeddingsEncoder(OpenAIEmbeddingsEncoder.Params(**_params(url, model="m", max_backoff=1.0)))
        t = time.perf_counter()
        out = enc.encode_query(Query.text("hello"))
        assert time.perf_counter() - t >= 0.2  # waited as Retry-After said
        assert out.shape == (1, 2) and len(seen) == 3
        enc.close()


def test_errors_are_typed_and_name_the_endpoint_never_the_key():
    def handler(path: str, body: Any, headers: dict[str, str]) -> Reply:
        assert headers["authorization"] == f"Bearer {KEY}"
        if body["model"] == "bad":
            return 400, {"error": {"message": "model bad does not exist"}}, {}
        if body["model"] == "short":
            return 200, {"data": []}, {}
        return 500, {"error": "boom"}, {}

    with scripted(handler) as (url, seen):
        def enc(model: str, **kw: Any) -> OpenAIEmbeddingsEncoder:
            return OpenAIEmbeddingsEncoder(OpenAIEmbeddingsEncoder.Params(**_params(url, model=model, api_key=KEY, **kw)))

        with pytest.raises(RemoteHTTPError, match=f"^{url}/embeddings: HTTP 400: model bad does not exist$"):
            enc("bad").encode_query(Query.text("x"))
        assert len(seen) == 1  # a 400 is not retried
        with pytest.raises(RemoteHTTPError, match=r"HTTP 500: boom \(after 3 tries\)$") as info:
            enc("down", retries=2).encode_query(Query.text("x"))
        assert len(seen) == 4 and KEY not in str(info.value)
        with pytest.raises(RemoteResponseError, match="returned 0 vectors for 1 inputs"):
            enc("short").encode_query(Query.text("x"))

    port = free_port()  # nothing listens there
    closed = OpenAIEmbeddingsEncoder(OpenAIEmbeddingsEncoder.Params(**_params(f"http://127.0.0.1:{port}", model="m",
                                                                              retries=1)))
    with pytest.raises(RemoteUnavailable, match=rf"127.0.0.1:{port}/embeddings: cannot connect .*\(after 2 tries\)"):
        closed.encode_query(Query.text("x"))


def test_timeouts_are_typed():
    def handler(path: str, body: Any, headers: dict[str, str]) -> Reply:
        time.sleep(0.5)
        return 200, [[1.0]], {}

    with scripted(handler) as (url, _):
        enc = TeiEncoder(TeiEncoder.Params(**_params(url, timeout=0.1, retries=0)))
        with pytest.raises(RemoteUnavailable, match=r"/embed: no answer within 0.1 s \(timeout\)"):
            enc.encode_query(Query.text("x"))


def test_concurrency_is_limited():
    live, peak, lock = [0], [0], threading.Lock()

    def handler(path: str, body: Any, headers: dict[str, str]) -> Reply:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return 200, _vectors(body["inputs"]), {}

    with scripted(handler) as (url, seen):
        enc = TeiEncoder(TeiEncoder.Params(**_params(url, batch_size=1, max_concurrency=2)))
        out = enc.encode_batch([f"t{i}" for i in range(8)], Modality.TEXT, "document")
        assert out.shape == (8, 4) and len(seen) == 8 and peak[0] == 2
        assert list(out[:, 3]) == [0.0] * 8  # each request had one input, in order


def test_retry_after_parses_seconds_and_dates():
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after("soon") is None and retry_after(None) is None
    service = HttpService(RemoteParams(url="http://127.0.0.1:1/v1/"), "x")
    assert service.endpoint("embeddings") == "http://127.0.0.1:1/v1/embeddings"
