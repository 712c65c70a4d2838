"""Recipe files: YAML or TOML, validated in two phases.

Phase one checks the structure (`RecipeSpec`, unknown keys refused). Phase two (`build`) resolves
each component by its registered name and validates its parameters with the component's own
`Params` model, then checks the components against each other. Every problem is reported as
``file: field.path: message``, all at once.
"""

from __future__ import annotations

import codecs
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .contracts import Component, Context, Encoder, Fusion, Index, Loader, Reranker, Store
from .errors import PluginError, PrismError, RecipeError, UnknownComponentError
from .recipe_files import MAX_DEPTH, MAX_VALUES, read_recipe_file, resolve_env  # noqa: F401 (their old home)
from .registry import Registry

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_WEIGHT = 1e6
REMOTE_CODE_ENV = "PRISMRAG_ALLOW_REMOTE_CODE"
"""Set to 1 to let components run code shipped with a model (`trust_remote_code: true`)."""
DEVICE_PATTERN = re.compile(r"(auto|cpu|mps|(cuda|xpu|npu|hpu)(:\d{1,3})?)")
log = logging.getLogger("prismrag.recipe")


class ComponentSpec(BaseModel):
    """`{use: NAME, ...params}`: a component by registered name and its parameters."""

    model_config = ConfigDict(extra="allow")
    use: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RetrieverSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    encoder: ComponentSpec
    index: ComponentSpec | None = None
    """Defaults to the index kind matching the encoder's output (dense, sparse or multi)."""
    top_k: int = Field(100, gt=0, le=10_000)
    min_recall: float | None = Field(None, gt=0, le=1)
    """`prism eval` fails when a stage of this retriever's plan keeps less than this share of
    the exact search's top 10 (recall@10 against exact search on the same index)."""


class IngestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(512, gt=0)
    """Items encoded and committed together; a crash loses at most one batch of work."""
    cache: bool = True
    """Reuse embeddings across runs and recipes (keyed by content, encoder and its params)."""


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(10, gt=0, le=10_000)


