"""`prism serve` as a subprocess on 127.0.0.1: the official OpenAI client, auth, limits, media
paths, JSON errors, search/ingest/rerank/metrics, and the same hits as `prism search --json`."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess

import numpy as np
import pytest
from server_helpers import DOCS, PRISM, call, env_with_plugin, hash_recipe, ingest_docs, serve

pytest.importorskip("fastapi")
KEY = "test-key-0123456789"
MMR = "rerank: [{use: mmr, retriever: dense, lambda: 0.7}]\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One keyed server with a hash recipe (MMR reranker) and a media root; documents ingested."""
    folder = tmp_path_factory.mktemp("serve")
    (folder / "media").mkdir()
    (folder / "media" / "q.png").write_bytes(b"\x89PNG fake image bytes for the hash encoder")
    (folder / "secret.png").write_bytes(b"outside the root")
    (folder / "media" / "link.png").symlink_to(folder / "secret.png")
    env = env_with_plugin(folder, PRISM_API_KEY=KEY, PRISMRAG_CACHE_DIR=str(folder / "cache"), HF_HUB_OFFLINE="1")
    recipe = hash_recipe(folder, extra=MMR)
    with serve([recipe], folder, "--max-body-mb", "0.05", "--media-root", str(folder / "media"), env=env) as base:
        ingest_docs(base, key=KEY)
        yield base, folder


def test_openai_client_embeddings_equal_the_local_encoder(server):
    openai = pytest.importorskip("openai")
    from fake_plugins import HashEncoder

    from prismrag import Modality

    base, _ = server
    client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0)
    texts = ["apples in the orchard", "rivers and deltas", "x"]
    local = HashEncoder(HashEncoder.Params(dimension=64)).encode_batch(texts, Modality.TEXT, "document")
    for fmt in ("float", None):  # left out, the client asks for base64 and decodes it
        extra = {"encoding_format": fmt} if fmt else {}
        answer = client.embeddings.create(model="docs/dense", input=texts, **extra)
        got = np.array([d.embedding for d in answer.data], dtype=np.float32)
        assert got.shape == (3, 64)
        np.testing.assert_allclose(got, local, atol=1e-5)
    assert [m.id for m in client.models.list().data] == ["docs/dense"]
    with pytest.raises(openai.NotFoundError, match="no model 'docs/nope'"):
        client.embeddings.create(model="docs/nope", input="x")


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_key_is_401_json(server, key):
    base, _ = server
    for method, path, body in [("POST", "/v1/recipes/docs/search", {"query": "apples"}),
                               ("GET", "/v1/models", None), ("GET", "/metrics", None), ("GET", "/openapi.json", None)]:
        status, answer = call(base + path, body, key=key, method=method)
        assert status == 401, (path, answer)
        assert answer["error"]["type"] == "Unauthorized"
        assert ("wrong" if key else "missing") in answer["error"]["message"]
    assert call(base + "/healthz")[0] == 200  # health needs no key
    status, _ = call(base + "/v1/models", headers={"X-API-Key": KEY})
    assert status == 200
    schema = call(base + "/openapi.json", key=KEY)[1]
    assert schema["security"] == [{"bearer": []}] and schema["paths"]["/healthz"]["get"]["security"] == []


def test_oversize_body_is_413_json(server):
    base, _ = server
    status, answer = call(base + "/v1/recipes/docs/search", {"query": "word " * 20_000}, key=KEY)
    assert status == 413
    assert "limit of 52,428 bytes" in answer["error"]["message"]
    # without a Content-Length (chunked), the limit holds as the body streams in
    body = json.dumps({"query": "word " * 20_000}).encode()
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    conn.request("POST", "/v1/recipes/docs/search", body=(body[i : i + 4096] for i in range(0, len(body), 4096)),
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]["type"] == "PayloadTooLarge"
    conn.close()


@pytest.mark.parametrize("path", ["../secret.png", "link.png", "/etc/passwd", "../../../../etc/passwd", "sub/../../secret.png"])
def test_media_paths_outside_the_root_are_refused(server, path):
    base, _ = server
    status, answer = call(base + "/v1/recipes/docs/search", {"media_path": path}, key=KEY)
    assert status == 403, answer
    assert "outside the allowed roots" in answer["error"]["message"]


