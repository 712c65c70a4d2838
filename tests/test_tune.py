"""`prism tune` on the real embedded engine with deterministic encoders: it finds a noise
retriever and turns it down, scores settings without encoding, never reads held-out judgments
during the search, and writes a recipe that validates with its comments kept."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest
from eval_data import write_beir, write_recipe

from prismrag import Encoder, Modality, Params, hookimpl
from prismrag.cli import main
from prismrag.datasets import load_dataset
from prismrag.recipe import build_recipe, load_recipe_spec
from prismrag.recipe_writer import write_tuned_recipe
from prismrag.tune import TuneError, Tuner, cross_validate, folds_for
from prismrag.tune_report import format_tune, tune_recipe
from prismrag.tune_space import Setting, build_space, depth_choices, pick, weight_vectors

TWO = """\
good:
  encoder: {use: hash, dimension: 256}
  top_k: 40
noise:
  encoder: {use: noise}
  top_k: 40
"""


class NoiseEncoder(Encoder):
    """Random unit vectors seeded by the content: a retriever that knows nothing."""

    name = "noise"
    Params = Params
    description = "test encoder: random vectors"
    document_modalities = frozenset({Modality.TEXT})
    query_modalities = frozenset({Modality.TEXT})
    calls: ClassVar[list[int]] = []

    def encode(self, contents: Sequence[object], modality: Modality, role: str) -> np.ndarray:
        type(self).calls.append(len(contents))
        rows = [np.random.default_rng(zlib.crc32(str(c).encode())).normal(size=16) for c in contents]
        out = np.asarray(rows, np.float32).reshape(len(contents), 16)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def dimension(self) -> int:
        return 16


class NoisePlugin:
    @hookimpl
    def register_encoders(self, register):
        register(NoiseEncoder)


@pytest.fixture
def reg(registry):
    NoiseEncoder.calls.clear()
    registry.add_plugin(NoisePlugin(), name="noise")
    return registry


@pytest.fixture
def data(tmp_path):
    return write_beir(tmp_path, docs_per_topic=8)


def test_the_space_starts_with_the_recipe_and_dedupes_weights_up_to_scale():
    assert depth_choices(100) == [25, 50, 100, 200]
    assert depth_choices(20, deepest=30) == [10, 20, 30]
    vectors = weight_vectors(["a", "b"])
    assert (1.0, 0.0) in vectors and (0.5, 1.0) in vectors and (0.5, 0.5) not in vectors
    base = Setting("rrf", (("k", 60),), (("a", 1.0), ("b", 1.0)), (("a", 100), ("b", 100)))
    space = build_space(base, {"rrf": [{"k": 60}, {"k": 1}], "dbsf": [{}]}, {"rrf": {"k": 60}},
                        {"a": [50, 100], "b": [100]}, {"rrf": True, "dbsf": True})
    assert space[0] == base and len(space) == len(set(space)) == 3 * len(vectors) * 2
    chosen, method = pick(space, 10, seed=3)
    assert method == "random" and chosen[0] == base and len(set(chosen)) == 10
    assert pick(space, 10, seed=3) == (chosen, method)
    assert pick(space, len(space), seed=0) == (space, "grid")


def test_folds_cover_every_query_once():
    fold_of = folds_for(11, 5, seed=1)
    assert sorted(np.bincount(fold_of).tolist()) == [2, 2, 2, 2, 3]
    with pytest.raises(TuneError, match="--folds"):
        folds_for(3, 5, seed=0)


def test_tune_turns_the_noise_retriever_down(tmp_path, reg, data):
    recipe = write_recipe(tmp_path, "noisy", TWO)
    report = tune_recipe(recipe, data, registry=reg, budget=150, seed=0, permutations=2000)
    weights = dict(report.tuned.weights)
    assert weights["noise"] <= 0.25 * weights["good"], report.tuned.describe()
    assert report.test_split is None and report.folds == 5 and report.queries == 6
    assert report.tuned_score > report.untuned_score  # cross-validated: RRF k=60 with equal weights lets noise in
    assert report.in_sample >= report.tuned_score - 1e-9
    text = format_tune(report)
    assert "5-fold cross-validation" in text and "p = " in text and len(report.fold_choices) == 5
    assert report.significant and "not significant" not in text  # 6 of 6 queries gain: p = 2/64
    assert "not significant" in format_tune(dataclasses.replace(report, p_value=0.2))
    json.dumps(report.to_json())


def test_scoring_settings_encodes_nothing(tmp_path, reg, data):
    from fake_plugins import HashEncoder

    recipe = write_recipe(tmp_path, "noisy", TWO)
    ds = load_dataset(data, registry=reg)
    with Tuner.open(recipe, registry=reg) as tuner:
        tuner.ingest(ds.items)
        cache = tuner.collect(ds.queries)
        assert {len(lists) for lists in cache.lists.values()} == {2}
        assert all(len(found) == 48 for lists in cache.lists.values() for found in lists.values())  # 80 deep, 48 docs
        before = (HashEncoder.encoded(), sum(NoiseEncoder.calls))
        settings, _ = tuner.sample(60, seed=1)
        first = tuner.score(cache, ds.qrels, "nDCG@10", settings)
        again = tuner.score(cache, ds.qrels, "nDCG@10", settings)
        assert (HashEncoder.encoded(), sum(NoiseEncoder.calls)) == before
        assert np.array_equal(first.values, again.values)
        for setting in settings[:: len(settings) // 8]:
            assert tuner.run(setting, cache) == tuner.run(setting, cache, plugin=True), setting.describe()
        cv = cross_validate(first, 3, seed=0)
        assert cv.scores.shape == (6,) and len(cv.chosen) == 3


def test_the_test_qrels_stay_unread_until_the_report(tmp_path, reg, data):
    qrels = data / "qrels"
    lines = (qrels / "test.tsv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    train = [r for r in rows if r.split("\t")[0] in {"q0", "q1", "q2", "q3"}]
    test = [r for r in rows if r not in train]
    (qrels / "train.tsv").write_text("\n".join([header, *train]) + "\n")
    (qrels / "test.tsv").unlink()
    (qrels / "test.tsv").mkdir()  # unreadable: any attempt to load the split fails
    stages = []

    def progress(stage, done, total):
        stages.append(stage)
        if stage == "test":
            assert "settings" in stages  # the search is done
            shutil.rmtree(qrels / "test.tsv")
            (qrels / "test.tsv").write_text("\n".join([header, *test]) + "\n")

    recipe = write_recipe(tmp_path, "noisy", TWO)
    report = tune_recipe(recipe, data, registry=reg, budget=40, permutations=500, progress=progress)
    assert stages.count("test") == 1
    assert report.split == "train" and report.test_split == "test"
    assert report.queries == 4 and report.eval_queries == 2
    assert "held-out split 'test'" in format_tune(report)

    (qrels / "test.tsv").unlink()
    (qrels / "test.tsv").mkdir()
    from prismrag.datasets import DatasetError

    with pytest.raises(DatasetError, match="split 'test'"):  # so the test above could fail
        tune_recipe(recipe, data, registry=reg, budget=5, permutations=100)


def test_the_tuned_recipe_keeps_comments_and_validates(tmp_path, reg, data):
    recipe = write_recipe(tmp_path, "noisy", TWO, "fusion: {use: rrf, k: 60}  # the default fusion\n")
    recipe.write_text("# my recipe\n" + recipe.read_text())
    report = tune_recipe(recipe, data, registry=reg, budget=30, permutations=200)
    out = tmp_path / "elsewhere" / "tuned.yaml"
    fusion = {"use": report.tuned.fusion, **report.tuned.fusion_params()}
    write_tuned_recipe(recipe, out, fusion, dict(report.tuned.depths), report.header(), reg)
    text = out.read_text()
    assert text.startswith("# Tuned by `prism tune` from noisy.yaml")
    assert "# my recipe" in text and "split 'test'" in text
    spec, source, base = load_recipe_spec(out)
    built = build_recipe(spec, source, base, reg)
    assert built.fusion.name == report.tuned.fusion
    assert {n: r.top_k for n, r in built.retrievers.items()} == dict(report.tuned.depths)
    assert spec.store.params["path"] == "../never-used"  # still names the original's folder


def test_prism_tune_cli_writes_the_recipe(tmp_path, capsys, data):
    pytest.importorskip("Stemmer")
    recipe = write_recipe(tmp_path, "kw", """\