class RecipeSpec(BaseModel):
    """The structure of a recipe file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    store: ComponentSpec = Field(default_factory=lambda: ComponentSpec(use="qdrant-edge"))
    sources: list[ComponentSpec] = Field(default_factory=list)
    retrievers: dict[str, RetrieverSpec] = Field(min_length=1)
    fusion: ComponentSpec | None = None
    """Defaults to `rrf` when there is more than one retriever."""
    rerank: list[ComponentSpec] = Field(default_factory=list)
    ingest: IngestSpec = Field(default_factory=IngestSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)

    @field_validator("retrievers")
    @classmethod
    def _names(cls, value: dict[str, RetrieverSpec]) -> dict[str, RetrieverSpec]:
        bad = [repr(n) for n in value if not _NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"retriever names must match {NAME_PATTERN}: {', '.join(bad)}")
        return value


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def pydantic_problems(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    """Render pydantic errors as (field path, message), with the allowed keys for unknown ones."""
    problems = []
    for err in exc.errors():
        loc = _loc(tuple(err["loc"]))
        path = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, tuple(err["loc"][:-1])) if model else None
            msg = f"unknown field {err['loc'][-1]!r}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append((path, msg))
    return problems


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        if info is None:
            continue
        current = _inner_model(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return None


def _inner_model(annotation: Any) -> Any:
    import typing

    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _inner_model(arg) if typing.get_args(arg) else None
        if inner is not None:
            return inner
    return None


def parse_recipe(data: Mapping[str, Any], source: str) -> RecipeSpec:
    """Phase one: the structure."""
    resolved, problems = resolve_env(dict(data))
    if problems:
        raise RecipeError(source, problems)
    try:
        return RecipeSpec.model_validate(resolved)
    except ValidationError as exc:
        raise RecipeError(source, pydantic_problems(exc, model=RecipeSpec)) from None


# ------------------------------------------------------------------------------------ building


@dataclass
class Retriever:
    name: str
    encoder: Encoder
    index: Index
    top_k: int
    min_recall: float | None = None


@dataclass
class BuiltRecipe:
    """A validated recipe with every component instantiated (models are still not loaded)."""

    spec: RecipeSpec
    source: str
    base_dir: Path
    store: Store
    sources: list[Loader]
    retrievers: dict[str, Retriever]
    fusion: Fusion | None
    rerankers: list[Reranker]


class _Builder:
    def __init__(self, spec: RecipeSpec | None, source: str, base_dir: Path, registry: Registry,
                 name: str | None = None):
        self.spec, self.source, self.base_dir, self.registry = spec, source, base_dir, registry
        self.name = spec.name if spec is not None else (name or "recipe")
        self.problems: list[tuple[str, str]] = []

    def context(self, where: str) -> Context:
        def loader_for_path(path: Path) -> type[Loader] | None:
            suffix = path.suffix.lower()
            for info in self.registry.components("loader").values():
                if suffix in info.cls.extensions:
                    return info.cls  # type: ignore[return-value]
            return None

        return Context(
            base_dir=self.base_dir,
            recipe=self.name,
            where=f"{self.source}: {where}",
            resolve_model=self.registry.resolve_model,
            loader_for_path=loader_for_path,
        )

    def make(self, kind: str, spec: ComponentSpec, where: str) -> Any:
        if self.param_problems(spec.params, where):
            return None
        try:
            cls: type[Component] = self.registry.get(kind, spec.use)
        except UnknownComponentError as exc:
            known = ", ".join(f"{n} (from {p})" for n, p in sorted(exc.known.items())) or "none"
            self.problems.append((f"{where}.use", f"unknown {kind} {spec.use!r}; known {kind}s: {known}.{exc.broken_hint()}"))
            return None
        try:
            params = cls.Params.model_validate(spec.params)
        except ValidationError as exc:
            self.problems.extend(pydantic_problems(exc, where, cls.Params))
            return None
        try:
            return cls(params, self.context(where))
        except PrismError as exc:  # the message may start with the component's `where`: the problem names it once
            self.problems.append((where, str(exc).removeprefix(f"{self.context(where).where}: ")))
            return None

    def build(self) -> BuiltRecipe:
        spec = self.spec
        store = self.make("store", spec.store, "store")
        sources = [self.make("loader", s, f"sources[{i}]") for i, s in enumerate(spec.sources)]
        retrievers: dict[str, Retriever] = {}
        for name, r in spec.retrievers.items():
            where = f"retrievers.{name}"
            encoder = self.make("encoder", r.encoder, f"{where}.encoder")
            if encoder is None:
                continue
            index_spec = r.index or ComponentSpec(use=encoder.output)
            index = self.make("index", index_spec, f"{where}.index")
            if index is None:
                continue
            if index.vector_kind != encoder.output:
                self.problems.append((
                    f"{where}.index.use",
                    f"encoder {encoder.name!r} produces {encoder.output} vectors but index "
                    f"{index.name!r} stores {index.vector_kind} vectors; use an index of kind "
                    f"{encoder.output!r} (or leave `index` out to get it)",
                ))
                continue
            distance = getattr(index.params, "distance", None)
            if distance and encoder.metric and not _metrics_compatible(encoder.metric, distance):
                self.problems.append((
                    f"{where}.index.distance",
                    f"encoder {encoder.name!r} is made for {encoder.metric!r}; {distance!r} would rank "
                    f"wrongly. Use distance: {encoder.metric} (or leave it out)",
                ))
            retrievers[name] = Retriever(name, encoder, index, r.top_k, r.min_recall)

        if len(retrievers) == len(spec.retrievers):
            self.check_source_modalities(sources, retrievers)
        fusion_spec = spec.fusion or (ComponentSpec(use="rrf") if len(spec.retrievers) > 1 else None)
        fusion = self.make("fusion", fusion_spec, "fusion") if fusion_spec else None
        if fusion is not None:
            self.check_retriever_refs(fusion, "fusion")
        rerankers = [self.make("reranker", s, f"rerank[{i}]") for i, s in enumerate(spec.rerank)]
        for i, rr in enumerate(rerankers):
            if rr is not None:
                self.check_retriever_refs(rr, f"rerank[{i}]")
        if self.problems:
            raise RecipeError(self.source, self.problems)
        return BuiltRecipe(spec, self.source, self.base_dir, store, sources, retrievers, fusion, rerankers)  # type: ignore[arg-type]

    def param_problems(self, params: Mapping[str, Any], where: str) -> bool:
        """Checks that hold for any component: no model code run unless the user allows it outside
        the recipe, a device that can exist, a text encoding that decodes text."""
        before = len(self.problems)
        if params.get("trust_remote_code") is True:
            if os.environ.get(REMOTE_CODE_ENV, "").strip() != "1":
                self.problems.append((f"{where}.trust_remote_code", (
                    f"a recipe cannot allow running code shipped with a model by itself. If you trust that "
                    f"model's code, run with {REMOTE_CODE_ENV}=1 in the environment"
                )))
            else:
                log.warning("%s: %s: %s=1, so code shipped with the model will be imported and run",
                            self.source, where, REMOTE_CODE_ENV)
        device = params.get("device")
        if isinstance(device, str) and not DEVICE_PATTERN.fullmatch(device.strip().lower()):
            self.problems.append((f"{where}.device", (
                f"{device!r} is not a device; use cpu, cuda, cuda:N, mps or auto (or leave it out)"
            )))
        encoding = params.get("encoding")
        if isinstance(encoding, str):
            try:
                text_codec = codecs.lookup(encoding)._is_text_encoding  # type: ignore[attr-defined]
            except LookupError:
                text_codec = True  # unknown names are the component's to report
            if not text_codec:
                self.problems.append((f"{where}.encoding", (
                    f"{encoding!r} is not a text encoding (it transforms text); use e.g. utf-8 or latin-1"
                )))
        return len(self.problems) > before

    def check_source_modalities(self, sources: list[Loader | None], retrievers: dict[str, Retriever]) -> None:
        """A source whose items no retriever embeds would ingest nothing (and say so 159 times)."""
        embedded = {m for r in retrievers.values() for m in r.encoder.document_modalities}
        for i, loader in enumerate(sources):
            modality = getattr(loader, "modality", None)
            if loader is None or modality is None or modality in embedded:
                continue
            kinds = ", ".join(sorted(m.value for m in embedded)) or "nothing"
            self.problems.append((f"sources[{i}].use", (
                f"loader {loader.name!r} yields {modality.value} items, but no retriever embeds {modality.value} "
                f"documents (the retrievers embed: {kinds}); add a retriever whose encoder takes "
                f"{modality.value}, or drop this source"
            )))

    def lenient_problems(self, data: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The component problems of a recipe whose structure did not validate, so that one run
        reports every problem (wrong field names no longer come in two rounds)."""
        for kind, where, raw in _component_entries(data):
            try:
                spec = ComponentSpec.model_validate(raw)
            except ValidationError:
                continue  # the structure check reported it
            self.make(kind, spec, where)
        return self.problems

    def check_retriever_refs(self, component: Component, where: str) -> None:
        """Params named `weights` (keys) or `retriever` must name retrievers of this recipe."""
        names = set(self.spec.retrievers)
        weights = getattr(component.params, "weights", None)
        if isinstance(weights, Mapping):
            for key, value in weights.items():
                if key not in names:
                    self.problems.append((f"{where}.weights.{key}", f"no retriever named {key!r}; retrievers: {', '.join(sorted(names))}"))
                if isinstance(value, (int, float)) and not (math.isfinite(value) and 0 <= value <= MAX_WEIGHT):
                    self.problems.append((f"{where}.weights.{key}", f"{value!r} is out of range: a weight is between 0 and {MAX_WEIGHT:g}"))
        ref = getattr(component.params, "retriever", None)
        if isinstance(ref, str) and ref not in names:
            self.problems.append((f"{where}.retriever", f"no retriever named {ref!r}; retrievers: {', '.join(sorted(names))}"))