def test_media_queries_by_path_upload_and_base64_agree(server):
    base, folder = server
    data = (folder / "media" / "q.png").read_bytes()
    by_path = call(base + "/v1/recipes/docs/search", {"media_path": "q.png"}, key=KEY)
    by_b64 = call(base + "/v1/recipes/docs/search", {"media_base64": base64.b64encode(data).decode(),
                                                      "modality": "image"}, key=KEY)
    boundary = "prismboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    by_upload = call(base + "/v1/recipes/docs/search/upload", data=form, key=KEY,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert by_path[0] == by_b64[0] == by_upload[0] == 200, (by_path, by_b64, by_upload)
    assert by_path[1]["hits"] == by_b64[1]["hits"] == by_upload[1]["hits"]


def test_text_is_never_read_as_a_server_path(server):
    base, folder = server
    status, answer = call(base + "/v1/recipes/docs/search", {"query": str(folder / "secret.png")}, key=KEY)
    assert status == 200
    assert all("outside the root" not in json.dumps(h) for h in answer["hits"])


def test_search_options_and_errors_are_json_with_the_cli_messages(server):
    base, _ = server
    url = base + "/v1/recipes/docs/search"
    status, answer = call(url, {"query": "apple trees orchards", "top_k": 2, "filters": ["kind=fruit"], "explain": True},
                          key=KEY)
    assert status == 200
    assert [h["id"] for h in answer["hits"]] == ["trees", "apples"]
    assert set(answer["hits"][0]) == {"id", "score", "rank", "modality", "payload", "provenance"}
    assert answer["explanations"][0][0].startswith("dense: rank")
    assert answer["hits"][0]["provenance"]["rerank"][0]["stage"] == "0:mmr"
    status, answer = call(url, {"query": "apples", "filter": {"kind": "fruit"}, "top_k": 5}, key=KEY)
    assert {h["id"] for h in answer["hits"]} == {"trees", "apples"}
    for body, code, message in [
        ({"query": "   "}, 400, "the query is empty"),
        ({"query": "x", "filters": ["nokey=1"]}, 400, "nokey"),
        ({"query": "x", "top_k": 0}, 422, "top_k"),
        ({"query": "x", "unknown": 1}, 422, "unknown"),
        ({"media_base64": "%%%", "modality": "image"}, 422, "not valid base64"),
    ]:
        status, answer = call(url, body, key=KEY)
        assert status == code and message in answer["error"]["message"], (body, answer)
    status, answer = call(base + "/v1/recipes/none/search", {"query": "x"}, key=KEY)
    assert status == 404 and "recipes: docs" in answer["error"]["message"]
    status, answer = call(url, data=b"{not json", key=KEY, headers={"Content-Type": "application/json"})
    assert status == 422 and answer["error"]["type"] == "RequestValidationError"


def test_ingest_count_info_and_item_errors(server):
    base, _ = server
    before = call(base + "/v1/recipes/docs/count", key=KEY)[1]["count"]
    status, report = call(base + "/v1/recipes/docs/items", {"items": [
        {"id": "extra", "text": "An extra item about comets."},
        {"id": "bad", "text": "text", "modality": "image"}]}, key=KEY)
    assert status == 422 and "item 'bad'" in report["error"]["message"]
    status, report = call(base + "/v1/recipes/docs/items", {"items": [{"id": "extra", "text": "About comets."}]}, key=KEY)
    assert status == 200 and report["added"] == 1
    assert call(base + "/v1/recipes/docs/count", key=KEY)[1]["count"] == before + 1
    item = call(base + "/v1/recipes/docs/items/extra", key=KEY)[1]
    assert item == {"id": "extra", "owner": "api", "payload": {"modality": "text", "text": "About comets."}}
    status, answer = call(base + "/v1/recipes/docs/items/none", key=KEY)
    assert status == 404 and "no item 'none'" in answer["error"]["message"]
    listed = call(base + "/v1/recipes/docs/items?filter=kind%3Dfruit&limit=10", key=KEY)[1]["items"]
    assert [i["id"] for i in listed] == ["apples", "trees"]
    assert call(base + "/v1/recipes/docs/count?filter=kind%3Dfruit", key=KEY)[1]["count"] == 2
    status, answer = call(base + "/v1/recipes/docs/items/delete", {"ids": ["extra"]}, key=KEY)
    assert status == 200 and answer == {"deleted": ["extra"]}
    assert call(base + "/v1/recipes/docs/count", key=KEY)[1]["count"] == before
    status, answer = call(base + "/v1/recipes/docs/items/delete", {}, key=KEY)
    assert status == 400 and "give item ids, a filter or an owner" in answer["error"]["message"]
    info = call(base + "/v1/recipes/docs", key=KEY)[1]
    assert info["retrievers"]["dense"]["dimension"] == 64 and info["rerank"] == ["mmr"]
    assert call(base + "/v1/recipes", key=KEY)[1][0]["name"] == "docs"


