"""The plugin author's kit (`prismrag.testing`): the built-in components pass its checks, and
broken components fail them with a message that names the check and the part that failed."""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from fake_plugins import HashEncoder, TestPlugin

from prismrag import Registry
from prismrag.contracts import (
    FusedEntry,
    Fusion,
    Item,
    ItemError,
    Media,
    Modality,
    Query,
    Reranker,
    ScoredId,
    SparseBatch,
)
from prismrag.errors import UnknownComponentError
from prismrag.testing import check_encoder, check_fusion, check_loader, check_reranker, check_store

CALLS = itertools.count()
IMAGES = {Modality.IMAGE: [Media(data=bytes(range(64))), Media(data=b"\x89PNG" * 40)]}


@pytest.fixture(scope="module")
def installed() -> Registry:
    """The installed components, found through their entry points as a recipe finds them."""
    return Registry()


@pytest.fixture
def text_files(tmp_path: Path) -> tuple[list[Path], Path]:
    good = [tmp_path / "notes.md", tmp_path / "plain.txt"]
    good[0].write_text("# Orchards\n\n" + "Apples grow on trees in orchards. " * 80)
    good[1].write_text("Rivers flow into the sea.")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    return good, bad


# ------------------------------------------------------------------------- built-ins pass


def test_bm25_and_the_hash_encoder_pass(installed):
    check_encoder(installed.get("encoder", "bm25"))
    check_encoder(HashEncoder, IMAGES)
    check_encoder(HashEncoder(HashEncoder.Params(dimension=32, salt="s")), IMAGES)


def test_the_edge_store_passes_and_keeps_its_data_under_the_given_folder(installed, tmp_path):
    edge = installed.get("store", "qdrant-edge")
    check_store(lambda path: edge(edge.Params(path=str(path / "index"))), tmp_path)
    assert (tmp_path / "index" / "prism-meta.json").is_file()


@pytest.mark.skipif(importlib.util.find_spec("qdrant_client") is None, reason="qdrant-client is not installed")
def test_the_qdrant_store_in_memory_passes(installed):
    qdrant = installed.get("store", "qdrant")
    check_store(lambda: qdrant(qdrant.Params(location=":memory:")))


def test_the_text_files_loader_passes_as_a_class_or_a_factory(installed, text_files):
    loader = installed.get("loader", "text-files")
    check_loader(loader, *text_files)
    check_loader(lambda path: loader(loader.Params(path=str(path), chunk=None)), *text_files)


@pytest.mark.parametrize("name", ["rrf", "weighted", "dbsf"])
def test_the_fusions_pass(installed, name):
    check_fusion(installed.get("fusion", name))


class Reverse(Reranker):
    """A tiny reranker: the candidates in reverse order."""

    name = "reverse"

    def rerank(self, query, candidates, ctx):
        return [ScoredId(c.id, float(k)) for k, c in enumerate(reversed(candidates))]


def test_mmr_and_a_tiny_reranker_pass(installed):
    mmr = installed.get("reranker", "mmr")
    check_reranker(mmr(mmr.Params(retriever="dense")))
    check_reranker(Reverse, query=Query.text("anything"))


# ---------------------------------------------------------------- broken components fail


class TextOnly(HashEncoder):
    name = "text-only"
    document_modalities = query_modalities = frozenset({Modality.TEXT})


class Broken(TextOnly):
    """Declares 64 dimensions and returns 32 columns."""

    name = "broken"

    def encode(self, contents, modality, role):
        return super().encode(contents, modality, role)[:, :32]


def test_a_wrong_dimension_fails_naming_the_check():
    with pytest.raises(AssertionError, match="dimension") as info:
        check_encoder(Broken)
    assert str(info.value) == "check_encoder: dimension: encoder 'broken' declares 64 but returned 32 for text documents"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"name": "Not A Name"}, "check_encoder: declaration: .*lower-case name"),
        ({"output": "sparse"}, "check_encoder: output: encoder 'x' declares output 'sparse' but returned ndarray"),
        ({"encode": lambda self, c, m, r: np.zeros((len(c) - 1, 64), np.float32)}, "check_encoder: rows: .*2 rows for 3"),
        ({"encode": lambda self, c, m, r: np.full((len(c), 64), np.nan, np.float32)}, "check_encoder: finite: "),
        ({"encode": lambda self, c, m, r: np.random.default_rng().random((len(c), 64), np.float32)},
         "check_encoder: deterministic: encoder 'x' gave other vectors for the same text documents twice"),
        ({"fingerprint": lambda self: str(next(CALLS))}, "check_encoder: fingerprint: encoder 'x' gave \\['0', '1', '2'\\]"),
        ({"encode": lambda self, c, m, r: 1 / 0}, "check_encoder: encode: raised ZeroDivisionError"),
    ],
)
def test_each_broken_encoder_contract_is_named(override, expected):
    encoder = type("X", (TextOnly,), {"name": "x", **override})
    with pytest.raises(AssertionError, match=expected):
        check_encoder(encoder)