stemmed:
  encoder: {use: bm25}
  top_k: 20
plain:
  encoder: {use: bm25, stemmer: false, stopwords: false}
  top_k: 20
""")
    code = main(["tune", str(recipe), "--data", str(data), "--budget", "20", "--folds", "3",
                 "--permutations", "200", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "3-fold cross-validation" in out and "wrote" in out
    assert (tmp_path / "kw.tuned.yaml").is_file()
    assert main(["validate", str(tmp_path / "kw.tuned.yaml")]) == 0


def test_prism_help_does_not_import_the_tuner():
    import subprocess
    import sys

    code = ("import sys\nfrom prismrag.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('ruamel', 'prismrag.tune', 'prismrag.engine'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['prismrag.tune_cli']"


@pytest.mark.parametrize("seed", range(4))
def test_numpy_fusions_rank_exactly_as_the_plugins(seed):
    from prismrag import Registry
    from prismrag.contracts import Context, ScoredId
    from prismrag.search import SearchPipeline
    from prismrag.tune_fast import fuse_order, prepare

    rng = np.random.default_rng(seed)
    lists = {}
    for name in ("a", "b", "c"):
        ids = rng.choice(60, size=int(rng.integers(1, 40)), replace=False)
        scores = np.round(np.sort(rng.random(len(ids)))[::-1], 1)  # rounded: ties in score
        lists[name] = [ScoredId(f"d{i}", float(s)) for i, s in zip(ids, scores, strict=True)]
    lists["a"].append(lists["a"][0])  # a repeated id: its first occurrence counts
    q = prepare(lists)
    registry = Registry()
    cases = [("rrf", {"k": k}) for k in (0, 1, 60)] + [
        ("weighted", {"normalization": n, "missing": m}) for n in ("minmax", "zscore") for m in (None, -0.5)
    ] + [("dbsf", {"clip": c}) for c in (False, True)]
    for fusion, params in cases:
        cls = registry.get("fusion", fusion)
        for _ in range(4):
            weights = {n: float(rng.choice([0.0, 0.1, 0.5, 1.0])) for n in lists}
            weights["a"] = 1.0
            depths = {n: int(rng.integers(1, 45)) for n in lists}
            plugin = cls(cls.Params.model_validate({**params, "weights": weights}), Context())
            cut = {n: found[: depths[n]] for n, found in lists.items()}
            expected = [e.id for e in SearchPipeline.fuse(plugin, cut)[0][:50]]
            got = fuse_order(q, fusion, plugin.params.model_dump(by_alias=True), depths, 50)
            assert got == expected, (fusion, params, weights, depths)


def test_bad_requests_are_refused_with_the_fix(tmp_path, reg, data):
    from eval_data import HASH_RETRIEVER, write_images

    from prismrag.tune_report import choose_splits

    assert choose_splits(data, None, None) == ("test", None)  # one split: cross-validate
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tcats-0\t1\n")
    assert choose_splits(data, None, None) == ("train", "test")
    assert choose_splits(data, None, "none") == ("train", None)
    with pytest.raises(TuneError, match="is the split tuned on"):
        choose_splits(data, "test", "test")
    with pytest.raises(TuneError, match="needs a BEIR folder"):
        choose_splits(write_images(tmp_path), "train", "test")
    with pytest.raises(TuneError, match="has one retriever"):
        Tuner.open(write_recipe(tmp_path, "one", HASH_RETRIEVER % 32), registry=reg)


def test_a_toml_recipe_is_written_as_yaml(tmp_path, reg):
    source = tmp_path / "r.toml"
    source.write_text('# lost\nname = "r"\n[store]\nuse = "qdrant-edge"\npath = "idx"\n'
                      '[retrievers.a.encoder]\nuse = "hash"\n[retrievers.b.encoder]\nuse = "noise"\n')
    out = write_tuned_recipe(source, tmp_path / "sub" / "r.tuned.yaml", {"use": "rrf", "k": 5, "weights": {"a": 1.0, "b": 0.0}},
                             {"a": 20, "b": 10}, ["tuned"], reg)
    text = out.read_text()
    assert text.startswith("# tuned\n# converted from r.toml (TOML)") and "# lost" not in text
    spec, _, _ = load_recipe_spec(out)
    assert spec.fusion.params == {"k": 5, "weights": {"a": 1.0, "b": 0.0}} and spec.retrievers["b"].top_k == 10
    assert spec.store.params["path"] == "../idx"


def test_keep_depths_tunes_the_fusion_alone(tmp_path, reg):
    with Tuner.open(write_recipe(tmp_path, "noisy", TWO), registry=reg, keep_depths=True) as tuner:
        assert {s.depths for s in tuner.space} == {(("good", 40), ("noise", 40))}
        assert len(tuner.space) == len(weight_vectors(["good", "noise"])) * (7 + 2 + 1)
        assert all(r.top_k == 40 for r in tuner.engine.recipe.retrievers.values())