@pytest.mark.parametrize("shape", ["cohere", "tei"])
def test_rerank_in_cohere_and_tei_shapes(server, shape):
    base, _ = server
    texts = [DOCS["stars"], DOCS["apples"], DOCS["trees"]]
    body = {"query": "apple orchards", "top_n": 2, "model": "docs/0"}
    body.update({"documents": texts, "return_documents": True} if shape == "cohere" else {"texts": texts, "return_text": True})
    status, answer = call(base + "/v1/rerank", body, key=KEY)
    assert status == 200, answer
    results = answer["results"]
    assert len(results) == 2 and results[0]["index"] in (1, 2)
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    if shape == "cohere":
        assert results[0]["document"]["text"] == texts[results[0]["index"]]
    else:
        assert results[0]["text"] == texts[results[0]["index"]]
    status, answer = call(base + "/v1/rerank", {"query": "x", "documents": ["a"], "model": "docs/9"}, key=KEY)
    assert status == 404 and "rerankers: docs/0" in answer["error"]["message"]


def test_metrics_count_requests_stages_and_errors(server):
    base, _ = server
    call(base + "/v1/recipes/docs/search", {"query": "rivers"}, key=KEY)
    status, text = call(base + "/metrics", key=KEY)
    assert status == 200
    assert 'prism_requests_total{method="POST",route="/v1/recipes/{recipe}/search",status="200"}' in text
    assert 'prism_search_stage_seconds_count{recipe="docs",stage="encode:dense"}' in text
    assert 'prism_search_batch_queries_count{recipe="docs"}' in text  # searches went through the search batcher
    assert "prism_errors_total" in text and "prism_search_queue_depth" in text


def test_a_public_interface_without_a_key_is_refused_at_start(tmp_path):
    recipe = hash_recipe(tmp_path)
    env = {k: v for k, v in env_with_plugin(tmp_path).items() if k != "PRISM_API_KEY"}
    out = subprocess.run([PRISM, "serve", str(recipe), "--host", "0.0.0.0", "--port", "1"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "refusing to serve 0.0.0.0 without an API key" in out.stderr


def test_server_hits_equal_local_cli_json_and_search_server_client(tmp_path):
    """`prism search --server` prints what the server returns; after the server stops, the
    local `prism search --json` on the same store prints the same hits."""
    recipe = hash_recipe(tmp_path)
    env = dict(env_with_plugin(tmp_path), PRISMRAG_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PRISM_API_KEY", None)
    with serve([recipe], tmp_path, env=env) as base:
        ingest_docs(base)
        served = call(base + "/v1/recipes/docs/search", {"query": "apple orchards trees"})[1]["hits"]
        for name in ("docs", str(recipe)):  # by recipe name, or by the recipe file the server loaded
            out = subprocess.run([PRISM, "search", "--server", base, name, "apple orchards trees", "--json"],
                                 env=env, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout) == served
        out = subprocess.run([PRISM, "search", name, "apple orchards trees", "--explain"],
                             env=dict(env, PRISM_SERVER=base), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "  1. " in out.stdout and "dense: rank 1" in out.stdout, out.stderr
        remote_text = out.stdout.rsplit("\n\n", 1)[0]
        out = subprocess.run([PRISM, "search", "--server", base, "nope", "x"], env=env, capture_output=True, text=True)
        assert out.returncode == 2 and "error: no recipe named 'nope'" in out.stderr
    out = subprocess.run([PRISM, "search", str(recipe), "apple orchards trees", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == served
    local = subprocess.run([PRISM, "search", str(recipe), "apple orchards trees", "--explain"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert local.stdout.rsplit("\n\n", 1)[0] == remote_text
    assert os.environ.get("PRISM_SERVER") is None


def test_a_request_past_the_timeout_is_504_json(tmp_path):
    recipe = hash_recipe(tmp_path, encoder="{use: hash, dimension: 64, delay: 0.6}")
    env = dict(env_with_plugin(tmp_path), PRISMRAG_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PRISM_API_KEY", None)
    with serve([recipe], tmp_path, "--timeout", "0.2", env=env) as base:
        call(base + "/v1/recipes/docs/items", {"items": [{"id": "a", "text": "apples"}]})
        status, answer = call(base + "/v1/recipes/docs/search", {"query": "apples"})
        assert status == 504 and "took over 0.2 s" in answer["error"]["message"]
        assert call(base + "/healthz")[0] == 200  # the server goes on
