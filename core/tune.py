"""Fit a recipe's fusion settings on labelled queries, without re-encoding anything.

    >>> from prismrag.tune import Tuner
    >>> with Tuner.open("recipes/beir-hybrid.yaml") as tuner:
    ...     tuner.ingest(dataset.items)
    ...     cache = tuner.collect(dataset.queries)       # each retriever runs once per query
    ...     table = tuner.score(cache, dataset.qrels)     # every setting on every query, no encoding

The data set is indexed once into a temporary folder (as `prism eval` does) and each retriever
runs once per query to the deepest depth any setting asks; every setting is then scored by fusing
those cached lists (truncated to its depths): built-in fusions with numpy (`tune_fast`, checked
against the plugins), others through their plugin. The rerank stages are left out of the scores
and of the search: the tuned recipe keeps them as they are.

Honesty: `select` picks a setting from training queries only. With a test split the caller loads
the test queries and their judgments after the search (`prism tune` does); with one split,
`cross_validate` tunes on k-1 folds and scores the held-out fold, so each query's score comes from
a setting chosen without it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import PrismError, QueryError
from .metrics import METRICS, score_matrix
from .tune_fast import FAST_FUSIONS, QueryLists, fuse_order, prepare
from .tune_space import TUNED_FUSIONS, Setting, build_space, depth_choices, fusion_grids, pick

if TYPE_CHECKING:
    from .contracts import Fusion, ScoredId
    from .datasets import EvalQuery
    from .engine import Engine
    from .evaluation import ProgressFn
    from .registry import Registry

RUN_DEPTH = 100
"""Fused results kept per query for scoring (enough for every metric of `METRICS`)."""


class TuneError(PrismError):
    """A recipe or data set `prism tune` cannot work on."""


@dataclass
class Candidates:
    """Each query's ranked list per routed retriever, with raw scores, to the deepest depth."""

    lists: dict[str, dict[str, list[ScoredId]]] = field(default_factory=dict)
    _arrays: dict[str, QueryLists] = field(default_factory=dict, repr=False)

    def arrays(self) -> dict[str, QueryLists]:
        """The lists indexed for the numpy fusions (built once)."""
        if len(self._arrays) != len(self.lists):
            self._arrays = {qid: prepare(lists) for qid, lists in self.lists.items()}
        return self._arrays

    @property
    def query_ids(self) -> list[str]:
        return list(self.lists)


@dataclass
class ScoreTable:
    """`values[i, j]`: the metric of setting i on query j."""

    settings: list[Setting]
    query_ids: list[str]
    metric: str
    values: np.ndarray
    method: str = "grid"
    space_size: int = 0

    def mean(self, columns: np.ndarray | None = None) -> np.ndarray:
        v = self.values if columns is None else self.values[:, columns]
        return v.mean(1) if v.shape[1] else np.zeros(len(self.settings))

    def select(self, columns: np.ndarray | None = None) -> int:
        """The best setting on these queries; ties go to the earliest (the recipe's own first)."""
        return int(np.argmax(self.mean(columns)))


@dataclass
class CrossValidation:
    """Per query, the score of the setting chosen on the other folds."""

    folds: int
    fold_of: np.ndarray
    chosen: list[int]
    scores: np.ndarray


