"""Ingest and search end to end, on the real embedded engine, with a deterministic test encoder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_plugins import HashEncoder

import prismrag
from prismrag import IndexMismatchError, IngestError, QueryError

DOCS = {
    "cats.md": "# Cats\n\nCats are small carnivorous mammals. A cat purrs and hunts mice.",
    "dogs.md": "# Dogs\n\nDogs are loyal companions. A dog barks and fetches sticks.",
    "boats.md": "# Boats\n\nA sailing boat uses wind on its sails to cross the sea.",
    "sub/trains.md": "# Trains\n\nTrains run on rails between stations, pulled by a locomotive.",
}


def write_docs(root: Path, docs: dict[str, str] = DOCS) -> Path:
    for rel, text in docs.items():
        p = root / "docs" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root / "docs"


def write_recipe(root: Path, body: str = "", name: str = "t", dim: int = 512, extra_retrievers: str = "", store: str | None = None) -> Path:
    store = store or f"{{use: qdrant-edge, path: store-{name}}}"
    text = textwrap.dedent(f"""\
        name: {name}
        store: {store}
        sources:
          - {{use: text-files, path: docs, glob: "**/*.md", chunk: {{size: 200, overlap: 20}}}}
        retrievers:
          dense:
            encoder: {{use: hash, dimension: {dim}}}
            top_k: 20
        """) + textwrap.indent(textwrap.dedent(extra_retrievers), "  ") + textwrap.dedent(body)
    path = root / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def corpus(tmp_path):
    write_docs(tmp_path)
    return tmp_path


def test_ingest_then_search_finds_the_right_document(corpus, registry):
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    report = engine.ingest()
    assert report.added == 4 and report.errors == []
    hits = engine.search("a dog barks")
    assert hits[0].payload["file"] == "dogs.md"
    assert hits[0].rank == 1 and hits[0].modality.value == "text"
    assert "dog barks" in hits[0].text
    assert hits[0].provenance.retrievers["dense"].rank == 1
    data = hits[0].to_dict()
    assert set(data) == {"id", "score", "rank", "modality", "payload", "provenance"}
    json.dumps(data)  # serializable
    engine.close()


def test_reingest_unchanged_encodes_nothing_changed_file_only_its_items_deleted_file_disappears(corpus, registry, monkeypatch):
    monkeypatch.setenv("PRISMRAG_CACHE_DIR", str(corpus / "cache-a"))
    recipe = write_recipe(corpus, body="ingest: {cache: false}\n")
    engine = prismrag.load_recipe(recipe, registry=registry)
    engine.ingest()
    first = HashEncoder.encoded()
    assert first == 4

    report = engine.ingest()
    assert HashEncoder.encoded() == first, "an unchanged corpus must encode nothing"
    assert (report.unchanged, report.added, report.updated, report.deleted) == (4, 0, 0, 0)

    (corpus / "docs" / "boats.md").write_text("# Boats\n\nA rowing boat is moved by oars.", encoding="utf-8")
    report = engine.ingest()
    assert HashEncoder.encoded() == first + 1, "only the changed file's item is re-encoded"
    assert (report.updated, report.unchanged) == (1, 3)
    assert engine.search("oars rowing")[0].payload["file"] == "boats.md"

    (corpus / "docs" / "cats.md").unlink()
    report = engine.ingest()
    assert report.deleted == 1
    assert all(h.payload["file"] != "cats.md" for h in engine.search("cat purrs mice", top_k=10))
    assert sorted(engine.store.manifest()) == ["boats.md#0", "dogs.md#0", "sub/trains.md#0"]
    engine.close()


def test_two_sources_with_the_same_relative_paths_need_an_id_prefix(tmp_path, registry):
    for folder, text in (("blog", "Dogs bark at night."), ("wiki", "Boats sail on the sea.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "index.md").write_text(text)
    sources = "sources:\n  - {use: text-files, path: blog}\n  - {use: text-files, path: wiki%s}\n"
    recipe = write_recipe(tmp_path)
    base = recipe.read_text().split("sources:")[0] + sources + "retrievers:" + recipe.read_text().split("retrievers:")[1]
    recipe.write_text(base % "")
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        report = engine.ingest()
        assert report.added == 1 and "duplicate item id 'index.md#0'" in report.errors[0]
        assert "id_prefix" in report.errors[0]
    recipe.write_text(base % ", id_prefix: wiki/")
    with prismrag.load_recipe(recipe, registry=registry) as engine:
        report = engine.ingest()
        assert report.errors == [] and report.added == 1 and report.deleted == 0
        assert sorted(engine.store.manifest()) == ["index.md#0", "wiki/index.md#0"]
        assert engine.search("boats sea", top_k=1)[0].payload["file"] == "index.md"


def test_embedding_cache_is_shared_across_recipes(corpus, registry):
    a = prismrag.load_recipe(write_recipe(corpus, name="a"), registry=registry)
    a.ingest()
    a.close()
    n = HashEncoder.encoded()
    b = prismrag.load_recipe(write_recipe(corpus, name="b"), registry=registry)
    report = b.ingest()
    assert HashEncoder.encoded() == n and report.cache_hits["dense"] == 4 and report.added == 4
    assert b.search("trains rails")[0].payload["file"] == "sub/trains.md"
    b.close()


def test_a_cache_handed_in_outlives_the_engines_that_use_it(corpus, registry, tmp_path):
    from prismrag.cache import EmbeddingCache

    shared = EmbeddingCache(tmp_path / "shared-cache")
    a = prismrag.load_recipe(write_recipe(corpus, name="a"), registry=registry, cache=shared)
    b = prismrag.load_recipe(write_recipe(corpus, name="b"), registry=registry, cache=shared)
    a.ingest()
    a.close()  # must not close the cache b still uses
    n = HashEncoder.encoded()
    assert b.ingest().cache_hits["dense"] == 4 and HashEncoder.encoded() == n
    a.rebuild()  # a, used again after close, still reads the cache it was given
    assert a.ingest().cache_hits["dense"] == 4 and a.cache is shared
    a.close()
    b.close()
    shared.close()


def test_changed_dimension_is_refused_with_how_to_reindex(corpus, registry):
    engine = prismrag.load_recipe(write_recipe(corpus, dim=512), registry=registry)
    engine.ingest()
    engine.close()
    engine = prismrag.load_recipe(write_recipe(corpus, dim=256), registry=registry)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        engine.ingest()
    report = engine.ingest(rebuild=True)
    assert report.added == 4
    assert engine.info()["retrievers"]["dense"]["dimension"] == 256
    engine.close()


def test_changed_encoder_params_are_refused(corpus, registry):
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    engine.ingest()
    engine.close()
    path = write_recipe(corpus)
    path.write_text(path.read_text().replace("dimension: 512", "dimension: 512, salt: x"))
    with pytest.raises(IndexMismatchError) as err:
        prismrag.load_recipe(path, registry=registry).search("dogs")
    # issue 15 item 11: which retriever, which parameter, old and new value, and the recipe file
    message = str(err.value)
    assert "dense: salt '' → 'x'" in message and f"prism ingest {path} --rebuild" in message


def test_empty_corpus_is_an_error_and_changes_nothing(corpus, registry):
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    engine.ingest()
    for f in (corpus / "docs").rglob("*.md"):
        f.unlink()
    with pytest.raises(IngestError, match="empty corpus"):
        engine.ingest()
    assert len(engine.store.manifest()) == 4
    with pytest.raises(IngestError, match="empty corpus.*nothing in the index was changed"):
        engine.ingest(rebuild=True)  # and a rebuild does not drop the index first
    assert len(engine.store.manifest()) == 4
    engine.close()


def test_search_before_ingest_says_to_ingest(corpus, registry):
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    with pytest.raises(QueryError, match="nothing is indexed yet.*prism ingest"):
        engine.search("dogs")


def test_query_modality_no_retriever_accepts(corpus, registry, tmp_path):
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    engine.ingest()
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF0000WAVE")
    with pytest.raises(QueryError, match="accepts audio queries.*text"):
        engine.search(clip)
    engine.close()


def test_bad_query_arguments(corpus, registry, tmp_path):
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    engine.ingest()
    with pytest.raises(QueryError, match="top_k must be positive"):
        engine.search("dogs", top_k=0)  # not the recipe's default
    missing = str(tmp_path / "photos" / "missing.png")
    with pytest.raises(QueryError, match="missing.png.*does not exist"):
        engine.search(missing, modality="image")  # a typo in a path is not searched as text
    with pytest.raises(QueryError, match="missing.png.*does not exist"):
        engine.search(Path(missing))
    assert engine.search("dogs", top_k=1)[0].id
    engine.close()


def test_filters(corpus, registry):
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    engine.ingest()
    hits = engine.search("a dog barks", filter={"file": "cats.md"})
    assert [h.payload["file"] for h in hits] == ["cats.md"]
    hits = engine.search("animals", filter={"file": ["cats.md", "dogs.md"]}, top_k=10)
    assert {h.payload["file"] for h in hits} == {"cats.md", "dogs.md"}
    with pytest.raises(QueryError, match="unknown field.*colour.*Known fields"):
        engine.search("dogs", filter={"colour": "red"})
    engine.close()


def test_non_utf8_file_is_reported_and_the_rest_indexed(corpus, registry):
    (corpus / "docs" / "latin.md").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    report = engine.ingest()
    assert report.added == 4
    assert any("latin.md" in e for e in report.errors)
    engine.close()


def test_hybrid_fusion_provenance_and_weights(corpus, registry):
    recipe = write_recipe(
        corpus,
        extra_retrievers="""\
            keywords:
              encoder: {use: bm25}
              top_k: 20
        """,
        body="fusion: {use: rrf, k: 60, weights: {dense: 1.0, keywords: 2.0}}\n",
    )
    engine = prismrag.load_recipe(recipe, registry=registry)
    engine.ingest()
    hits = engine.search("sailing boat wind")
    top = hits[0]
    assert top.payload["file"] == "boats.md"
    prov = top.provenance
    assert set(prov.retrievers) == {"dense", "keywords"} and prov.fusion == "rrf"
    expected = 1.0 / (60 + prov.retrievers["dense"].rank) + 2.0 / (60 + prov.retrievers["keywords"].rank)
    assert top.score == pytest.approx(expected)
    assert sum(prov.contributions.values()) == pytest.approx(top.score)
    live = engine.search("sailing boat wind", weights={"dense": 0.0, "keywords": 1.0})
    assert live[0].provenance.contributions["dense"] == 0.0
    # naming one retriever leaves the others at the recipe's weight (keywords: 2.0, not 1.0)
    only_dense = engine.search("sailing boat wind", weights={"dense": 0.5})[0]
    ranks = {n: t.rank for n, t in only_dense.provenance.retrievers.items()}
    assert only_dense.provenance.contributions["keywords"] == pytest.approx(2.0 / (60 + ranks["keywords"]))
    assert only_dense.provenance.contributions["dense"] == pytest.approx(0.5 / (60 + ranks["dense"]))
    engine.close()


def test_parity_qdrant_edge_and_qdrant_local_exact_search(corpus, registry):
    pytest.importorskip("qdrant_client")
    import numpy as np

    rng = np.random.default_rng(7)  # random documents, so that no two score the same
    vocab = [f"term{i}" for i in range(300)]
    weights = 1.0 / np.arange(1, 301)
    docs = {
        f"d{i}.md": " ".join(rng.choice(vocab, size=int(rng.integers(10, 60)), p=weights / weights.sum()))
        for i in range(80)
    }
    write_docs(corpus, docs)
    retrievers = """\
        keywords:
          encoder: {use: bm25}
          top_k: 20
    """
    body = "fusion: {use: rrf}\nsearch: {top_k: 10}\n"
    edge = write_recipe(corpus, name="edge", extra_retrievers=retrievers, body=body,
                        store="{use: qdrant-edge, path: edge-store}")
    local = write_recipe(corpus, name="local", extra_retrievers=retrievers, body=body,
                         store="{use: qdrant, path: local-store}")
    for p in (edge, local):
        p.write_text(p.read_text().replace("encoder: {use: hash, dimension: 512}",
                                           "encoder: {use: hash, dimension: 512}\n    index: {use: dense, exact: true}"))
    e = prismrag.load_recipe(edge, registry=registry)
    q = prismrag.load_recipe(local, registry=registry)
    e.ingest()
    q.ingest()
    # frequent terms, so every list is full of documents with distinct, non-zero scores
    for query in ["term0 term1 term2", "term3 term5", "term1 term8", "term0 term4 term9", "term2 term6 term7"]:
        assert [h.id for h in e.search(query)] == [h.id for h in q.search(query)], query
    e.close()
    q.close()


SLOW_INGEST = """
import sys, time
sys.path.insert(0, {tests!r})
import prismrag
from fake_plugins import HashEncoder, make_registry

