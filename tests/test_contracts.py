"""The plugin contracts hold: abstract methods enforced, declarations checked at registration
(naming the plugin), every component closed with the engine, old import paths deprecated."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest
from fake_plugins import HashEncoder

import prismrag
from prismrag import PluginError, Registry
from prismrag.contracts import (
    Encoder,
    Fusion,
    Modality,
    Reranker,
    RerankParams,
    hookimpl,
    order_fused,
)


def test_an_encoder_without_encode_cannot_be_instantiated():
    class NoEncode(Encoder):
        name = "no-encode"

    with pytest.raises(TypeError, match="encode"):
        NoEncode()


def _register(cls: type, hook: str = "register_encoders") -> Registry:
    class Plugin:
        pass

    setattr(Plugin, hook, hookimpl(lambda self, register: register(cls)))
    registry = Registry(entry_points=False)
    registry.add_plugin(Plugin(), name="acme-plugin")
    return registry


class _Good(Encoder):
    name = "good"

    def encode(self, contents, modality, role):
        return np.zeros((len(contents), 4), np.float32)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"output": "dense-ish"}, "`output` is 'dense-ish'"),
        ({"document_modalities": frozenset({"text"})}, "`document_modalities` must be a frozenset of prismrag.Modality"),
        ({"metric": "hamming"}, "`metric` is 'hamming'"),
        ({"name": "Bad Name"}, "is not a lower-case name"),
        ({"max_batch": 0}, "`max_batch` must be a positive int"),
        ({"Params": dict}, "`Params` must be a subclass of prismrag.Params"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_plugin_and_the_problem(changes, problem):
    bad = type("Bad", (_Good,), dict(changes))
    with pytest.raises(PluginError, match="acme-plugin") as err:
        _register(bad).components("encoder")
    assert problem in str(err.value)


def test_a_class_that_leaves_the_required_method_out_is_refused_at_registration():
    class Half(Encoder):
        name = "half"

    with pytest.raises(PluginError, match=r"acme-plugin.*does not implement encode"):
        _register(Half).components("encoder")


def test_a_component_of_the_wrong_kind_is_refused():
    with pytest.raises(PluginError, match="not a subclass of prismrag.contracts.Fusion"):
        _register(_Good, "register_fusions").components("fusion")


def test_a_reranker_params_without_top_n_is_refused_and_top_n_is_on_the_base():
    class NoTopN(Reranker):
        name = "no-top-n"
        Params = prismrag.Params

        def rerank(self, query, candidates, ctx):
            return []

    with pytest.raises(PluginError, match="no `top_n`"):
        _register(NoTopN, "register_rerankers").components("reranker")

    class Fine(NoTopN):
        Params = RerankParams

    assert Fine(RerankParams(top_n=7)).top_n == 7


class CountingEncoder(HashEncoder):
    name = "counting-hash"
    closed: ClassVar[list[str]] = []

    def close(self) -> None:
        type(self).closed.append(self.name)


class CountingFusion(Fusion):
    name = "counting-fusion"
    closed: ClassVar[list[str]] = []

    def fuse(self, lists):
        scores: dict[str, float] = {}
        contributions: dict[str, dict[str, float]] = {}
        for name, lst in lists.items():
            for s in lst:
                scores[s.id] = scores.get(s.id, 0.0) + s.score
                contributions.setdefault(s.id, {})[name] = s.score
        return order_fused(scores, contributions)

    def close(self) -> None:
        type(self).closed.append(self.name)


class CountingReranker(Reranker):
    name = "counting-reranker"
    closed: ClassVar[list[str]] = []

    def rerank(self, query, candidates: Sequence, ctx):
        from prismrag.contracts import ScoredId

        return [ScoredId(c.id, c.score) for c in candidates]

    def close(self) -> None:
        type(self).closed.append(self.name)


class CountingPlugin:
    @hookimpl
    def register_encoders(self, register):
        register(CountingEncoder)

    @hookimpl
    def register_fusions(self, register):
        register(CountingFusion)

    @hookimpl
    def register_rerankers(self, register):
        register(CountingReranker)


def test_engine_close_closes_every_component_once(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("alpha beta gamma")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: counting
        store: {use: qdrant-edge, path: store}
        sources: [{use: text-files, path: docs}]
        retrievers:
          one: {encoder: {use: counting-hash, dimension: 16}}
          two: {encoder: {use: counting-hash, dimension: 8}}
        fusion: {use: counting-fusion}
        rerank: [{use: counting-reranker, top_n: 5}]
        """))
    for cls in (CountingEncoder, CountingFusion, CountingReranker):
        cls.closed.clear()
    registry = Registry()
    registry.add_plugin(CountingPlugin(), name="counting")
    engine = prismrag.load_recipe(recipe, registry=registry)
    engine.ingest()
    assert [h.id for h in engine.search("alpha")]
    engine.close()
    assert CountingEncoder.closed == ["counting-hash", "counting-hash"]  # one per retriever
    assert CountingFusion.closed == ["counting-fusion"]
    assert CountingReranker.closed == ["counting-reranker"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("prismrag.components", "prismrag.contracts"),
        ("prismrag.models", "prismrag.support.models"),
        ("prismrag._compat", "prismrag.support.torch_compat"),
        ("prismrag.chunking", "prismrag.support.chunking"),
    ],
)
def test_old_import_paths_still_work_with_a_deprecation_warning(old, new):
    code = f"import warnings; warnings.simplefilter('error'); import {old}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "DeprecationWarning" in out.stderr and new in out.stderr
    ok = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c",
                         f"import {old} as m, {new} as n; assert all(getattr(m, k) is getattr(n, k) for k in n.__all__)"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_modalities_are_enums_and_declarations_describe_themselves():
    info = HashEncoder.describe()
    assert info["document_modalities"] == sorted(m.value for m in HashEncoder.document_modalities)
    assert Modality.TEXT in HashEncoder.query_modalities
