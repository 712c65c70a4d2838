"""`prism tui --server`: the TUI's search screen answered by a real `prism serve` on 127.0.0.1
(the hash test encoder, a subprocess), driven by Textual's pilot."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("textual")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from server_helpers import call, env_with_plugin, free_port, ingest_docs, serve  # noqa: E402
from test_tui import SIZE, rows, text, type_text, wait_for  # noqa: E402
from tui_helpers import make_image  # noqa: E402

from prismrag.explain import explain, explanation_lines  # noqa: E402
from prismrag.filters import parse_filter_expressions, parse_filter_text  # noqa: E402
from prismrag.server.remote_engine import filter_expressions, hit_from_dict  # noqa: E402
from prismrag.tui.app import PrismApp  # noqa: E402
from prismrag.tui.search_screen import SearchScreen  # noqa: E402

pytestmark = pytest.mark.anyio
KEY = "tui-key-0123456789"
RECIPE = """\
name: docs
store: {use: qdrant-edge, path: docs-store}
retrievers:
  dense: {encoder: {use: hash, dimension: 64}, top_k: 20}
  words: {encoder: {use: hash, dimension: 256, salt: w}, top_k: 20}
fusion: {use: rrf, k: 60, weights: {dense: 1.0, words: 0.5}}
rerank: [{use: mmr, retriever: dense, lambda: 0.7, top_n: 10}]
search: {top_k: 4}
"""



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A keyed `prism serve` of a fused, reranked hash recipe, its documents ingested."""
    folder = tmp_path_factory.mktemp("tui-serve")
    (folder / "docs.yaml").write_text(RECIPE)
    env = env_with_plugin(folder, PRISM_API_KEY=KEY, PRISMRAG_CACHE_DIR=str(folder / "cache"), HF_HUB_OFFLINE="1")
    with serve([folder / "docs.yaml"], folder, env=env) as base:
        ingest_docs(base, key=KEY)
        yield base, folder


def served_search(base: str, body: dict) -> dict:
    status, answer = call(base + "/v1/recipes/docs/search", body, key=KEY)
    assert status == 200, answer
    return answer


async def test_a_query_typed_in_the_tui_shows_the_servers_hits_and_why_they_ranked(server):
    base, _ = server
    app = PrismApp(server=base, api_key=KEY)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_ready and isinstance(app.screen, SearchScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.query("#w-words"))
        assert f"docs at {base}: ready" in text(screen.query_one("#search-status"))
        assert screen.query_one("#top-k").placeholder == "4"  # the served recipe's search.top_k
        assert screen.query_one("#w-words").value == "0.5"  # and its fusion weights
        await type_text(pilot, "apple trees orchards")
        await wait_for(pilot, lambda: screen._request is not None and screen._request.query == "apple trees orchards")
        want = served_search(base, {"query": "apple trees orchards", "explain": True})
        assert [(h.id, h.score) for h in screen._hits] == [(h["id"], h["score"]) for h in want["hits"]]
        assert [r[2] for r in rows(screen.query_one("#hits"))] == [h["id"] for h in want["hits"]]
        # the same provenance: rebuilt hits write the server's JSON, and explain as the server does
        assert [h.to_dict() for h in screen._hits] == want["hits"]
        assert [explanation_lines(explain(h, screen._routed, want["top_ks"])) for h in screen._hits] == want["explanations"]
        await wait_for(pilot, lambda: "why it ranked" in text(screen.query_one("#detail-body")))
        detail = text(screen.query_one("#detail-body"))
        assert all(word in detail for word in ("rrf", "mmr", "dense", "words", "fusion share"))
        status = text(screen.query_one("#search-status"))
        assert "4 hits" in status and "retrievers: dense, words" in status

        # weights, top-k and filters go to the server
        screen.query_one("#w-words").value = "0"
        await wait_for(pilot, lambda: screen._request.weights == {"dense": 1.0, "words": 0.0}
                       and screen._hits and screen._hits[0].provenance.contributions["words"] == 0.0)
        screen.query_one("#top-k").value = "2"
        screen.query_one("#filter").value = "kind=fruit"
        await wait_for(pilot, lambda: screen._request.filter_text == "kind=fruit" and len(screen._hits) == 2)
        assert {h.id for h in screen._hits} == {"apples", "trees"}
        # the server's own error message, in the status line
        screen.query_one("#filter").value = "nosuchfield=1"
        await wait_for(pilot, lambda: "unknown field" in text(screen.query_one("#search-status")))
        assert screen.query_one("#hits").row_count == 0


async def test_a_query_file_is_uploaded_and_searched_on_the_server(server, tmp_path: Path):
    base, _ = server
    image = make_image(tmp_path / "query.png")
    app = PrismApp(server=base, api_key=KEY)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_ready and isinstance(app.screen, SearchScreen))
        screen = app.screen
        screen.query_one("#query").value = str(image)
        await wait_for(pilot, lambda: screen._request is not None and screen._hits)
        want = served_search(base, {"media_base64": base64.b64encode(image.read_bytes()).decode(), "modality": "image"})
        assert [h.to_dict() for h in screen._hits] == want["hits"]
        assert "image query" in text(screen.query_one("#search-status"))