def progress(stage, done, total):
    # Counts inside a batch follow the encoder; a batch's end (a multiple of batch_size) is
    # reported only once it is stored.
    if stage == "encode" and done and done % 5 == 0:
        print("durable", done, flush=True)

engine = prismrag.load_recipe({recipe!r}, registry=make_registry())
engine.ingest(progress)
print("finished", flush=True)
"""


def test_sigkill_mid_ingest_then_rerun_leaves_every_item_exactly_once(tmp_path, registry):
    docs = {f"doc{i:03d}.md": f"# Doc {i}\n\nalpha beta {i} gamma {i * 3}" for i in range(60)}
    write_docs(tmp_path, docs)
    recipe = write_recipe(tmp_path, body="ingest: {batch_size: 5}\n")
    recipe.write_text(recipe.read_text().replace("dimension: 512", "dimension: 512, delay: 0.15"))
    script = SLOW_INGEST.format(tests=str(Path(__file__).parent), recipe=str(recipe))
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    durable = 0
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("durable"):
            durable = int(line.split()[1])
            if durable >= 15:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 15 <= durable < 60, "the writer must be killed mid-ingest"

    engine = prismrag.load_recipe(recipe, registry=registry)
    engine.open()
    stored = engine.store.manifest()
    assert len(stored) >= durable, "everything reported durable survives the kill"
    report = engine.ingest()
    assert report.unchanged >= durable and report.added == 60 - report.unchanged
    manifest = engine.store.manifest()
    assert sorted(manifest) == sorted(f"doc{i:03d}.md#0" for i in range(60))
    assert engine.store.info().points == 60
    engine.close()


def test_metadata_change_updates_payload_from_the_cache(corpus, registry):
    from prismrag import Item, Modality

    engine = prismrag.load_recipe(write_recipe(corpus), registry=registry)
    items = [Item("x", Modality.TEXT, "wolves howl at night", {"lang": "en"})]
    engine.ingest_items(items)
    n = HashEncoder.encoded()
    report = engine.ingest_items([Item("x", Modality.TEXT, "wolves howl at night", {"lang": "de"})])
    assert report.updated == 1 and HashEncoder.encoded() == n
    assert engine.search("wolves")[0].payload["lang"] == "de"
    engine.close()