def folds_for(n: int, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each of `n` queries: a seeded shuffle cut into k near-equal parts."""
    if not 2 <= k <= n:
        raise TuneError(f"--folds must be between 2 and the number of queries ({n}), got {k}")
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, np.int64)
    for f, part in enumerate(np.array_split(order, k)):
        fold_of[part] = f
    return fold_of


def cross_validate(table: ScoreTable, k: int, seed: int) -> CrossValidation:
    """k-fold cross-validation over queries: each fold's queries are scored with the setting
    that is best on the other k-1 folds."""
    fold_of = folds_for(len(table.query_ids), k, seed)
    scores = np.empty(len(table.query_ids))
    chosen = []
    for f in range(k):
        held = fold_of == f
        best = table.select(np.flatnonzero(~held))
        chosen.append(best)
        scores[held] = table.values[best, held]
    return CrossValidation(k, fold_of, chosen, scores)


class Tuner:
    """A recipe opened on a temporary index for tuning: its rerank stages dropped, each
    retriever's candidate depth raised to the deepest any setting tries."""

    def __init__(self, engine: Engine, base: Setting, space: list[Setting], registry: Registry,
                 rerank: Sequence[str] = ()):
        self.engine, self.base, self.space, self.registry = engine, base, space, registry
        self.rerank = list(rerank)
        """The recipe's rerank stages (by name), left out of the tuning engine."""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._fusions: dict[Setting, Fusion] = {}

    # ---------------------------------------------------------------- set-up

    @classmethod
    def open(
        cls, recipe: str | Path, *, registry: Registry | None = None, index_dir: str | Path | None = None,
        max_depth: int | None = None, keep_depths: bool = False,
    ) -> Tuner:
        """Build the recipe on a fresh index folder (temporary unless `index_dir`). `keep_depths`
        leaves each retriever's `top_k` as the recipe has it."""
        from .engine import Engine
        from .evaluation import EVAL_MARKER, _check_eval_folder, store_override
        from .recipe import build_recipe, load_recipe_spec
        from .registry import Registry

        registry = registry or Registry()
        spec, source, base_dir = load_recipe_spec(recipe)
        original = build_recipe(spec, source, base_dir, registry)
        if len(original.retrievers) < 2:
            raise TuneError(
                f"{source}: recipe {spec.name!r} has one retriever; `prism tune` fits how retrievers are fused, "
                f"which takes two or more"
            )
        base, space = _space(original, registry, max_depth, keep_depths)
        deepest = {n: max(d for s in space for m, d in s.depths if m == n) for n in original.retrievers}
        retrievers = {n: r.model_copy(update={"top_k": deepest[n]}) for n, r in spec.retrievers.items()}
        tmp = None
        if index_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="prism-tune-")
            folder = Path(tmp.name) / "index"
        else:
            folder = Path(index_dir)
            _check_eval_folder(folder)
        store = store_override(recipe, folder.resolve())
        from .recipe import ComponentSpec

        spec = spec.model_copy(update={"retrievers": retrievers, "rerank": [], "store": ComponentSpec.model_validate(store)})
        engine = Engine(build_recipe(spec, source, base_dir, registry), registry)
        tuner = cls(engine, base, space, registry, [s.use for s in original.spec.rerank])
        tuner._tmp = tmp
        try:
            engine.open()
            if folder.is_dir():
                (folder / EVAL_MARKER).write_text("built by `prism tune`; it replaces every document here\n")
        except BaseException:
            tuner.close()
            raise
        return tuner

    def close(self) -> None:
        try:
            self.engine.close()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> Tuner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- the one pass

    def ingest(self, items: Sequence[Any], progress: ProgressFn | None = None) -> dict[str, Any]:
        """Index exactly these items (as `prism eval` does); what it took."""
        report = self.engine.ingest_items(items, progress, owner="sources", delete_missing=True)
        return {"items": report.loaded, "encoded": dict(report.encoded), "cache_hits": dict(report.cache_hits),
                "errors": len(report.errors)}

    def collect(self, queries: Sequence[EvalQuery], progress: ProgressFn | None = None) -> Candidates:
        """Run each routed retriever once per query (one query encoding each) and keep its list."""
        from .search import SearchPipeline

        if not self.engine.ingested():
            raise TuneError("nothing is indexed: ingest the data set's items before collecting candidates")
        pipeline = SearchPipeline(self.engine.recipe, self.engine.collection)
        out = Candidates()
        for n, q in enumerate(queries, 1):
            timings: dict[str, float] = {}
            lists = {}
            for r in pipeline.route(q.query):
                _, _, found = pipeline.retrieve(r, q.query, None, None, timings)
                lists[r.name] = list(found[-1])
            out.lists[q.id] = lists
            if progress:
                progress("retrieve", n, len(queries))
        return out

    # ---------------------------------------------------------------- scoring

    def fusion(self, setting: Setting) -> Fusion:
        """The installed fusion plugin with this setting's parameters (validated as a recipe's)."""
        if setting not in self._fusions:
            cls = self.registry.get("fusion", setting.fusion)
            params = cls.Params.model_validate(setting.fusion_params())
            self._fusions[setting] = cls(params, self.engine.recipe.fusion.context)  # type: ignore[union-attr, call-arg]
        return self._fusions[setting]  # type: ignore[return-value]

    def fast(self, setting: Setting) -> bool:
        """Whether `setting`'s fusion is a built-in one that `tune_fast` computes."""
        if setting.fusion not in FAST_FUSIONS:
            return False
        return self.registry.get("fusion", setting.fusion).__module__ == "prismrag.plugins.fusions"

    def run(self, setting: Setting, cache: Candidates, plugin: bool = False) -> dict[str, list[str]] | None:
        """The fused ranking of every cached query under `setting` (None when the setting cannot
        rank some query, e.g. every retriever that query reached weighs 0). Built-in fusions are
        computed with numpy (`tune_fast`) unless `plugin`; others run through their plugin."""
        from .search import SearchPipeline

        fusion, depths = self.fusion(setting), dict(setting.depths)  # validates the parameters
        if not plugin and self.fast(setting):
            params = fusion.params.model_dump(by_alias=True)
            fast = {qid: fuse_order(q, setting.fusion, params, depths, RUN_DEPTH) for qid, q in cache.arrays().items()}
            return None if any(v is None for v in fast.values()) else fast  # type: ignore[return-value]
        run = {}
        for qid, lists in cache.lists.items():
            cut = {name: found[: depths[name]] for name, found in lists.items()}
            try:
                fused, _ = SearchPipeline.fuse(fusion, cut)
            except QueryError:
                return None
            run[qid] = [f.id for f in fused[:RUN_DEPTH]]
        return run

    def score(
        self, cache: Candidates, qrels: Mapping[str, Mapping[str, int]], metric: str = "nDCG@10",
        settings: Sequence[Setting] | None = None, progress: ProgressFn | None = None,
    ) -> ScoreTable:
        """Every setting (default: the whole space) on every cached query; no encoding, no search.
        A setting that cannot rank some query scores -1 everywhere, so it is never chosen."""
        if metric not in METRICS:
            raise TuneError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
        settings = list(self.space if settings is None else settings)
        qids = cache.query_ids
        values = np.full((len(settings), len(qids)), -1.0)
        for i, setting in enumerate(settings):
            run = self.run(setting, cache)
            if run is not None:
                values[i] = score_matrix(run, qrels, [metric], qids)[metric]
            if progress:
                progress("settings", i + 1, len(settings))
        return ScoreTable(settings, qids, metric, values, space_size=len(self.space))

    def sample(self, budget: int, seed: int) -> tuple[list[Setting], str]:
        """The settings a search with this budget tries (the recipe's own first)."""
        if budget < 1:
            raise TuneError(f"--budget must be at least 1, got {budget}")
        return pick(self.space, budget, seed)


