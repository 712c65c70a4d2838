"""`prism tune` end to end: load the data, index it once, collect candidates, search the settings
on the tuning queries, then score untuned against tuned honestly, with the paired test of
`prism compare`.

With a test split, its judgments are read only after the search has chosen its setting (the
`progress` callback sees stage "test" just before). With one split, the score reported is k-fold
cross-validated over queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .compare import SignFlips
from .tune import TuneError, Tuner, cross_validate
from .tune_space import Setting

if TYPE_CHECKING:
    from .evaluation import ProgressFn
    from .registry import Registry


@dataclass
class TuneReport:
    """What `tune_recipe` found and how well it holds up."""

    recipe: str
    source: str
    data: str
    documents: int
    split: str
    test_split: str | None
    folds: int | None
    metric: str
    method: str
    tried: int
    space_size: int
    queries: int
    eval_queries: int
    untuned: Setting
    tuned: Setting
    untuned_score: float
    tuned_score: float
    in_sample: float
    p_value: float
    ci: tuple[float, float]
    permutations: int
    seed: int
    fold_choices: list[str] = field(default_factory=list)
    rerank: list[str] = field(default_factory=list)
    ingest: dict[str, Any] = field(default_factory=dict)
    keep_depths: bool = False

    @property
    def delta(self) -> float:
        return self.tuned_score - self.untuned_score

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05 and self.delta > 0

    @property
    def how(self) -> str:
        """How the tuned score was measured, in words."""
        if self.test_split:
            return f"on held-out split {self.test_split!r} ({self.eval_queries} queries), tuned on split {self.split!r}"
        return f"{self.folds}-fold cross-validation over the {self.queries} queries of split {self.split!r}"

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("untuned", "tuned", "ci")}
        out.update(untuned=self.untuned.to_json(), tuned=self.tuned.to_json(), ci_low=self.ci[0], ci_high=self.ci[1],
                   delta=self.delta, significant=self.significant, how=self.how)
        return out

    def header(self) -> list[str]:
        """The comment lines written at the top of the tuned recipe."""
        return [
            f"Tuned by `prism tune` from {Path(self.source).name}: fusion method and parameters, per-retriever "
            + ("weights (top_k kept)." if self.keep_depths else "weights and top_k (candidate depth)."),
            "Rerank stages, encoders and indexes are as in the original (the index need not be rebuilt).",
            f"Data: {self.data} ({self.documents} documents), split {self.split!r} ({self.queries} queries), "
            f"metric {self.metric}; {self.method} search over {self.tried} of {self.space_size} settings, seed {self.seed}.",
            f"{self.metric}: untuned {self.untuned_score:.4f}, tuned {self.tuned_score:.4f} "
            f"({self.delta:+.4f}, p = {self.p_value:.4f}, paired randomization test), {self.how}.",
            f"On the queries it was tuned on (optimistic): {self.in_sample:.4f}.",
            f"Untuned: {self.untuned.describe()}",
            f"Tuned:   {self.tuned.describe()}",
        ] + ([] if self.significant else ["The gain is not significant (p >= 0.05 or not positive): prefer the original."])


def choose_splits(data: Path, split: str | None, test_split: str | None) -> tuple[str, str | None]:
    """The split tuned on and the held-out one (None: cross-validate). Only existence is checked:
    no judgment file is opened here. Defaults: tune on `train` when the data set has it and
    hold out `test`; with one split, cross-validate on it."""
    from .datasets import detect_layout

    if test_split is not None and test_split.lower() == "none":
        test_split = ""
    if detect_layout(data) != "beir":
        if test_split:  # its corpus depends on the split (held-out items are queries, not documents)
            raise TuneError(f"{data}: a held-out --test-split needs a BEIR folder; for a labelled media folder "
                            f"`prism tune` cross-validates over the queries of one --split")
        return split or "test", None

    def has(name: str) -> bool:
        return (data / "qrels" / f"{name}.tsv").exists()

    split = split or ("train" if has("train") else "test")
    if test_split is None:
        test_split = "test" if split != "test" and has("test") else ""
    if test_split and test_split == split:
        raise TuneError(f"--test-split {test_split!r} is the split tuned on; hold out another, or `none` to cross-validate")
    return split, test_split or None


def tune_recipe(
    recipe: str | Path,
    data: str | Path,
    *,
    split: str | None = None,
    test_split: str | None = None,
    metric: str = "nDCG@10",
    budget: int = 300,
    folds: int = 5,
    seed: int = 0,
    permutations: int = 10_000,
    max_depth: int | None = None,
    keep_depths: bool = False,
    registry: Registry | None = None,
    index_dir: str | Path | None = None,
    limit_docs: int | None = None,
    limit_queries: int | None = None,
    queries: str = "auto",
    progress: ProgressFn | None = None,
) -> TuneReport:
    """Tune `recipe`'s fusion settings on data set `data` (see the module docstring). `queries`
    is `prism eval`'s choice for labelled media: label text or held-out items (query by example)."""
    from .datasets import load_dataset
    from .registry import Registry

    registry = registry or Registry()
    folder = Path(data).expanduser().resolve()
    split, test_split = choose_splits(folder, split, test_split)
    opened = Tuner.open(recipe, registry=registry, index_dir=index_dir, max_depth=max_depth, keep_depths=keep_depths)
    with opened as tuner:  # the recipe is checked before the data set is read
        ds = load_dataset(folder, split=split, registry=registry, limit_docs=limit_docs, limit_queries=limit_queries,
                          queries=queries)  # type: ignore[arg-type]
        if test_split is None and len(ds.queries) < folds:
            raise TuneError(f"split {split!r} has {len(ds.queries)} queries, fewer than --folds {folds}")
        ingest = tuner.ingest(ds.items, progress)
        cache = tuner.collect(ds.queries, progress)
        settings, method = tuner.sample(budget, seed)
        table = tuner.score(cache, ds.qrels, metric, settings, progress)
        table.method = method
        best = table.select()
        in_sample = float(table.mean()[best])
        fold_choices: list[str] = []
        if test_split is not None:
            if progress:
                progress("test", 0, None)  # the search is over: only now are the test judgments read
            test = load_dataset(folder, split=test_split, registry=registry, limit_docs=limit_docs,
                                limit_queries=limit_queries, queries=queries)  # type: ignore[arg-type]
            test_cache = tuner.collect(test.queries, progress)
            held = tuner.score(test_cache, test.qrels, metric, [settings[0], settings[best]])
            untuned, tuned = held.values[0], held.values[1]
        else:
            cv = cross_validate(table, folds, seed)
            untuned, tuned = table.values[0], cv.scores
            fold_choices = [settings[i].describe() for i in cv.chosen]
    test_flips = SignFlips(tuned - untuned, permutations, seed)
    return TuneReport(
        recipe=tuner.engine.name, source=str(recipe), data=str(folder), documents=len(ds.items), split=split,
        test_split=test_split, folds=None if test_split else folds, metric=metric, method=method, tried=len(settings),
        space_size=table.space_size, queries=len(ds.queries), eval_queries=len(untuned),
        untuned=settings[0], tuned=settings[best], untuned_score=float(np.mean(untuned)),
        tuned_score=float(np.mean(tuned)), in_sample=in_sample, p_value=test_flips.p_value(),
        ci=test_flips.interval(), permutations=permutations, seed=seed, fold_choices=fold_choices,
        rerank=tuner.rerank, ingest=ingest, keep_depths=keep_depths,
    )