def test_a_sparse_encoder_with_repeated_indices_fails(installed):
    bm25 = installed.get("encoder", "bm25")

    def encode(self, contents, modality, role):
        return SparseBatch.from_rows([(np.array([7, 7]), np.array([1.0, 2.0]))] * len(contents))

    with pytest.raises(AssertionError, match="check_encoder: output: .* repeats an index"):
        check_encoder(type("Rep", (bm25,), {"encode": encode}))


def test_a_modality_without_samples_asks_for_them():
    with pytest.raises(AssertionError, match=r"check_encoder: samples: .*image documents; pass samples=\{Modality.IMAGE"):
        check_encoder(HashEncoder)


def test_broken_stores_fail_naming_the_check(installed, tmp_path):
    edge = installed.get("store", "qdrant-edge")

    class Forgetful(edge):
        name = "forgetful"

        def delete(self, ids):
            pass

    class Distances(edge):
        name = "distances"

        def search_plan(self, plan, vectors, flt=None, exact=None):
            lists = super().search_plan(plan, vectors, flt, exact)
            return [[ScoredId(h.id, -h.score) for h in hits] for hits in lists]

    with pytest.raises(AssertionError, match=r"check_store: delete: doc/a is still stored"):
        check_store(lambda path: Forgetful(edge.Params(path=str(path / "f"))), tmp_path)
    with pytest.raises(AssertionError, match="check_store: search: .*higher-is-better"):
        check_store(lambda path: Distances(edge.Params(path=str(path / "d"))), tmp_path)
    with pytest.raises(AssertionError, match="check_store: factory: the factory returned str"):
        check_store(lambda: "not a store")


def test_broken_loaders_fail_naming_the_check(installed, text_files):
    loader = installed.get("loader", "text-files")

    class Raising(loader):
        name = "raising"

        def load_file(self, path, root) -> Iterator[Item | ItemError]:
            for x in super().load_file(path, root):
                if isinstance(x, ItemError):
                    raise x
                yield x

    class Unstable(loader):
        name = "unstable"
        runs = 0

        def load(self):
            Unstable.runs += 1
            for x in super().load():
                yield Item(f"{x.id}@{Unstable.runs}", x.modality, x.content) if isinstance(x, Item) else x

    with pytest.raises(AssertionError, match="check_loader: bad file: raised ItemError: .*latin1.txt"):
        check_loader(Raising, *text_files)
    with pytest.raises(AssertionError, match="check_loader: stable ids: two loads of notes.md"):
        check_loader(Unstable, *text_files)
    good, _ = text_files
    with pytest.raises(AssertionError, match="check_loader: bad file: plain.txt gave no ItemError"):
        check_loader(loader, good[:1], good[1])


class Sloppy(Fusion):
    """Sums scores, but reports no contributions and repeats the first id."""

    name = "sloppy"

    def fuse(self, lists: Mapping[str, Sequence[ScoredId]]) -> list[FusedEntry]:
        totals: dict[str, float] = {}
        for hits in lists.values():
            for h in hits:
                totals[h.id] = totals.get(h.id, 0.0) + h.score
        ordered = sorted(totals.items(), key=lambda kv: -kv[1])
        return [FusedEntry(i, s, {}) for i, s in ordered] + [FusedEntry(i, s, {}) for i, s in ordered[:1]]


def test_broken_ranking_components_fail_naming_the_check():
    with pytest.raises(AssertionError, match="check_fusion: ids: fuse.. returned .*expected each of"):
        check_fusion(Sloppy)
    with pytest.raises(AssertionError, match="check_fusion: contributions: 'doc/a'"):
        check_fusion(type("NoContributions", (Sloppy,), {"fuse": lambda self, lists: Sloppy.fuse(self, lists)[:-1]}))
    dropping = type("Dropping", (Reverse,), {"rerank": lambda self, q, c, ctx: Reverse.rerank(self, q, c[1:], ctx)})
    with pytest.raises(AssertionError, match="check_reranker: candidates: given .*none added"):
        check_reranker(dropping)


# ------------------------------------------------------------------------------- fixture


def test_prism_registry_holds_only_the_given_plugins_unless_asked(prism_registry):
    registry = prism_registry(TestPlugin(), TestPlugin())
    assert registry.get("encoder", "hash") is HashEncoder
    with pytest.raises(UnknownComponentError):
        registry.get("encoder", "bm25")
    with_installed = prism_registry(TestPlugin(), entry_points=True)
    assert with_installed.get("encoder", "hash") is HashEncoder
    assert with_installed.get("encoder", "bm25").name == "bm25"


def test_pytest_loads_the_kit_by_itself_and_the_kit_imports_no_model_library(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("prismrag")  # the pytest11 entry point
    code = "import json, sys, prismrag.testing; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "prismrag" in json.loads(loaded)
    assert not {"torch", "transformers", "sentence_transformers", "open_clip"} & set(json.loads(loaded))
