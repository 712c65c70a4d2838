"""Hostile input, the embedding cache (issue 17): keyed by what the weights are, never trusting
NaN, malformed rows or a file that is not a cache."""

from __future__ import annotations

import logging
import sqlite3
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import prismrag
from prismrag import Encoder, Modality, Params, Registry, hookimpl
from prismrag.cache import EmbeddingCache
from prismrag.contracts import Context
from prismrag.errors import IndexMismatchError


class WeightsParams(Params):
    model: str
    dimension: int = 16


class WeightsEncoder(Encoder):
    """Hashed words salted with the bytes of `<model>/weights.bin`: other weights, other vectors."""

    name = "weights-hash"
    Params = WeightsParams
    document_modalities = frozenset({Modality.TEXT})
    query_modalities = frozenset({Modality.TEXT})
    encoded = 0

    def encode(self, contents: Sequence[str], modality: Modality, role: str) -> np.ndarray:
        salt = (self.context.path(self.params.model) / "weights.bin").read_bytes()
        type(self).encoded += len(contents)
        out = np.zeros((len(contents), self.params.dimension), np.float32)
        for i, text in enumerate(contents):
            for word in text.split():
                out[i, zlib.crc32(salt + word.encode()) % self.params.dimension] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def dimension(self) -> int:
        return self.params.dimension


class _Plugin:
    @hookimpl
    def register_encoders(self, register):
        register(WeightsEncoder)