def format_tune(report: TuneReport) -> str:
    """A plain-text summary of a tune."""
    r = report
    lo, hi = r.ci
    lines = [
        f"tuned recipe {r.recipe} on {Path(r.data).name} ({r.documents} documents), metric {r.metric}",
        f"  search: {r.method} over {r.tried} of {r.space_size} settings (seed {r.seed}) on split {r.split!r}, "
        f"{r.queries} queries; each retriever ran once per query, no encoding during the search",
        f"  scored by: {r.how}",
        f"  untuned {r.metric} {r.untuned_score:.4f}   {r.untuned.describe()}",
        f"  tuned   {r.metric} {r.tuned_score:.4f}   {r.tuned.describe()}",
        f"  tuned - untuned {r.delta:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}], p = {r.p_value:.4f} "
        f"(paired randomization test, {r.permutations:,} sign flips)",
        f"  on the queries it was tuned on (optimistic, not a result): {r.in_sample:.4f}",
    ]
    if r.tuned == r.untuned:
        lines.append("  the recipe's own setting was the best found: the written recipe ranks as the original")
    for f, choice in enumerate(r.fold_choices):
        lines.append(f"  fold {f + 1} chose: {choice}")
    if r.rerank:
        lines.append(f"  rerank stages ({', '.join(r.rerank)}) kept as in the recipe; the scores above leave them out")
    if not r.significant:
        lines.append("  warning: the gain is not significant (p >= 0.05 or not positive): the tuned setting may be "
                     "fitted to noise; keep the original or label more queries")
    return "\n".join(lines)
