"""Recipe files: YAML or TOML, validated in two phases.

Phase one checks the structure (`RecipeSpec`, unknown keys refused). Phase two (`build`) resolves
each component by its registered name and validates its parameters with the component's own
`Params` model, then checks the components against each other. Every problem is reported as
``file: field.path: message``, all at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .contracts import Component, Context, Encoder, Fusion, Index, Loader, Reranker, Store
from .errors import PluginError, PrismError, RecipeError, UnknownComponentError
from .registry import Registry

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


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
        bad = [n for n in value if not re.match(NAME_PATTERN, n)]
        if bad:
            raise ValueError(f"retriever names must match {NAME_PATTERN}: {', '.join(bad)}")
        return value


# ------------------------------------------------------------------------------------ reading


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or TOML file into a dict; syntax errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(str(path), [("", "no such recipe file")])
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(str(path), [("", f"invalid TOML: {exc}")]) from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            raise RecipeError(str(path), [("", f"invalid YAML: {_yaml_message(exc)}")]) from exc
        except yaml.YAMLError as exc:
            raise RecipeError(str(path), [("", f"invalid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise RecipeError(str(path), [("", "a recipe must be a mapping with at least `name` and `retrievers`")])
    return data


def _yaml_message(exc: Any) -> str:
    def at(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    msg = f"{at(exc.problem_mark)}: {exc.problem}" if exc.problem_mark else str(exc.problem or exc)
    if exc.context and exc.context_mark:
        msg += f" ({exc.context} at {at(exc.context_mark)})"
    return msg


def resolve_env(data: Any, path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """Replace every `{"$env": "NAME"}` with that environment variable's value."""
    problems: list[tuple[str, str]] = []

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            if set(node) == {"$env"}:
                var = node["$env"]
                if not isinstance(var, str) or var not in os.environ:
                    problems.append((where, f"environment variable {var!r} is not set (export {var}=...)"))
                    return None
                return os.environ[var]
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        return node

    return walk(data, path), problems


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
    def __init__(self, spec: RecipeSpec, source: str, base_dir: Path, registry: Registry):
        self.spec, self.source, self.base_dir, self.registry = spec, source, base_dir, registry
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
            recipe=self.spec.name,
            where=f"{self.source}: {where}",
            resolve_model=self.registry.resolve_model,
            loader_for_path=loader_for_path,
        )

    def make(self, kind: str, spec: ComponentSpec, where: str) -> Any:
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
        except PrismError as exc:
            self.problems.append((where, str(exc)))
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
            retrievers[name] = Retriever(name, encoder, index, r.top_k)

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

    def check_retriever_refs(self, component: Component, where: str) -> None:
        """Params named `weights` (keys) or `retriever` must name retrievers of this recipe."""
        names = set(self.spec.retrievers)
        weights = getattr(component.params, "weights", None)
        if isinstance(weights, Mapping):
            for key in weights:
                if key not in names:
                    self.problems.append((f"{where}.weights.{key}", f"no retriever named {key!r}; retrievers: {', '.join(sorted(names))}"))
        ref = getattr(component.params, "retriever", None)
        if isinstance(ref, str) and ref not in names:
            self.problems.append((f"{where}.retriever", f"no retriever named {ref!r}; retrievers: {', '.join(sorted(names))}"))


def _metrics_compatible(native: str, chosen: str) -> bool:
    # Cosine and dot product rank normalized vectors identically.
    return native == chosen or {native, chosen} == {"cosine", "dot"}


def load_recipe_spec(path: str | Path) -> tuple[RecipeSpec, str, Path]:
    """Read and validate the structure of a recipe file."""
    path = Path(path)
    spec = parse_recipe(read_recipe_file(path), str(path))
    return spec, str(path), path.resolve().parent


def build_recipe(spec: RecipeSpec, source: str, base_dir: Path, registry: Registry) -> BuiltRecipe:
    """Phase two: resolve and validate every component, then cross-check them."""
    try:
        return _Builder(spec, source, base_dir, registry).build()
    except PluginError as exc:
        raise RecipeError(source, [("", str(exc))]) from exc
