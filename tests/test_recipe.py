"""Recipe validation: every kind of bad input gets an error naming the file, the field and the fix."""

from __future__ import annotations

import textwrap

import pytest

import prismrag
from prismrag import RecipeError

GOOD = """\
name: ok
sources:
  - {use: text-files, path: docs}
retrievers:
  dense:
    encoder: {use: hash, dimension: 16}
  keywords:
    encoder: {use: bm25}
fusion: {use: rrf, k: 60, weights: {dense: 1.0, keywords: 0.5}}
"""


def load(tmp_path, text, registry, suffix=".yaml"):
    path = tmp_path / f"recipe{suffix}"
    path.write_text(textwrap.dedent(text))
    return prismrag.load_recipe(path, registry=registry)


def errors(tmp_path, text, registry, suffix=".yaml") -> str:
    with pytest.raises(RecipeError) as info:
        load(tmp_path, text, registry, suffix)
    return str(info.value)


def test_good_recipe_builds_with_defaults(tmp_path, registry):
    engine = load(tmp_path, GOOD, registry)
    r = engine.recipe
    assert set(r.retrievers) == {"dense", "keywords"}
    assert r.retrievers["dense"].index.name == "dense" and r.retrievers["keywords"].index.name == "sparse"
    assert r.store.name == "qdrant-edge" and r.fusion.name == "rrf"
    assert r.spec.search.top_k == 10 and r.retrievers["dense"].top_k == 100


def test_toml_recipe(tmp_path, registry):
    engine = load(tmp_path, """\
        name = "t"
        [retrievers.dense]
        encoder = {use = "hash", dimension = 8}
        """, registry, suffix=".toml")
    assert engine.recipe.retrievers["dense"].encoder.dimension() == 8


def test_malformed_yaml_names_file_and_line(tmp_path, registry):
    msg = errors(tmp_path, "name: x\nretrievers:\n  dense: {encoder: {use: hash}\n", registry)
    assert "recipe.yaml" in msg and "invalid YAML" in msg and "line 3" in msg


def test_malformed_toml_names_file_and_line(tmp_path, registry):
    msg = errors(tmp_path, 'name = "x"\n[retrievers\n', registry, suffix=".toml")
    assert "recipe.toml" in msg and "invalid TOML" in msg and "line 2" in msg


def test_unknown_plugin_lists_known_ones_and_their_plugins(tmp_path, registry):
    msg = errors(tmp_path, GOOD.replace("use: bm25", "use: bm52"), registry)
    assert "retrievers.keywords.encoder.use" in msg and "unknown encoder 'bm52'" in msg
    assert "bm25 (from bm25)" in msg and "hash (from tests)" in msg


def test_unknown_parameter_names_field_path_and_allowed(tmp_path, registry):
    msg = errors(tmp_path, GOOD.replace("dimension: 16", "dimension: 16, dimensions: 3"), registry)
    assert "retrievers.dense.encoder.dimensions: unknown field 'dimensions'" in msg
    assert "allowed: dimension" in msg


def test_invalid_parameter_value(tmp_path, registry):
    msg = errors(tmp_path, GOOD.replace("k: 60", "k: sixty"), registry)
    assert "fusion.k" in msg


def test_unknown_top_level_key(tmp_path, registry):
    msg = errors(tmp_path, GOOD + "retreivers: {}\n", registry)
    assert "retreivers: unknown field 'retreivers'" in msg and "allowed:" in msg and "retrievers" in msg


def test_encoder_index_kind_mismatch(tmp_path, registry):
    text = GOOD.replace("encoder: {use: bm25}", "encoder: {use: bm25}\n    index: {use: dense}")
    msg = errors(tmp_path, text, registry)
    assert "retrievers.keywords.index.use" in msg and "produces sparse vectors" in msg


def test_metric_mismatch(tmp_path, registry):
    text = GOOD.replace("encoder: {use: hash, dimension: 16}", "encoder: {use: hash, dimension: 16}\n    index: {use: dense, distance: euclid}")
    msg = errors(tmp_path, text, registry)
    assert "retrievers.dense.index.distance" in msg and "cosine" in msg


def test_fusion_weights_must_name_retrievers(tmp_path, registry):
    msg = errors(tmp_path, GOOD.replace("keywords: 0.5", "kw: 0.5"), registry)
    assert "fusion.weights.kw" in msg and "no retriever named 'kw'" in msg


def test_missing_required_and_several_problems_at_once(tmp_path, registry):
    msg = errors(tmp_path, "retrievers: {}\n", registry)
    assert "name: required field is missing" in msg and "retrievers" in msg


def test_env_secrets(tmp_path, registry, monkeypatch):
    text = GOOD.replace("name: ok", "name: ok\nstore: {use: qdrant, url: 'http://localhost:1', api_key: {$env: PRISM_TEST_KEY}}")
    msg = errors(tmp_path, text, registry)
    assert "store.api_key" in msg and "PRISM_TEST_KEY" in msg
    monkeypatch.setenv("PRISM_TEST_KEY", "s3cret")
    engine = load(tmp_path, text, registry)
    assert engine.recipe.store.params.api_key == "s3cret"


def test_shipped_recipes_validate():
    from pathlib import Path

    from prismrag.recipe import build_recipe, load_recipe_spec
    from prismrag.registry import Registry

    for path in sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml")):
        spec, source, base = load_recipe_spec(path)
        build_recipe(spec, source, base, Registry())


def test_every_problem_in_one_run_structure_and_components(tmp_path, registry):
    """Issue 15 item 9: wrong field names came in two rounds (structure first, then components)."""
    text = GOOD.replace("name: ok", "name: ok\nserch: {top_k: 3}").replace(
        "{use: hash, dimension: 16}", "{use: hash, dimensoin: 16}").replace("{use: rrf, k: 60,", "{use: rrf, kk: 60,")
    msg = errors(tmp_path, text, registry)
    assert "serch" in msg  # the structure
    assert "retrievers.dense.encoder.dimensoin" in msg and "fusion.kk" in msg  # and every component, at once
    from prismrag.cli import main

    path = tmp_path / "recipe.yaml"
    assert main(["validate", str(path)]) == 2


def test_a_source_no_retriever_embeds_is_a_problem(tmp_path, registry):
    """Issue 15 item 9: validate said ok, then ingest stored 0 points with a warning per file."""
    text = """\
        name: pics
        sources:
          - {use: images, path: photos}
        retrievers:
          keywords:
            encoder: {use: bm25}
        """
    msg = errors(tmp_path, text, registry)
    assert "sources[0].use" in msg and "'images' yields image items" in msg and "embed: text" in msg