def _component_entries(data: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(kind, field path, raw spec) of every component a raw recipe names."""
    if isinstance(data.get("store"), Mapping):
        yield "store", "store", data["store"]
    for key, kind in (("sources", "loader"), ("rerank", "reranker")):
        entries = data.get(key)
        for i, raw in enumerate(entries if isinstance(entries, list) else []):
            yield kind, f"{key}[{i}]", raw
    retrievers = data.get("retrievers")
    for name, r in (retrievers.items() if isinstance(retrievers, Mapping) else []):
        for part in ("encoder", "index"):
            if isinstance(r, Mapping) and isinstance(r.get(part), Mapping):
                yield part, f"retrievers.{name}.{part}", r[part]
    if isinstance(data.get("fusion"), Mapping):
        yield "fusion", "fusion", data["fusion"]


def _metrics_compatible(native: str, chosen: str) -> bool:
    # Cosine and dot product rank normalized vectors identically.
    return native == chosen or {native, chosen} == {"cosine", "dot"}


def load_recipe_spec(path: str | Path) -> tuple[RecipeSpec, str, Path]:
    """Read and validate the structure of a recipe file."""
    path = Path(path)
    spec = parse_recipe(read_recipe_file(path), str(path))
    return spec, str(path), path.resolve().parent


def validate_recipe_file(path: str | Path, registry: Registry) -> BuiltRecipe:
    """Read, check and build a recipe file, reporting every problem in one RecipeError: those of
    its structure and, with them, those of each component it names."""
    path = Path(path)
    data = read_recipe_file(path)
    source, base_dir = str(path), path.resolve().parent
    try:
        spec = parse_recipe(data, source)
    except RecipeError as exc:
        resolved, env_problems = resolve_env(dict(data))
        if env_problems:
            raise
        name = resolved.get("name") if isinstance(resolved.get("name"), str) else None
        extra = _Builder(None, source, base_dir, registry, name).lenient_problems(resolved)
        raise RecipeError(source, exc.problems + [p for p in extra if p not in exc.problems]) from None
    return build_recipe(spec, source, base_dir, registry)


def build_recipe(spec: RecipeSpec, source: str, base_dir: Path, registry: Registry) -> BuiltRecipe:
    """Phase two: resolve and validate every component, then cross-check them."""
    try:
        return _Builder(spec, source, base_dir, registry).build()
    except PluginError as exc:
        raise RecipeError(source, [("", str(exc))]) from exc