def project(root: Path, weights: bytes) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.bin").write_bytes(weights)
    (root / "docs").mkdir()
    for i in range(5):
        (root / "docs" / f"d{i}.txt").write_text(f"document number {i} about topic{i}")
    recipe = root / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: r
        store: {use: qdrant-edge, path: store}
        sources: [{use: text-files, path: docs}]
        retrievers:
          dense: {encoder: {use: weights-hash, model: model}}
        """))
    return recipe


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    registry.add_plugin(_Plugin(), name="hostile-cache")
    return registry


def test_two_projects_with_one_model_path_and_other_weights_share_no_vectors(tmp_path, reg):
    a = project(tmp_path / "a", b"weights-A" * 100)
    b = project(tmp_path / "b", b"weights-B" * 100)
    with prismrag.load_recipe(a, registry=reg) as ea:
        assert ea.ingest().encoded["dense"] == 5
    with prismrag.load_recipe(b, registry=reg) as eb:
        report = eb.ingest()
        assert report.encoded["dense"] == 5 and report.cache_hits["dense"] == 0
    c = project(tmp_path / "c", b"weights-A" * 100)  # the same weights elsewhere: shared, as before
    with prismrag.load_recipe(c, registry=reg) as ec:
        assert ec.ingest().cache_hits["dense"] == 5


def test_a_model_retrained_in_place_is_noticed_and_rebuild_reencodes(tmp_path, reg):
    a = project(tmp_path / "a", b"old" * 1000)
    with prismrag.load_recipe(a, registry=reg) as engine:
        engine.ingest()
    (tmp_path / "a" / "model" / "weights.bin").write_bytes(b"new" * 1000)  # same size, new bytes
    with prismrag.load_recipe(a, registry=reg) as engine, pytest.raises(IndexMismatchError, match="--rebuild"):
        engine.ingest()
    with prismrag.load_recipe(a, registry=reg) as engine:
        report = engine.ingest(rebuild=True)
        assert report.encoded["dense"] == 5 and report.cache_hits["dense"] == 0


def test_weights_fingerprint_follows_the_files_not_the_name(tmp_path):
    for name, data in [("x", b"1" * 10), ("y", b"2" * 10)]:
        (tmp_path / name / "model").mkdir(parents=True)
        (tmp_path / name / "model" / "w.bin").write_bytes(data)
    fx = WeightsEncoder(WeightsEncoder.Params(model="model"), Context(base_dir=tmp_path / "x"))
    fy = WeightsEncoder(WeightsEncoder.Params(model="model"), Context(base_dir=tmp_path / "y"))
    hub = WeightsEncoder(WeightsEncoder.Params(model="org/not-here"), Context(base_dir=tmp_path))
    assert fx.fingerprint() != fy.fingerprint()
    assert hub.weights_fingerprint() is None


def test_nan_and_inf_rows_are_neither_cached_nor_trusted(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path)
    rows = np.ones((3, 4), np.float32)
    rows[1, 2] = np.nan
    rows[2, 0] = np.inf
    cache.put("fp", ["ok", "nan", "inf"], rows)
    assert sorted(cache.get("fp", ["ok", "nan", "inf"], "dense")) == [0]
    poison = np.full(4, np.nan, np.float32).tobytes()  # written behind the cache's back
    with cache._db:
        cache._db.execute("INSERT OR REPLACE INTO emb VALUES ('fp', 'ok', ?)", [poison])
    with caplog.at_level(logging.WARNING, logger="prismrag.cache"):
        assert cache.get("fp", ["ok"], "dense") == {}
    assert "NaN" in caplog.text and "re-encoded" in caplog.text
    assert cache._db.execute("SELECT count(*) FROM emb").fetchone()[0] == 0  # dropped, not kept
    cache.close()


@pytest.mark.parametrize("kind, blob", [
    ("dense", b"\x00\x00\x80"),  # 3 bytes: no float32 row
    ("dense", np.ones(3, np.float32).tobytes()),  # another width than its neighbours
    ("sparse", b"\x05\x00\x00\x00\x01"),  # header says 5 entries, one byte follows
    ("multi", b"\x02\x00\x00\x00\x04\x00\x00\x00" + b"\x00" * 12),  # 2x4 announced, 3 numbers there
    ("dense", "a string, not bytes"),
])
def test_a_malformed_row_is_dropped_and_reencoded_not_fatal(tmp_path, caplog, kind, blob):
    cache = EmbeddingCache(tmp_path)
    good = {
        "dense": np.ones((2, 4), np.float32),
        "sparse": prismrag.types.SparseBatch.from_rows([(np.array([1]), np.array([0.5], np.float32))] * 2),
        "multi": prismrag.types.MultiBatch([np.ones((2, 4), np.float32)] * 2),
    }[kind]
    cache.put("fp", ["a", "b"], good)
    with cache._db:
        cache._db.execute("INSERT OR REPLACE INTO emb VALUES ('fp', 'bad', ?)", [blob])
    with caplog.at_level(logging.WARNING, logger="prismrag.cache"):
        got = cache.get("fp", ["a", "bad", "b"], kind)
    assert sorted(got) == [0, 2] and "malformed" in caplog.text and str(cache.path) in caplog.text
    assert cache.get("fp", ["bad"], kind) == {}
    cache.close()


def test_a_malformed_row_does_not_block_an_ingest(tmp_path, reg, monkeypatch):
    monkeypatch.setenv("PRISMRAG_CACHE_DIR", str(tmp_path / "cache"))
    a = project(tmp_path / "a", b"w" * 50)
    with prismrag.load_recipe(a, registry=reg) as engine:
        engine.ingest()
    db = sqlite3.connect(tmp_path / "cache" / "embeddings.sqlite")
    with db:
        db.execute("UPDATE emb SET v = X'0102' WHERE rowid = (SELECT min(rowid) FROM emb)")
    db.close()
    with prismrag.load_recipe(a, registry=reg) as engine:
        report = engine.ingest(rebuild=True)
        assert report.added == 5 and report.encoded["dense"] == 1 and report.cache_hits["dense"] == 4


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b""])
def test_a_file_that_is_not_a_cache_is_moved_aside_loudly(tmp_path, caplog, content):
    (tmp_path / "embeddings.sqlite").write_bytes(content)
    if not content:  # a SQLite database of someone else's, with another table layout
        db = sqlite3.connect(tmp_path / "embeddings.sqlite")
        db.execute("CREATE TABLE emb (x INTEGER)")
        db.commit()
        db.close()
    with caplog.at_level(logging.WARNING, logger="prismrag.cache"):
        cache = EmbeddingCache(tmp_path)
    cache.put("fp", ["a"], np.ones((1, 4), np.float32))
    assert sorted(cache.get("fp", ["a"], "dense")) == [0]
    moved = list(tmp_path.glob("embeddings.sqlite.damaged-*"))
    assert len(moved) == 1 and "moved it to" in caplog.text
    cache.close()