def _space(recipe: Any, registry: Registry, max_depth: int | None, keep_depths: bool) -> tuple[Setting, list[Setting]]:
    """The recipe's own setting and the grid around it."""
    fusion = recipe.fusion
    names = list(recipe.retrievers)
    own = {k: v for k, v in fusion.params.model_dump(by_alias=True).items() if v is not None}
    takes_weights = "weights" in type(fusion.params).model_fields
    base = Setting(
        fusion.name,
        tuple(sorted((k, v) for k, v in own.items() if k != "weights")),
        tuple((n, float(own.get("weights", {}).get(n, 1.0))) for n in names) if takes_weights else (),
        tuple((n, recipe.retrievers[n].top_k) for n in names),
    )
    installed = sorted(registry.components("fusion"))
    known = [f for f in installed if f in TUNED_FUSIONS]
    if fusion.name not in known:
        known.append(fusion.name)
    weighted = {f: "weights" in registry.get("fusion", f).Params.model_fields for f in known}
    grids = fusion_grids(known, weighted)
    grids.setdefault(fusion.name, [{}])
    depths = {n: [recipe.retrievers[n].top_k] if keep_depths else depth_choices(recipe.retrievers[n].top_k, max_depth)
              for n in names}
    return base, build_space(base, grids, {fusion.name: own}, depths, weighted)