@pytest.mark.parametrize("key, message", [("wrong-key", "wrong API key"), (None, "missing API key")])
async def test_a_refused_key_is_a_clear_status_message(server, key, message):
    base, _ = server
    app = PrismApp(server=base, api_key=key)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_status.startswith("error"))
        status = text(app.screen.query_one("#search-status"))
        assert f"prism serve at {base} refused the request: {message}" in status and "$PRISM_API_KEY" in status
        assert "Traceback" not in status and app.engine is None
        await type_text(pilot, "apples")  # typing tries again, and says the same
        await pilot.pause(0.3)
        await wait_for(pilot, lambda: message in text(app.screen.query_one("#search-status")))


async def test_a_server_that_is_down_is_a_clear_status_message():
    url = f"http://127.0.0.1:{free_port()}"
    app = PrismApp(server=url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_status.startswith("error"))
        assert f"cannot reach prism serve at {url}" in text(app.screen.query_one("#search-status"))


async def test_screens_that_need_the_index_say_so_and_f2_lists_the_served_recipes(server):
    base, folder = server
    app = PrismApp(server=base, api_key=KEY)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        for key, title in (("f3", "Ingest"), ("f5", "Eval"), ("f6", "Plugins"), ("f7", "Items")):
            await pilot.press(key)
            said = f"{title} is not available against a server ({base})"
            await wait_for(pilot, lambda: app.screen.query("#not-on-server")
                           and said in text(app.screen.query_one("#not-on-server")))  # noqa: B023
        assert "GET /v1/recipes/docs/items?filter=" in text(app.screen.query_one("#not-on-server"))  # the served recipe's
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.screen.query("#served") and app.screen.query_one("#served").row_count == 1)
        cells = rows(app.screen.query_one("#served"))[0]
        assert cells[0].startswith("docs") and cells[1] == "ready" and cells[5] == str((folder / "docs.yaml").resolve())
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))


def test_filters_travel_to_the_server_as_the_same_conditions():
    line = 'kind=fruit year>=2020 date<"2024-01-01" tag=a|b title="a b" lang!=de code="123" ' \
           'file prefix docs/ tags contains rag author exists draft not exists tag not in [x, "y z"] n=null'
    flt = parse_filter_text(line)
    assert parse_filter_expressions(filter_expressions(flt)) == flt


def test_a_hit_from_the_servers_json_is_the_hit_it_was(server):
    base, _ = server
    for hit in served_search(base, {"query": "rivers flow to the sea", "top_k": 5})["hits"]:
        assert hit_from_dict(hit).to_dict() == hit


def test_the_server_describes_what_a_search_front_end_needs(server):
    base, _ = server
    status, recipes = call(base + "/v1/recipes", key=KEY)
    assert status == 200
    (docs,) = recipes
    assert docs["top_k"] == 4
    assert docs["fusion"] == {"name": "rrf", "weights": {"dense": 1.0, "words": 0.5}}
    assert docs["retriever_details"] == [
        {"name": "dense", "encoder": "hash", "top_k": 20, "query_modalities": ["image", "text"]},
        {"name": "words", "encoder": "hash", "top_k": 20, "query_modalities": ["image", "text"]},
    ]
    assert docs["extensions"].get(".pdf") == "text"  # claimed by the server's document loaders
    answer = served_search(base, {"query": "apples", "filters": ["kind=vegetable"]})
    assert answer["hits"] == [] and answer["top_ks"] == {"dense": 20, "words": 20}
    assert any("kind" in note and "fruit" in note for note in answer["notes"])  # which values `kind` holds


def test_the_tui_process_of_a_server_loads_no_plugin_and_no_torch(server):
    """`prism tui --server URL` in a fresh process, driven headless: a search, then its modules."""
    base, _ = server
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        from prismrag.tui.app import PrismApp

        async def drive(app):
            async with app.run_test(size=(100, 30)) as pilot:
                while not app.engine_ready:
                    assert not app.engine_status.startswith("error"), app.engine_status
                    await pilot.pause(0.05)
                app.screen.query_one("#query").value = "apples"
                while not app.screen._hits:
                    await pilot.pause(0.05)
                hits = [h.id for h in app.screen._hits]
            print(json.dumps({{"hits": hits, "modules": sorted(sys.modules)}}))

        PrismApp.run = lambda self: asyncio.run(drive(self))
        from prismrag.cli import main
        main(["tui", "--server", {base!r}])
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PRISM_API_KEY=KEY))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "apples" in report["hits"]
    modules = set(report["modules"])
    heavy = {"torch", "transformers", "sentence_transformers", "open_clip", "onnxruntime", "fastapi", "uvicorn"}
    assert not heavy & modules, heavy & modules
    assert not [m for m in modules if m.startswith("prismrag.plugins")]
